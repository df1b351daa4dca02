"""TensorBoard event files: TFRecord framing, the protobuf fields of scalars, corruption."""

from __future__ import annotations

import glob
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubesweep.metrics import Observation, parse_event, parse_event_file, scan_records
from kubesweep.metrics.tfevent import crc32c, masked_crc32c

from .events import event, event_file, tensor, value


def test_crc32c_known_answers() -> None:
    # RFC 3720 test vectors.
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"123456789") == 0xE3069283
    assert masked_crc32c(b"") == 0xA282EAD8


def test_simple_and_tensor_scalars() -> None:
    data = event_file(
        event(1, 100.0, value("loss", simple=0.5)),
        event(2, 101.0, value("acc", tensor_bytes=tensor(1, float_val=0.75))),
        event(3, 102.0, value("lr", tensor_bytes=tensor(2, double_val=0.001))),
        event(4, 103.0, value("x", tensor_bytes=tensor(1, content=struct.pack("<f", 2.0)))),
        event(5, 104.0, value("image", tensor_bytes=tensor(7, content=b"\x89PNG"))),
        event(6, 105.0, value("bad", simple=float("nan"))),
    )
    parsed = parse_event_file(data)
    assert parsed.observations == (
        Observation("loss", 0.5, 1, 100.0),
        Observation("acc", 0.75, 2, 101.0),
        Observation("lr", 0.001, 3, 102.0),
        Observation("x", 2.0, 4, 103.0),
    )
    assert parsed.dropped == 1


def test_incremental_reads_at_every_split() -> None:
    data = event_file(*(event(i, 1.0, value("loss", simple=float(i))) for i in range(3)))
    whole = parse_event_file(data)
    for cut in range(len(data) + 1):
        first = scan_records(data[:cut])
        rest = scan_records(data[first.consumed :])
        assert first.corrupt == rest.corrupt == 0
        assert first.records + rest.records == scan_records(data).records
    assert len(whole.observations) == 3


def test_corrupt_framing_is_skipped_and_counted() -> None:
    good = event_file(event(1, 1.0, value("a", simple=1.0)))
    broken = bytearray(event_file(event(2, 1.0, value("b", simple=2.0))))
    broken[-1] ^= 0xFF  # data checksum of the last record
    data = b"garbage!!" + good + bytes(broken) + good
    parsed = parse_event_file(data)
    assert [o.name for o in parsed.observations] == ["a", "a"]
    assert parsed.dropped >= 2


def test_tensorboardx_files_when_available(tmp_path: Path) -> None:
    try:
        from tensorboardX import SummaryWriter  # type: ignore[import-untyped]  # no type hints
    except Exception:  # tensorboardX imports torch when present, which may be broken
        pytest.skip("tensorboardX is not importable here")
    writer = SummaryWriter(str(tmp_path))
    for step in range(5):
        writer.add_scalar("val/loss", 1.0 / (step + 1), step)
    writer.close()
    (path,) = glob.glob(f"{tmp_path}/*tfevents*")
    with open(path, "rb") as handle:
        parsed = parse_event_file(handle.read())
    assert [(o.name, o.step) for o in parsed.observations] == [("val/loss", i) for i in range(5)]
    assert parsed.observations[-1].value == pytest.approx(0.2)


def _representable(values: list[float]) -> set[float]:
    return {struct.unpack("<f", struct.pack("<f", v))[0] for v in values} | set(values)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_garbage_bytes_never_raise(data: bytes) -> None:
    parse_event_file(data)
    parse_event(data)


@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=5),
    st.data(),
)
def test_damaged_files_never_invent(values: list[float], data: st.DataObject) -> None:
    raw = bytearray(
        event_file(*(event(i, 1.0, value("m", simple=v)) for i, v in enumerate(values)))
    )
    for _ in range(data.draw(st.integers(0, 3))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    parsed = parse_event_file(bytes(raw))
    allowed = _representable(values)
    for observation in parsed.observations:
        assert observation.value in allowed
