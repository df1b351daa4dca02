"""Trial programs that report one known series through each metrics source.

``e2e/test_metrics_sources.py`` runs ``python e2e/trainers_for_sources.py
WRITER K [PORT]`` as the primary container of its trials (the process node runs
it from the repository root with the repository's Python) and compares the Trial
status with :func:`series`, the very numbers the program wrote. Every value is
exactly representable as a float32 (TensorBoard scalars are float32) and is
written with ``repr`` where it is text, so "equal" can mean equal, not close.

Each writer emits the same observations in its source's own format, plus a
``noise`` metric the Experiment does not ask for (the collector must drop it):

- ``stdout``: ``step=... loss=... accuracy=...`` lines on standard output;
- ``file``: the same lines behind an RFC 3339 time, appended to
  ``$KUBESWEEP_METRICS_PATH``;
- ``json``: one JSON object per step appended to ``$KUBESWEEP_METRICS_PATH``;
- ``tfevent``: a TensorBoard event file in the ``$KUBESWEEP_METRICS_PATH``
  directory, encoded here (TFRecord framing, CRC-32C and the few protobuf fields
  of ``Event``) without TensorFlow and without the project's own decoder;
- ``tensorboardx``: the same through ``tensorboardX.SummaryWriter``, a writer
  trainers really use;
- ``prometheus``: ``/metrics`` on ``127.0.0.1:PORT`` through
  ``prometheus_client``, one step per scrape so every step is scraped exactly
  once, exiting after the last one;
- ``push``: ``kubesweep.report(step=..., ...)``; it exits 3 if a report falls back
  to printing, which the push source does not read.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import NamedTuple

#: The steps reported, deliberately not 0, 1, 2, ... so a lost step number shows.
STEPS = (0, 10, 20, 30, 40)
#: Loss offsets per step: the minimum (step 20) is neither the first nor the latest.
_LOSS_SHAPE = (0.5, 0.25, 0.125, 0.375, 0.3125)
#: A metric every writer reports and no Experiment asks for.
NOISE = "noise"
#: Pause between steps of the file writers, so the collector reads a growing file.
_PAUSE = 0.3


class Point(NamedTuple):
    step: int
    loss: float
    accuracy: float


def series(k: int) -> list[Point]:
    """What the trainer of parameter ``k`` (an integer, 1 to 1000) reports, in order."""
    return [
        Point(step, k / 16 + shape, index / 8 + k / 8192)
        for index, (step, shape) in enumerate(zip(STEPS, _LOSS_SHAPE, strict=True))
    ]


def _line(point: Point) -> str:
    return f"step={point.step} loss={point.loss!r} accuracy={point.accuracy!r} {NOISE}=1.5"


def _metrics_path() -> Path:
    return Path(os.environ["KUBESWEEP_METRICS_PATH"])


def write_stdout(points: list[Point]) -> int:
    print(f"training with {len(points)} steps", flush=True)
    for point in points:
        print(_line(point), flush=True)
    return 0


def _append_lines(lines: list[str]) -> int:
    path = _metrics_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
            handle.flush()
            time.sleep(_PAUSE)
    return 0


def write_file(points: list[Point]) -> int:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return _append_lines([f"{stamp} {_line(point)}" for point in points])


def write_json(points: list[Point]) -> int:
    return _append_lines(
        [
            json.dumps(
                {"step": p.step, "loss": p.loss, "accuracy": p.accuracy, NOISE: 1.5, "tag": "val"}
            )
            for p in points
        ]
    )


# --- TensorBoard events, encoded from the format's definition ---------------------------------


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked(length)) + data + struct.pack("<I", _masked(data))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = _varint(number << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def _scalar_event(step: int, scalars: dict[str, float]) -> bytes:
    # Event{wall_time=1, step=2, summary=5}; Summary{value=1}; Value{tag=1, simple_value=2}
    values = b"".join(
        _field(1, 2, _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", number)))
        for tag, number in scalars.items()
    )
    return (
        _field(1, 1, struct.pack("<d", time.time()))
        + _field(2, 0, _varint(step))
        + _field(5, 2, values)
    )


def write_tfevent(points: list[Point]) -> int:
    directory = _metrics_path()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}"
    version = _field(1, 1, struct.pack("<d", time.time())) + _field(3, 2, b"brain.Event:2")
    with path.open("ab") as handle:
        handle.write(_record(version))
        for point in points:
            scalars = {"loss": point.loss, "accuracy": point.accuracy, NOISE: 1.5}
            handle.write(_record(_scalar_event(point.step, scalars)))
            handle.flush()
            time.sleep(_PAUSE)
    return 0


def write_tensorboardx(points: list[Point]) -> int:
    from tensorboardX import SummaryWriter  # type: ignore[import-untyped]

    writer = SummaryWriter(logdir=str(_metrics_path()), flush_secs=1)
    for point in points:
        writer.add_scalar("loss", point.loss, point.step)
        writer.add_scalar("accuracy", point.accuracy, point.step)
        writer.add_scalar(NOISE, 1.5, point.step)
        writer.flush()
    writer.close()
    return 0


# --- Prometheus and push ----------------------------------------------------------------------


def write_prometheus(points: list[Point], port: int) -> int:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    step = Gauge("step", "training step", registry=registry)
    loss = Gauge("loss", "validation loss", registry=registry)
    accuracy = Gauge("accuracy", "validation accuracy", registry=registry)
    Gauge(NOISE, "not asked for", registry=registry).set(1.5)
    served = {"count": 0}
    done = threading.Event()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                if self.path != "/metrics" or done.is_set():
                    self.send_error(404)
                    return
                point = points[served["count"]]
                step.set(point.step)
                loss.set(point.loss)
                accuracy.set(point.accuracy)
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                served["count"] += 1
                if served["count"] == len(points):
                    done.set()

        def log_message(self, format: str, *args: object) -> None:
            print(f"scrape: {format % args}", flush=True)

    server = HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    finished = done.wait(120)
    server.shutdown()
    server.server_close()
    print(f"served {served['count']} of {len(points)} steps", flush=True)
    return 0 if finished else 4


def write_push(points: list[Point]) -> int:
    import kubesweep

    for point in points:
        if not kubesweep.report(
            step=point.step, loss=point.loss, accuracy=point.accuracy, **{NOISE: 1.5}
        ):
            print("kubesweep.report fell back to stdout: no collector took it", flush=True)
            return 3
    return 0


WRITERS: dict[str, Callable[[list[Point]], int]] = {
    "stdout": write_stdout,
    "file": write_file,
    "json": write_json,
    "tfevent": write_tfevent,
    "tensorboardx": write_tensorboardx,
    "push": write_push,
}


def main(argv: list[str]) -> int:
    writer, k = argv[0], int(argv[1])
    points = series(k)
    if writer == "prometheus":
        return write_prometheus(points, int(argv[2]))
    return WRITERS[writer](points)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
