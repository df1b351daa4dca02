"""The real collector process, for each source, against a fake intake.

A forged or foreign token is the intake's concern: it must answer 401/403, and
the collector then stops pushing and relies on its termination message (the
last test shows both halves).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kubesweep.podcontract import reporting_rule_text, wrap_command

from ..metrics.events import event, event_file, value
from .conftest import CollectorProcess, FakeIntake, free_port, wait_for

Start = Callable[..., CollectorProcess]
OBJECTIVE = ["loss", "accuracy"]


def _finish(collector: CollectorProcess, intake: FakeIntake) -> None:
    assert collector.stop() == 0, collector.output()
    final = intake.final()
    assert final is not None, collector.output()
    assert final.summary == collector.summary()


def test_stdout_through_the_wrapper(
    tmp_path: Path, intake: FakeIntake, run_collector: Start
) -> None:
    log = tmp_path / "stdout.log"
    collector = run_collector(
        {"source": "stdout", "path": str(log), "metrics": OBJECTIVE, "objectiveStrategy": "min"},
        intake.url,
    )
    trainer = "for e in range(5): print(f'epoch={e} loss={1/(e+1)} accuracy={e/10} other=1')"
    command, args = wrap_command([sys.executable, "-c", trainer], [], str(log))
    result = subprocess.run([*command, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "epoch=4" in result.stdout
    # The wrapper's state file ends the collection without a SIGTERM.
    final = wait_for(intake.final, what="the final batch")
    assert intake.values("loss") == [1 / (e + 1) for e in range(5)]
    assert intake.values("other") == []  # not a metric of the experiment
    summary = collector.summary()
    assert summary.metrics[0].name == "loss"
    assert (summary.metrics[0].min, summary.metrics[0].step) == (0.2, 4)
    assert final.summary == summary
    assert collector.process.poll() is None  # a native sidecar waits to be stopped
    assert collector.stop() == 0


def test_text_file_and_sigterm_flush(
    tmp_path: Path, intake: FakeIntake, run_collector: Start
) -> None:
    path = tmp_path / "metrics.log"
    collector = run_collector({"source": "file", "path": str(path)}, intake.url)
    with open(path, "w") as handle:
        handle.write("step=1 loss=0.5\n")
        handle.flush()
        wait_for(lambda: intake.values("loss"), what="the first value")
        handle.write("step=2 loss=0.25\nstep=3 loss=")  # the last line is unfinished
        handle.flush()
        _finish(collector, intake)
    assert intake.values("loss") == [0.5, 0.25]
    assert collector.summary().metrics[0].latest == 0.25


def test_json_lines_file(tmp_path: Path, intake: FakeIntake, run_collector: Start) -> None:
    path = tmp_path / "metrics.jsonl"
    collector = run_collector({"source": "json", "path": str(path)}, intake.url)
    path.write_text(
        "".join(json.dumps({"step": s, "loss": 1.0 / (s + 1)}) + "\n" for s in range(3))
    )
    wait_for(lambda: len(intake.values("loss")) == 3, what="three values")
    _finish(collector, intake)
    assert collector.summary().metrics[0].count == 3


def test_tensorboard_event_directory(
    tmp_path: Path, intake: FakeIntake, run_collector: Start
) -> None:
    logdir = tmp_path / "tb"
    (logdir / "val").mkdir(parents=True)
    collector = run_collector({"source": "tfevent", "path": str(logdir)}, intake.url)
    data = event_file(*(event(s, 1.0, value("loss", simple=0.5 / (s + 1))) for s in range(4)))
    target = logdir / "val" / "events.out.tfevents.1.host"
    with open(target, "wb") as handle:
        handle.write(data[:50])  # a record cut in half, as a writer mid-flush leaves it
        handle.flush()
        handle.write(data[50:])
    wait_for(lambda: len(intake.values("val/loss")) == 4, what="four event values")
    _finish(collector, intake)


@pytest.fixture
def exporter() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {"step": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["step"] += 1
            body = f"# TYPE loss gauge\nloss {1 / state['step']}\nstep {state['step']}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["port"] = server.server_address[1]
    yield state
    server.shutdown()
    server.server_close()


def test_prometheus_scrape(
    exporter: dict[str, Any], intake: FakeIntake, run_collector: Start
) -> None:
    collector = run_collector(
        {"source": "prometheus", "port": exporter["port"], "intervalSeconds": 0.05}, intake.url
    )
    wait_for(lambda: len(intake.values("loss")) >= 3, what="three scrapes")
    _finish(collector, intake)
    steps = [o.step for b in intake.batches for o in b.observations]
    assert steps[:3] == [1, 2, 3]


def test_push_endpoint_and_client(
    intake: FakeIntake, run_collector: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubesweep.collector import client

    port = free_port()
    collector = run_collector({"source": "push", "port": port}, intake.url)
    monkeypatch.setenv("KUBESWEEP_REPORT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setitem(client._state, "unreachable_until", 0.0)

    def up() -> bool:
        monkeypatch.setitem(client._state, "unreachable_until", 0.0)
        return client.report(step=0, warmup=1.0)

    wait_for(up, what="the push endpoint")
    assert client.report(step=1, loss=0.5, accuracy=0.8)
    assert client.report(step=2, loss=float("nan"))
    wait_for(lambda: intake.values("loss") == [0.5], what="the pushed value")
    _finish(collector, intake)
    assert collector.summary().dropped == 1


def test_intake_down_still_leaves_the_summary(tmp_path: Path, run_collector: Start) -> None:
    path = tmp_path / "metrics.log"
    path.write_text("loss=0.7\nloss=0.3\n")
    collector = run_collector(
        {"source": "file", "path": str(path)},
        f"http://127.0.0.1:{free_port()}/v1/batches",
        KUBESWEEP_SHUTDOWN_SECONDS="0.5",
    )
    wait_for(lambda: "intake push failed" in collector.output(), what="a failed push")
    assert collector.stop() == 0
    summary = collector.summary()
    assert (summary.metrics[0].latest, summary.metrics[0].min) == (0.3, 0.3)


def test_intake_retries_after_errors(
    tmp_path: Path, intake: FakeIntake, run_collector: Start
) -> None:
    intake.fail_next = 2
    path = tmp_path / "metrics.log"
    path.write_text("loss=0.7\n")
    collector = run_collector({"source": "file", "path": str(path)}, intake.url)
    wait_for(lambda: intake.values("loss") == [0.7], what="the value after retries")
    _finish(collector, intake)


def test_forged_token_is_refused_and_the_summary_remains(
    tmp_path: Path, intake: FakeIntake, run_collector: Start
) -> None:
    path = tmp_path / "metrics.log"
    path.write_text("loss=0.7\n")
    collector = run_collector(
        {"source": "file", "path": str(path)}, intake.url, KUBESWEEP_TRIAL_TOKEN="0" * 64
    )
    wait_for(lambda: intake.refused, what="the intake to refuse the token")
    assert collector.stop() == 0
    assert intake.batches == []
    assert collector.summary().metrics[0].latest == 0.7


def test_without_an_intake_the_summary_is_written(tmp_path: Path, run_collector: Start) -> None:
    path = tmp_path / "metrics.log"
    path.write_text("loss=0.7\n")
    collector = run_collector({"source": "file", "path": str(path)})
    wait_for(lambda: "collecting" in collector.output(), what="start-up")
    assert collector.stop() == 0
    assert collector.summary().observed == 1


def test_readiness_marker_is_written_once_sigterm_is_handled(
    tmp_path: Path, run_collector: Start
) -> None:
    """The sidecar's startupProbe waits for this file before the trainer may start."""
    collector = run_collector({"source": "stdout", "metrics": OBJECTIVE}, None)
    marker = tmp_path / "collector.ready"
    wait_for(marker.exists, what="the readiness marker")
    # From now on a SIGTERM is handled: the summary is written even with no metrics.
    assert collector.stop() == 0, collector.output()
    assert len(collector.summary().metrics) == 0


