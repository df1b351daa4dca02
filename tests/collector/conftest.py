"""Helpers for running the real collector process against a fake intake."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kubesweep.metrics import Batch, decode_batch, decode_summary, trial_token, verify_token
from kubesweep.metrics.tokens import token_from_authorization
from kubesweep.metrics.wire import Summary

KEY = b"test-key"
UID = "0b5c-trial-uid"


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class FakeIntake:
    """An intake that checks tokens as the operator's does and records batches."""

    server: ThreadingHTTPServer
    batches: list[Batch] = field(default_factory=list)
    refused: int = 0
    fail_next: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/batches"

    def values(self, name: str) -> list[float]:
        return [o.value for b in list(self.batches) for o in b.observations if o.name == name]

    def final(self) -> Batch | None:
        return next((b for b in list(self.batches) if b.final), None)


@pytest.fixture
def intake() -> Iterator[FakeIntake]:
    state: dict[str, FakeIntake] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            fake = state["intake"]
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if fake.fail_next > 0:
                fake.fail_next -= 1
                self._reply(503)
                return
            batch = decode_batch(body)
            token = token_from_authorization(self.headers.get("Authorization")) or ""
            if not verify_token(KEY, batch.uid, token):
                fake.refused += 1
                self._reply(403)
                return
            fake.batches.append(batch)
            self._reply(200)

        def _reply(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["intake"] = FakeIntake(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state["intake"]
    server.shutdown()
    server.server_close()


@dataclass
class CollectorProcess:
    process: subprocess.Popen[bytes]
    termination: Path
    log: Path

    def stop(self, timeout: float = 15.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def summary(self) -> Summary:
        return decode_summary(self.termination.read_text())

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def run_collector(tmp_path: Path) -> Iterator[Callable[..., CollectorProcess]]:
    started: list[CollectorProcess] = []

    def start(
        config: dict[str, Any], intake_url: str | None = None, **env: str
    ) -> CollectorProcess:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("KUBESWEEP_")}
        termination = tmp_path / f"termination-{len(started)}"
        log = tmp_path / f"collector-{len(started)}.log"
        environment.update(
            {
                "KUBESWEEP_COLLECTOR_CONFIG": json.dumps(config),
                "KUBESWEEP_TRIAL_NAME": "exp-1",
                "KUBESWEEP_TRIAL_NAMESPACE": "team-a",
                "KUBESWEEP_TRIAL_UID": UID,
                "KUBESWEEP_TRIAL_TOKEN": trial_token(KEY, UID),
                "KUBESWEEP_TERMINATION_LOG": str(termination),
                "KUBESWEEP_STDOUT_LOG": str(tmp_path / "stdout.log"),
                "KUBESWEEP_POLL_SECONDS": "0.05",
                "KUBESWEEP_FLUSH_SECONDS": "0.1",
                "KUBESWEEP_SHUTDOWN_SECONDS": "3",
                "KUBESWEEP_PUSH_PORT": "0",
                "KUBESWEEP_LOG_LEVEL": "DEBUG",
            }
        )
        if intake_url:
            environment["KUBESWEEP_INTAKE_URL"] = intake_url
        environment.update(env)
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "kubesweep.collector.main"],
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        collector = CollectorProcess(process, termination, log)
        started.append(collector)
        return collector

    yield start
    for collector in started:
        if collector.process.poll() is None:
            collector.process.kill()
            collector.process.wait()
