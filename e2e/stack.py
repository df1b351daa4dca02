"""Run kubesweep's own processes (suggestion service, operator) beside a cluster.

On the local cluster there is no pod network or Service routing, so the
suggestion service and the operator run as processes on this machine, as a
developer runs them: the operator talks to the API server through a kubeconfig,
trial pods (processes of the process node) reach the intake on loopback. On a
real cluster the Helm chart runs the same entry points as pods.

The suggestion service admits only the operator's ServiceAccount, as the chart
sets it up: the operator sends a token of that account issued for the service's
audience, which the service checks with a TokenReview.

``Stack`` starts both, waits until they answer, and stops them (SIGTERM, then
SIGKILL after a grace period). The demo and the operator's e2e tests share it;
``restart_operator()`` lets tests kill the operator at any moment.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kubesweep.cli.kube import Kube, KubeError
from kubesweep.suggestion.auth import DEFAULT_AUDIENCE

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: The operator's ServiceAccount, the one caller the suggestion service admits.
OPERATOR_ACCOUNT = "kubesweep-system/kubesweep-operator"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@dataclass
class Process:
    """One child process with its log file."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    popen: subprocess.Popen[bytes] | None = None
    _out: IO[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._out = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self._out.write(f"\n==== {time.strftime('%FT%T')} {' '.join(self.argv)}\n".encode())
        self._out.flush()
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=REPO,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, grace: float = 10.0, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL at once with ``kill``), wait, then SIGKILL."""
        if self.popen is not None and self.popen.poll() is None:
            sig = signal.SIGKILL if kill else signal.SIGTERM
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        if self._out is not None:
            self._out.close()
            self._out = None

    def wait_until(self, check: str, timeout: float) -> None:
        """Poll the URL ``check`` until it answers 200, failing early if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited; log tail:\n{self.tail()}")
            if _answers(check):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not answer {check} in {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Stack:
    """The suggestion service and the operator, started against ``kubeconfig``."""

    kubeconfig: str
    log_dir: Path
    namespaces: tuple[str, ...] = ()
    suggestion_port: int = field(default_factory=free_port)
    suggestion_metrics_port: int = field(default_factory=free_port)
    intake_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    token_key: str = field(default_factory=lambda: secrets.token_hex(24))
    extra_operator_args: tuple[str, ...] = ()
    #: Credentials that issue the operator's token and review it (the suggestion
    #: service's); default ``kubeconfig``. Set it where ``kubeconfig`` is the operator's
    #: own, limited by the chart's Role.
    admin_kubeconfig: str | None = None
    suggestion: Process | None = None
    operator: Process | None = None

    @property
    def suggestion_url(self) -> str:
        return f"http://127.0.0.1:{self.suggestion_port}"

    @property
    def suggestion_token_file(self) -> Path:
        return self.log_dir / "suggestion-token"

    def _issue_operator_token(self) -> None:
        """A token of the operator's ServiceAccount for the suggestion service's audience.

        As in the chart: the suggestion service admits only this ServiceAccount, and
        checks each token with a TokenReview against the cluster's API server.
        """
        kube = Kube.connect(self.admin_kubeconfig or self.kubeconfig)
        namespace, name = OPERATOR_ACCOUNT.split("/")
        for path, body in (
            ("/api/v1/namespaces", {"metadata": {"name": namespace}}),
            (f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}}),
        ):
            try:
                kube.request("POST", path, body)
            except KubeError as error:
                if error.status != 409:
                    raise
        answer = kube.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"spec": {"audiences": [DEFAULT_AUDIENCE], "expirationSeconds": 3 * 3600}},
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.suggestion_token_file.write_text(answer["status"]["token"])

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = self.kubeconfig
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env["KUBESWEEP_TOKEN_KEY"] = self.token_key
        return env

    def start_suggestion(self) -> None:
        self.suggestion = Process(
            "suggestion",
            [
                str(BIN / "kubesweep-suggestion"),
                "--host=127.0.0.1",
                f"--port={self.suggestion_port}",
                f"--metrics-port={self.suggestion_metrics_port}",
                f"--allowed-callers={OPERATOR_ACCOUNT}",
                "--workers=1",
                "--executor=thread",
            ],
            self.log_dir / "suggestion.log",
            {**self._env(), "KUBECONFIG": self.admin_kubeconfig or self.kubeconfig},
        )
        self.suggestion.start()
        self.suggestion.wait_until(f"{self.suggestion_url}/readyz", 60)

    def stop_suggestion(self) -> None:
        if self.suggestion is not None:
            self.suggestion.stop()

    def start_operator(self) -> None:
        if not self.suggestion_token_file.is_file():
            self._issue_operator_token()
        argv = [
            str(BIN / "kubesweep-operator"),
            f"--suggestion-url={self.suggestion_url}",
            f"--suggestion-token-file={self.suggestion_token_file}",
            "--suggestion-timeout=10",
            "--intake-host=127.0.0.1",
            f"--intake-port={self.intake_port}",
            f"--intake-url=http://127.0.0.1:{self.intake_port}",
            "--collector-image=kubesweep/collector:local",
            f"--metrics-port={self.metrics_port}",
            f"--liveness=http://127.0.0.1:{self.health_port}/healthz",
            "--resync-seconds=2",
            "--stall-after-seconds=5",
            *[f"--namespace={n}" for n in self.namespaces],
            *self.extra_operator_args,
        ]
        self.operator = Process("operator", argv, self.log_dir / "operator.log", self._env())
        self.operator.start()
        self.operator.wait_until(f"http://127.0.0.1:{self.health_port}/healthz", 60)

    def kill_operator(self) -> None:
        """SIGKILL: no chance to finish anything, as a node failure would do."""
        if self.operator is not None:
            self.operator.stop(kill=True)

    def restart_operator(self) -> None:
        self.kill_operator()
        self.start_operator()

    def start(self) -> Stack:
        self.start_suggestion()
        self.start_operator()
        return self

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        self.stop_suggestion()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
