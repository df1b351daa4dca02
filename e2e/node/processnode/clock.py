"""Timestamps as the API server expects them (RFC 3339, UTC)."""

from __future__ import annotations

import datetime as dt


def now() -> str:
    """Seconds precision: status times (conditions, container states)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """Microsecond precision: a Lease's ``renewTime`` (a ``MicroTime``)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
