"""Container processes: what a container runtime does for the process node.

A container is a process group started by ``unshare`` in a private mount
namespace, where :data:`MOUNT_SCRIPT` bind-mounts the pod's volumes and the
container's termination-message file before it ``exec``s the command. Its
output goes to one log file per run, and a pidfile (``"<pid> <start time>"``)
lets ``cluster down`` kill what a dead node left, and only that. When the
process ends, its exit becomes a kubelet's ``terminated`` state, message
included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from cluster.kube import JSON
from cluster.local import start_time
from node.processnode.clock import now
from node.processnode.container import Container
from node.processnode.environment import expand
from node.processnode.host import REPO
from node.processnode.layout import log_file, pid_file

#: ``sh -c`` script run inside the new mount namespace: ``WORKDIR (SRC DST ro|rw)... -- ARGV``.
MOUNT_SCRIPT = r"""
set -e
wd=$1; shift
while [ "$1" != "--" ]; do
  src=$1; dst=$2; mode=$3; shift 3
  if [ -d "$src" ]; then mkdir -p "$dst"
  else mkdir -p "$(dirname "$dst")"; [ -e "$dst" ] || : > "$dst"; fi
  mount --bind "$src" "$dst"
  if [ "$mode" = ro ]; then mount -o remount,bind,ro "$dst"; fi
done
shift
mkdir -p "$wd" && cd "$wd"
exec "$@"
"""


class ProcessRuntime:
    """Starts, watches and kills the container processes of one pod."""

    def __init__(self, pod_dir: Path, uid: str) -> None:
        self.pod_dir = pod_dir
        self.uid = uid

    def launch(self, c: Container, env: dict[str, str], volumes: dict[str, Path]) -> None:
        """Start run number ``c.restarts`` of ``c`` with ``env`` and the pod's ``volumes``."""
        cdir = self.pod_dir / c.name
        argv = [expand(a, env) for a in (c.spec.get("command") or []) + (c.spec.get("args") or [])]
        if not c.spec.get("command"):  # no image entrypoint to fall back on
            msg = "the process node runs no images: a container needs a command"
            argv = ["sh", "-c", f"echo '{msg}' | tee /dev/termination-log >&2; exit 128"]
        term = cdir / "termination-log"
        term.write_bytes(b"")
        mounts: list[str] = []
        for vm in c.spec.get("volumeMounts") or []:
            src = volumes.get(vm["name"])
            if src is None:
                continue
            if vm.get("subPath"):
                src = src / vm["subPath"]
                src.mkdir(parents=True, exist_ok=True)
            mounts += [str(src), vm["mountPath"], "ro" if vm.get("readOnly") else "rw"]
        mounts += [str(term), c.spec.get("terminationMessagePath") or "/dev/termination-log", "rw"]
        wd = c.spec.get("workingDir") or str(REPO)
        unshare = ["unshare", "--mount", "--propagation", "private"]
        if os.geteuid() != 0:
            unshare.insert(1, "--map-root-user")
        full = [*unshare, "sh", "-c", MOUNT_SCRIPT, "sh", wd, *mounts, "--", *argv]
        with open(log_file(self.pod_dir, c.name, c.restarts), "ab") as out:
            c.proc = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                cwd=str(self.pod_dir),
            )
        # "pid start-time": lets `cluster down` kill what a dead node left, and only that
        pid_file(self.pod_dir, c.name).write_text(f"{c.proc.pid} {start_time(c.proc.pid)}")
        c.env = env
        c.container_id = f"process://{self.uid[:8]}-{c.name}-{c.restarts}-{c.proc.pid}"
        c.started_at = now()
        c.state = {"running": {"startedAt": c.started_at}}

    def poll(self, c: Container) -> int | None:
        """Exit code if the container's process just ended (and record it), else None."""
        if c.proc is None:
            return None
        code = c.proc.poll()
        if code is None:
            return None
        self._exited(c, code)
        return int(c.state["terminated"]["exitCode"])

    def kill(self, containers: list[Container], grace: float) -> None:
        """SIGTERM all, SIGKILL what still runs after ``grace`` seconds; all are then done."""
        live = [c for c in containers if c.running]
        for c in live:
            assert c.proc is not None
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(c.running for c in live) and time.monotonic() < deadline:
            time.sleep(0.05)
        for c in live:
            if c.running:
                assert c.proc is not None
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(c.proc.pid, signal.SIGKILL)
                c.proc.wait()
            self.poll(c)
            c.done = True

    def kill_one(self, c: Container, grace: float) -> None:
        """SIGTERM, SIGKILL after ``grace``; the exit is recorded by the next :meth:`poll`."""
        assert c.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(c.proc.pid, signal.SIGTERM)
        try:
            c.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.proc.pid, signal.SIGKILL)
            c.proc.wait()

    def _exited(self, c: Container, code: int) -> None:
        """Record the ended run as a ``terminated`` state with its termination message."""
        cdir = self.pod_dir / c.name
        with contextlib.suppress(OSError):
            pid_file(self.pod_dir, c.name).unlink()
        message = ""
        with contextlib.suppress(OSError):
            message = (cdir / "termination-log").read_bytes()[:4096].decode(errors="replace")
        if (
            not message
            and code != 0
            and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        ):
            with contextlib.suppress(OSError):
                lines = log_file(self.pod_dir, c.name, c.restarts).read_bytes().splitlines()[-80:]
                message = b"\n".join(lines)[-2048:].decode(errors="replace")
        term: JSON = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": c.started_at or now(),
            "finishedAt": now(),
        }
        if code < 0:  # killed by a signal: report as a shell would
            term["exitCode"], term["signal"] = 128 - code, -code
        if message:
            term["message"] = message
        if c.container_id:
            term["containerID"] = c.container_id
        c.state = {"terminated": term}
        c.proc = None
