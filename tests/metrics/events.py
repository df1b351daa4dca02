"""A tiny protobuf encoder for TensorBoard events, independent of the decoder under test."""

from __future__ import annotations

import struct

from kubesweep.metrics.tfevent import frame_record


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, wire: int, payload: bytes) -> bytes:
    key = varint(number << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def tensor(
    dtype: int,
    *,
    float_val: float | None = None,
    double_val: float | None = None,
    content: bytes | None = None,
) -> bytes:
    out = field(1, 0, varint(dtype)) + field(2, 2, b"")
    if float_val is not None:
        out += field(5, 2, struct.pack("<f", float_val))
    if double_val is not None:
        out += field(6, 2, struct.pack("<d", double_val))
    if content is not None:
        out += field(4, 2, content)
    return out


def value(tag: str, *, simple: float | None = None, tensor_bytes: bytes | None = None) -> bytes:
    out = field(1, 2, tag.encode())
    if simple is not None:
        out += field(2, 5, struct.pack("<f", simple))
    if tensor_bytes is not None:
        out += field(8, 2, tensor_bytes)
    return out


def event(step: int, wall_time: float, *values: bytes) -> bytes:
    summary = b"".join(field(1, 2, v) for v in values)
    return (
        field(1, 1, struct.pack("<d", wall_time)) + field(2, 0, varint(step)) + field(5, 2, summary)
    )


def event_file(*events: bytes) -> bytes:
    version = field(1, 1, struct.pack("<d", 1.0)) + field(3, 2, b"brain.Event:2")
    return b"".join(frame_record(e) for e in (version, *events))
