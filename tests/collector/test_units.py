"""The collector's parts without a process: config, tailing, sending, the client."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from kubesweep.collector import client
from kubesweep.collector.config import CONFIG_ENV, CollectorConfig, ConfigError
from kubesweep.collector.push import parse_body
from kubesweep.collector.sender import PermanentError, RejectedError, Sender
from kubesweep.collector.sources import FileTail
from kubesweep.metrics import Observation, Summary, decode_batch, parse_text_line
from kubesweep.podcontract import not_reporting_because, reporting_rule_text

from .conftest import free_port, wait_for


def test_config_from_the_renderers_env() -> None:
    config = CollectorConfig.from_env(
        {
            CONFIG_ENV: json.dumps(
                {"source": "stdout", "path": "/kubesweep/stdout.log", "metrics": ["loss", "acc"]}
            ),
            "KUBESWEEP_INTAKE_URL": "http://intake",
        }
    )
    assert config.objective_metric == "loss"
    assert config.keep_names == frozenset({"loss", "acc"})
    assert config.stdout_log == "/kubesweep/stdout.log"
    push = CollectorConfig.from_env({CONFIG_ENV: '{"source": "push", "port": 9000}'})
    assert push.push_port == 9000
    default = CollectorConfig.from_env({})
    assert (default.source, default.keep_names, default.intake_url) == ("stdout", None, None)


@pytest.mark.parametrize(
    "config",
    [
        "not json",
        "[]",
        '{"source": "carrier-pigeon"}',
        '{"source": "file"}',
        '{"source": "prometheus"}',
        '{"source": "stdout", "filters": "x"}',
        '{"source": "stdout", "objectiveStrategy": "median"}',
        '{"source": "stdout", "metrics": [1]}',
    ],
)
def test_bad_config_is_refused(config: str) -> None:
    with pytest.raises(ConfigError):
        CollectorConfig.from_env({CONFIG_ENV: config})


def test_file_tail_handles_partial_lines_truncation_and_replacement(tmp_path: Path) -> None:
    path = tmp_path / "log"
    tail = FileTail(str(path))
    assert tail.read_lines() == []  # not there yet
    path.write_bytes(b"a=1\nb=")
    assert tail.read_lines() == ["a=1"]
    with open(path, "ab") as handle:
        handle.write(b"2\r\n")
    assert tail.read_lines() == ["b=2"]
    path.write_bytes(b"c=3\n")  # truncated and rewritten
    assert tail.read_lines() == ["c=3"]
    replacement = tmp_path / "new"
    replacement.write_bytes(b"d=4\ne=\xff5")
    os.replace(replacement, path)
    assert tail.read_lines() == ["d=4"]
    assert tail.read_lines(final=True) == ["e=\ufffd5"]
    tail.close()


def _sender(
    responses: list[Exception | None], sent: list[bytes], urls: list[str] | None = None, **kw: Any
) -> Sender:
    def send(url: str, body: bytes, token: str | None, timeout: float) -> None:
        sent.append(body)
        if urls is not None:
            urls.append(url)
        outcome = responses.pop(0) if responses else None
        if outcome is not None:
            raise outcome

    return Sender(
        "http://intake",
        "t",
        trial="t",
        namespace="n",
        uid="u",
        boot="b",
        flush_seconds=0.01,
        send=send,
        **kw,
    )


def test_sender_keeps_the_batch_seq_across_retries_and_ends_with_final() -> None:
    sent: list[bytes] = []
    sender = _sender([OSError("down"), None], sent)
    sender.submit([Observation("loss", 1.0, 1)])
    sender.start()
    assert sender.close(Summary(), timeout=10)
    batches = [decode_batch(body) for body in sent]
    assert batches[0].seq == batches[1].seq == 1
    assert batches[1].observations == (Observation("loss", 1.0, 1),)
    assert batches[-1].final
    assert batches[-1].summary == Summary()


def test_sender_stops_for_a_refused_token_and_skips_rejected_batches() -> None:
    sent: list[bytes] = []
    sender = _sender([RejectedError("400"), PermanentError("403")], sent, refusal_patience=0)
    sender.submit([Observation("a", 1.0)])
    sender.start()
    wait_for(lambda: sent, what="the first batch")
    sender.submit([Observation("a", 2.0)])
    assert not sender.close(Summary(), timeout=5)
    assert sender.refused
    assert len(sent) == 2


def test_sender_retries_a_refusal_for_a_while_and_names_its_trial_in_the_path() -> None:
    """The intake refuses a trial it has not indexed yet like a forged token: retry a while."""
    sent: list[bytes] = []
    urls: list[str] = []
    sender = _sender([PermanentError("403"), None], sent, urls, refusal_patience=30)
    sender.submit([Observation("a", 1.0)])
    sender.start()
    assert sender.close(Summary(), timeout=10)
    assert not sender.refused
    assert [decode_batch(body).seq for body in sent] == [1, 1]  # the refused batch, again
    assert set(urls) == {"http://intake/n/t"}


def test_outbox_is_bounded() -> None:
    sender = Sender("http://x", None, trial="t", namespace="n", uid="u", boot="b", max_pending=3)
    sender.submit(Observation("a", float(i)) for i in range(5))
    assert sender.discarded == 2


def test_push_bodies() -> None:
    json_body = parse_body(b'{"step": 1, "loss": 0.5}', "application/json")
    assert json_body is not None
    assert json_body.observations == (Observation("loss", 0.5, 1),)
    text_body = parse_body(b"step=2 loss=0.25\n", "text/plain")
    assert text_body is not None
    assert text_body.observations == (Observation("loss", 0.25, 2),)
    assert parse_body(b"{broken", "application/json") is None


def test_push_endpoint_refuses_a_truncated_body_and_drops_a_silent_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from kubesweep.collector import push

    monkeypatch.setattr(push._Handler, "timeout", 0.5)
    server = push.PushServer(0)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            conn.sendall(
                b"POST /v1/report HTTP/1.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n" + b'{"step": 1, "loss": 0.5}'
            )
            conn.shutdown(socket.SHUT_WR)  # the rest never comes
            answer = conn.recv(4096)
        assert answer.startswith(b"HTTP/1.0 400"), answer
        assert server.poll().observations == ()  # nothing half-read was taken
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as silent:
            silent.sendall(b"POST /v1/report HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
            # The server closes the connection once it has been silent for its timeout.
            assert silent.recv(4096) == b""
    finally:
        server.stop()


def test_client_falls_back_to_printing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBESWEEP_PUSH_URL", f"http://127.0.0.1:{free_port()}/v1/report")
    monkeypatch.setitem(client._state, "unreachable_until", 0.0)
    assert not client.report(step=3, loss=0.125, accuracy=1)
    assert not client.report(step=4, loss=0.1)  # printed at once, no second connection attempt
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "step=3 loss=0.125 accuracy=1.0"
    parsed = parse_text_line(lines[0])
    assert [(o.name, o.value, o.step) for o in parsed.observations] == [
        ("loss", 0.125, 3),
        ("accuracy", 1.0, 3),
    ]
    with pytest.raises(ValueError, match="step"):
        client.report(step=-1, loss=1.0)


def test_report_is_exposed_lazily_on_the_package() -> None:
    import kubesweep

    assert kubesweep.report is client.report


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"KUBESWEEP_REPORTING_FIELD_0": "0", "KUBESWEEP_REPORTING_FIELD_1": "workers"}, None),
        (
            {"KUBESWEEP_REPORTING_FIELD_0": "3", "KUBESWEEP_REPORTING_FIELD_1": "workers"},
            "metadata.annotations['index'] is '3', the reporting pod's is '0'",
        ),
        (
            {"KUBESWEEP_REPORTING_FIELD_0": "0"},  # a label the pod lacks reads as ""
            "metadata.labels['rjob'] is '', the reporting pod's is 'workers'",
        ),
    ],
)
def test_the_reporting_pod_is_the_one_whose_fields_match(
    fields: dict[str, str], reason: str | None
) -> None:
    rule = reporting_rule_text(
        [("metadata.annotations['index']", "0"), ("metadata.labels['rjob']", "workers")]
    )
    assert not_reporting_because({"KUBESWEEP_REPORTING_POD": rule, **fields}) == reason
    config = CollectorConfig.from_env({"KUBESWEEP_REPORTING_POD": rule, **fields})
    assert config.reporting is (reason is None)


@pytest.mark.parametrize("rule", ["", "not json", "{}", '[{"env": 1}]'])
def test_a_pod_without_a_readable_rule_reports(rule: str) -> None:
    assert not_reporting_because({"KUBESWEEP_REPORTING_POD": rule}) is None
