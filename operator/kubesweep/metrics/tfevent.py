"""TensorBoard event files, decoded with the standard library alone.

The collector sidecar must stay small, so instead of TensorFlow or protobuf this
module reads the two formats involved directly:

* TFRecord framing: ``uint64 length``, ``uint32 masked_crc32c(length)``,
  ``data``, ``uint32 masked_crc32c(data)``, all little-endian.
* The few protobuf fields of ``Event`` that carry scalars: ``wall_time`` (1,
  double), ``step`` (2, int64) and ``summary`` (5) with repeated ``value`` (1)
  of ``tag`` (1), ``simple_value`` (2, float) or ``tensor`` (8) holding one
  float, double or integer.

Decoding is incremental (:func:`scan_records` reports how many bytes it used, so
a file that is still being written is read again from there) and total: corrupt
framing is skipped by searching for the next valid header, and a record that
fails its checksum or decoding is counted as dropped, never raised.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from kubesweep.metrics.observation import ParseBuilder, Parsed

#: Records longer than this are skipped unread (images, graphs; never a scalar).
MAX_RECORD_LENGTH = 1 << 20
#: Records whose length is beyond this are taken as corrupt framing.
_MAX_SANE_LENGTH = 1 << 30
_HEADER = 12
_FOOTER = 4


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord uses."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """``data`` framed as one TFRecord (used by tests and tools that write events)."""
    length = struct.pack("<Q", len(data))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


@dataclass(frozen=True)
class RecordScan:
    """Complete records found in a buffer, bytes used, and records lost to corruption."""

    records: tuple[bytes, ...]
    consumed: int
    corrupt: int = 0


def scan_records(buffer: bytes, *, final: bool = False) -> RecordScan:
    """Split ``buffer`` into TFRecords; an incomplete tail is left unconsumed.

    A header whose length checksum fails means the framing is lost: the scan
    moves on one byte at a time until a valid header appears. With ``final`` (no
    more bytes will come) an incomplete tail is consumed and counted as corrupt.
    """
    records: list[bytes] = []
    corrupt = 0
    position = 0
    resyncing = False
    size = len(buffer)
    while size - position >= _HEADER:
        length_bytes = buffer[position : position + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack("<I", buffer[position + 8 : position + _HEADER])
        if length > _MAX_SANE_LENGTH or masked_crc32c(length_bytes) != length_crc:
            if not resyncing:
                corrupt += 1
                resyncing = True
            position += 1
            continue
        resyncing = False
        end = position + _HEADER + length + _FOOTER
        if end > size:
            break
        data = buffer[position + _HEADER : position + _HEADER + length]
        if length <= MAX_RECORD_LENGTH:
            (data_crc,) = struct.unpack("<I", buffer[end - _FOOTER : end])
            if masked_crc32c(data) == data_crc:
                records.append(data)
            else:
                corrupt += 1
        position = end
    if final and position < size:
        corrupt += 0 if resyncing else 1
        position = size
    return RecordScan(tuple(records), position, corrupt)


class _WireError(Exception):
    """Malformed protobuf; caught inside this module."""


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if position >= len(data) or shift > 63:
            raise _WireError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, position
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field of a protobuf message."""
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 1:
            value, position = data[position : position + 8], position + 8
        elif wire == 2:
            length, position = _varint(data, position)
            value, position = data[position : position + length], position + length
        elif wire == 5:
            value, position = data[position : position + 4], position + 4
        else:
            raise _WireError(f"unsupported wire type {wire}")
        if position > len(data):
            raise _WireError("truncated field")
        yield number, wire, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# TensorProto dtypes that can carry a scalar metric.
_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_INT64 = 1, 2, 3, 9
_PACKED = {_DT_FLOAT: ("<f", 4), _DT_DOUBLE: ("<d", 8)}


def _tensor_scalar(data: bytes) -> float | None:
    """The single number of a scalar TensorProto, or ``None`` if it is not one."""
    dtype = 0
    numbers: list[float] = []
    content = b""
    for number, wire, value in _fields(data):
        if number == 1 and wire == 0:
            assert isinstance(value, int)
            dtype = value
        elif number == 4 and wire == 2:
            assert isinstance(value, bytes)
            content = value
        elif number in (5, 6) and isinstance(value, bytes):
            fmt = "<f" if number == 5 else "<d"
            width = struct.calcsize(fmt)
            if len(value) % width:
                return None
            numbers.extend(x for (x,) in struct.iter_unpack(fmt, value))
        elif number in (7, 10):
            if wire == 0:
                assert isinstance(value, int)
                numbers.append(_signed64(value) if number == 10 else _signed32(value))
            elif wire == 2:
                assert isinstance(value, bytes)
                numbers.extend(_packed_varints(value, signed32=number == 7))
    if content:
        fmt_width = _PACKED.get(dtype)
        if fmt_width is None or len(content) != fmt_width[1]:
            return None
        numbers.append(struct.unpack(fmt_width[0], content)[0])
    return float(numbers[0]) if len(numbers) == 1 else None


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _packed_varints(data: bytes, *, signed32: bool) -> list[int]:
    out = []
    position = 0
    while position < len(data):
        value, position = _varint(data, position)
        out.append(_signed32(value) if signed32 else _signed64(value))
    return out


def _summary_values(data: bytes) -> Iterator[tuple[str, float | None]]:
    """(tag, number or ``None`` for a non-scalar) of each value of a Summary."""
    for number, wire, value in _fields(data):
        if number != 1 or wire != 2:
            continue
        assert isinstance(value, bytes)
        tag = ""
        scalar: float | None = None
        for field, field_wire, item in _fields(value):
            if field == 1 and field_wire == 2:
                assert isinstance(item, bytes)
                tag = item.decode("utf-8", "replace")
            elif field == 2 and field_wire == 5:
                assert isinstance(item, bytes)
                scalar = struct.unpack("<f", item)[0]
            elif field == 8 and field_wire == 2:
                assert isinstance(item, bytes)
                scalar = _tensor_scalar(item)
        if tag:
            yield tag, scalar


def parse_event(record: bytes) -> Parsed:
    """The scalar observations of one serialized ``Event``; never raises.

    Non-scalar summaries (images, histograms) are ignored; a record that is not
    a valid protobuf message counts as one dropped observation.
    """
    try:
        wall_time: float | None = None
        step: int | None = 0  # proto3 leaves a zero step out
        summaries: list[bytes] = []
        for number, wire, value in _fields(record):
            if number == 1 and wire == 1:
                assert isinstance(value, bytes)
                wall_time = struct.unpack("<d", value)[0]
            elif number == 2 and wire == 0:
                assert isinstance(value, int)
                step = _signed64(value)
            elif number == 5 and wire == 2:
                assert isinstance(value, bytes)
                summaries.append(value)
        builder = ParseBuilder()
        if wall_time is not None and not 0 <= wall_time < 1e11:
            wall_time = None
        if step is not None and step < 0:
            step = None
        for summary in summaries:
            for tag, scalar in _summary_values(summary):
                if scalar is not None:
                    builder.add(tag, scalar, step, wall_time)
        return builder.build()
    except (_WireError, struct.error):
        return Parsed(dropped=1)


def parse_event_records(records: tuple[bytes, ...]) -> Parsed:
    """The observations of many serialized events, in order."""
    return Parsed.concat(parse_event(record) for record in records)


def parse_event_file(data: bytes) -> Parsed:
    """All observations of a complete event file's bytes (framing errors count as dropped)."""
    scan = scan_records(data, final=True)
    return parse_event_records(scan.records) + Parsed(dropped=scan.corrupt)
