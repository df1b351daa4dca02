"""Trial processes: start, read metrics, stop, and find leftovers of a killed runner.

Each trial runs in its own session (process group), so stopping it reaches
every process it started, and a Ctrl-C in the terminal reaches only the
runner, which then stops the trials in order. Metrics are read by the
collector's own :class:`~kubesweep.collector.main.Collector` (same sources,
same parsers, same reducer), polled in this process instead of a sidecar; its
push endpoint listens on a free localhost port per trial.

If the runner itself is killed (SIGKILL), its trials are told by the kernel
(``PR_SET_PDEATHSIG``), and ``--resume`` also kills any process group it
recorded that still runs, identified by pid *and* start time so a recycled pid
is never touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubesweep.api import Objective
from kubesweep.cli.local.launch import Launch
from kubesweep.collector.main import Collector
from kubesweep.collector.push import PushServer
from kubesweep.metrics.models import curve_points, metric_summaries
from kubesweep.planning import PodView, TrialMetrics
from kubesweep.planning.workload import Ending, WorkloadState

#: What the planner's messages call a local trial's workload.
PROCESS_KIND = "Process"
#: Seconds a stopped trial has between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1
#: Longest failure text, as a trial's status message holds it.
MAX_FAILURE_CHARS = 4000
#: Longest cause on the first line of a failure text.
HEADLINE_CHARS = 240


def _load_prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


#: Looked up once in the parent, so the child calls it without loading anything.
_PRCTL = _load_prctl()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """In the child before exec: receive SIGTERM when the runner dies (Linux)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of ``/proc/<pid>/stat``), if it runs."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def kill_leftover(pid: int | None, start: str | None) -> bool:
    """Kill the process group of a trial the runner started earlier, if it still runs."""
    if pid is None or start is None or process_start_time(pid) != start:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    return True


def detect_gpus() -> list[str]:
    """GPU indexes on this machine (``nvidia-smi -L``), narrowed by ``CUDA_VISIBLE_DEVICES``."""
    from kubesweep.cli.local.launch import gpu_devices

    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        result = subprocess.run(
            [binary, "-L"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    if result.returncode != 0:
        return []
    return gpu_devices(result.stdout.splitlines(), os.environ.get("CUDA_VISIBLE_DEVICES"))


def free_port() -> PushServer:
    """A push endpoint on a free localhost port."""
    return PushServer(0)


@dataclass
class TrialProcess:
    """One running (or just finished) attempt of a trial."""

    name: str
    launch: Launch
    objective: Objective
    cwd: Path
    push: PushServer
    gpus: tuple[str, ...] = ()
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    popen: subprocess.Popen[bytes] | None = None
    collector: Collector | None = None
    exit_code: int | None = None
    ended: datetime | None = None
    stop_sent: float | None = None

    def start(self) -> None:
        """Start the process with its output in the trial's log."""
        self.launch.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(self.launch.env)
        if self.gpus or self.launch.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        self.collector = Collector(self.launch.collector, threading.Event())
        self.collector.sources.append(self.push)
        self.collector.push = self.push
        self.push.start()
        with open(self.launch.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                list(self.launch.argv),
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Only a prctl call, looked up beforehand: safe after fork with threads.
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        self.started = datetime.now(UTC)

    @property
    def pid(self) -> int | None:
        """The process id (also its process group id)."""
        return None if self.popen is None else self.popen.pid

    def poll(self) -> bool:
        """Read new metrics; ``True`` once the process has exited (metrics then read to the end)."""
        assert self.popen is not None
        assert self.collector is not None
        if self.exit_code is not None:
            return True
        code = self.popen.poll()
        if code is None:
            self.collector.poll()
            if self.stop_sent is not None and time.monotonic() - self.stop_sent > (
                STOP_GRACE_SECONDS
            ):
                self._signal(signal.SIGKILL)
            return False
        self.collector.poll(final=True)
        self.exit_code = code
        self.ended = datetime.now(UTC)
        self.close()
        return True

    def metrics(self) -> TrialMetrics:
        """What the collector has reduced so far, as the operator's intake would report it."""
        assert self.collector is not None
        stats = self.collector.reducer.stats
        metric = self.objective.metric
        value = None
        if metric in stats:
            value = stats[metric].value(self.objective.strategy_for(metric).value)
        return TrialMetrics(
            objective=value,
            metrics=tuple(metric_summaries(stats)),
            curve=tuple(curve_points(self.collector.reducer.curve(metric))),
            complete=self.exit_code is not None,  # read to the end once the process exited
        )

    def latest_step(self) -> int | None:
        """The step of the objective's latest observation."""
        assert self.collector is not None
        stats = self.collector.reducer.stats.get(self.objective.metric)
        return None if stats is None else stats.step

    def workload(self) -> WorkloadState:
        """The process as the workload the planner's status derivation reads.

        It is named as what it is, a process that exits, so a trial that ends
        without its objective says "the trial process exited 0", never "Job".
        """
        if self.exit_code is None:
            return WorkloadState(kind=PROCESS_KIND, start_time=self.started, ready=True)
        ended = self.ended or datetime.now(UTC)
        succeeded = self.exit_code == 0
        return WorkloadState(
            kind=PROCESS_KIND,
            succeeded=Ending(at=ended) if succeeded else None,
            failed=None
            if succeeded
            else Ending(reason="Error", message=self.failure_message(), at=ended),
            start_time=self.started,
            completion_time=ended,
            completion_phrase="the trial process exited 0",
        )

    def pods(self) -> list[PodView]:
        """The one "pod": running until the process exits."""
        phase = "Running" if self.exit_code is None else "Succeeded"
        return [PodView(self.name, phase, start_time=self.started)]

    def failure_message(self, lines: int = 8) -> str:
        """The exit code and the last lines of output (see :func:`failure_text`)."""
        return failure_text(self.exit_code, log_tail(self.launch.log_path, lines))

    def stop(self) -> None:
        """Ask the process group to stop (SIGTERM; SIGKILL after the grace period)."""
        if self.exit_code is None and self.stop_sent is None:
            self.stop_sent = time.monotonic()
            self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Stop at once."""
        if self.exit_code is None:
            self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signum)

    def close(self) -> None:
        """Release the push endpoint."""
        self.push.stop()


def failure_text(exit_code: int | None, tail: Sequence[str]) -> str:
    """Why a trial process failed: a first line with its cause, then its last output.

    The first line is what one-line views show (the run's events, tables, the
    experiment's condition), so it ends with the last line of output, where a
    Python traceback names the exception. The whole is cut to fit a status
    message, from the output's oldest lines, never from the first line.
    """
    code = exit_code
    what = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    head = f"the trial process ended with {what}"
    if not tail:
        return head
    cause = tail[-1].strip()
    if len(tail) == 1 and len(cause) <= HEADLINE_CHARS:
        return f"{head}: {cause}"  # the whole output is on the first line
    if len(cause) > HEADLINE_CHARS:
        cause = cause[: HEADLINE_CHARS - 1] + "…"
    head += f": {cause}\nlast output:\n"
    body = "\n".join(tail)
    room = MAX_FAILURE_CHARS - len(head)
    return head + (body if len(body) <= room else body[-room:])


def log_tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` non-empty lines of a log (reading at most 64 KiB)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            data = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [line for line in data.splitlines() if line.strip()][-lines:]


def wait_all(processes: Sequence[TrialProcess], timeout: float) -> None:
    """Wait until every process exited or ``timeout`` passed, then kill the rest."""
    deadline = time.monotonic() + timeout
    for process in processes:
        if process.popen is None:
            continue
        try:
            process.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(2)
        process.close()