def test_the_push_endpoint_listens_before_the_readiness_marker_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer starts on the marker: its first report must find the endpoint up."""
    import socket

    from kubesweep.collector import main as collector_main

    port = free_port()
    listening_at_marker: list[bool] = []

    def mark_ready(_config: object) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                listening_at_marker.append(True)
        except OSError:
            listening_at_marker.append(False)

    def run_once(self: collector_main.Collector) -> int:
        if self.push is not None:
            self.push.stop()
        return 0

    monkeypatch.setattr(collector_main, "_mark_ready", mark_ready)
    monkeypatch.setattr(collector_main.Collector, "run", run_once)
    env = {
        "KUBESWEEP_COLLECTOR_CONFIG": json.dumps({"source": "push", "port": port}),
        "KUBESWEEP_STDOUT_LOG": str(tmp_path / "stdout.log"),
        "KUBESWEEP_TERMINATION_LOG": str(tmp_path / "termination-log"),
    }
    assert collector_main.main(env) == 0
    assert listening_at_marker == [True]


def test_only_the_reporting_pod_of_a_multi_pod_trial_reports(
    tmp_path: Path, intake: FakeIntake, run_collector: Start
) -> None:
    rule = reporting_rule_text(
        [("metadata.annotations['batch.kubernetes.io/job-completion-index']", "0")]
    )
    logs = {rank: tmp_path / f"rank{rank}.log" for rank in (0, 1)}
    collectors = {
        rank: run_collector(
            {"source": "stdout", "path": str(logs[rank]), "metrics": OBJECTIVE},
            intake.url,
            KUBESWEEP_REPORTING_POD=rule,
            KUBESWEEP_REPORTING_FIELD_0=str(rank),
        )
        for rank in (0, 1)
    }
    # Both are up (their SIGTERM handlers installed) before the trainers run.
    wait_for(lambda: "not reporting" in collectors[1].output(), what="rank 1's collector")
    wait_for(lambda: "collecting stdout" in collectors[0].output(), what="rank 0's collector")
    for rank, log in logs.items():
        trainer = f"for e in range(3): print(f'loss={{{rank * 100} + e}}')"
        command, args = wrap_command([sys.executable, "-c", trainer], [], str(log))
        subprocess.run([*command, *args], capture_output=True, check=True)
    wait_for(intake.final, what="the reporting pod's final batch")
    assert collectors[1].stop() == 0
    assert collectors[0].stop() == 0
    assert intake.values("loss") == [0, 1, 2]  # rank 1's 100, 101, 102 never arrive
    assert not collectors[1].termination.exists()  # no summary to mistake for the trial's
    assert collectors[0].summary().metrics[0].count == 3
    assert "not reporting" in collectors[1].output()
