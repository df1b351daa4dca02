"""Where the collector reads metrics from: files it tails and an endpoint it scrapes.

Every source has ``poll() -> Parsed``, which reads whatever is new and returns
at once (apart from a bounded scrape timeout), so one loop serves any source
and the trainer never waits on the collector. Parsing is delegated to the pure
:mod:`kubesweep.metrics` parsers; this module only does the reading: offsets,
partial lines, truncated or replaced files, event files appearing late.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Protocol

from kubesweep.metrics.jsonl import parse_json_line
from kubesweep.metrics.observation import Observation, Parsed
from kubesweep.metrics.prometheus import parse_prometheus
from kubesweep.metrics.text import MAX_LINE_LENGTH, TextFormat, parse_text_line
from kubesweep.metrics.tfevent import parse_event_records, scan_records

logger = logging.getLogger(__name__)

#: Bytes read from one file per poll; the rest waits for the next poll.
READ_CHUNK = 4 << 20
#: Event files followed at most in one directory tree.
MAX_EVENT_FILES = 256


class Source(Protocol):
    """Something that yields new observations when polled."""

    def poll(self, *, final: bool = False) -> Parsed:
        """What is new since the last poll; ``final`` when nothing more will come."""
        ...


class FileTail:
    """Reads a growing file line by line, surviving truncation and replacement."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._handle: int | None = None
        self._inode: tuple[int, int] | None = None
        self._offset = 0
        self._partial = b""

    def _open(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        stat = os.fstat(fd)
        self._handle, self._inode, self._offset, self._partial = (
            fd,
            (stat.st_dev, stat.st_ino),
            0,
            b"",
        )
        return True

    def _read_all(self) -> bytes:
        assert self._handle is not None
        chunks = []
        remaining = READ_CHUNK
        while remaining > 0:
            chunk = os.pread(self._handle, min(remaining, 1 << 20), self._offset)
            if not chunk:
                break
            chunks.append(chunk)
            self._offset += len(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def read_lines(self, *, final: bool = False) -> list[str]:
        """Complete new lines (and, if ``final``, the unterminated last one)."""
        if self._handle is None and not self._open():
            return []
        data = self._read_all()
        try:
            stat = os.stat(self.path)
            replaced = (stat.st_dev, stat.st_ino) != self._inode
            truncated = not replaced and stat.st_size < self._offset
        except OSError:
            replaced = truncated = False
        if replaced or truncated:
            self.close()
            if self._open():
                data += b"\n" + self._read_all()
        buffer = self._partial + data
        *lines, self._partial = buffer.split(b"\n")
        if final and self._partial:
            lines.append(self._partial)
            self._partial = b""
        if len(self._partial) > MAX_LINE_LENGTH:
            logger.warning("dropping a line longer than %d bytes in %s", MAX_LINE_LENGTH, self.path)
            self._partial = b""
        return [line.decode("utf-8", "replace").rstrip("\r") for line in lines if line]

    def close(self) -> None:
        """Stop following the current file."""
        if self._handle is not None:
            os.close(self._handle)
            self._handle = None


class TextFileSource:
    """``name=value`` lines from a file (also the stdout log the wrapper writes)."""

    def __init__(self, path: str, fmt: TextFormat) -> None:
        self._tail = FileTail(path)
        self._fmt = fmt

    def poll(self, *, final: bool = False) -> Parsed:
        return Parsed.concat(
            parse_text_line(line, self._fmt) for line in self._tail.read_lines(final=final)
        )


class JsonFileSource:
    """JSON-lines from a file."""

    def __init__(self, path: str) -> None:
        self._tail = FileTail(path)

    def poll(self, *, final: bool = False) -> Parsed:
        return Parsed.concat(parse_json_line(line) for line in self._tail.read_lines(final=final))


class _EventFile:
    def __init__(self, path: str, prefix: str) -> None:
        self.path = path
        self.prefix = prefix
        self.offset = 0
        self.buffer = b""


class TfEventSource:
    """Scalars from TensorBoard event files anywhere under a directory.

    A file in a subdirectory (a TensorBoard "run", e.g. ``val/``) prefixes its
    tags with that path, so ``train/…/loss`` and ``val/…/loss`` stay apart.
    """

    def __init__(
        self,
        directory: str,
        *,
        rescan_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self._files: dict[str, _EventFile] = {}
        self._rescan_seconds = rescan_seconds
        self._clock = clock
        self._next_scan = float("-inf")

    def _discover(self) -> None:
        if os.path.isfile(self.directory):
            if self.directory not in self._files:
                self._files[self.directory] = _EventFile(self.directory, "")
            return
        for root, dirs, names in os.walk(self.directory):
            dirs.sort()
            for name in sorted(names):
                if "tfevents" not in name or len(self._files) >= MAX_EVENT_FILES:
                    continue
                path = os.path.join(root, name)
                if path not in self._files:
                    relative = os.path.relpath(root, self.directory)
                    prefix = "" if relative == "." else relative.replace(os.sep, "/") + "/"
                    self._files[path] = _EventFile(path, prefix)

    def poll(self, *, final: bool = False) -> Parsed:
        now = self._clock()
        if final or now >= self._next_scan:  # walking a checkpoint-laden tree is not free
            self._next_scan = now + self._rescan_seconds
            self._discover()
        parts: list[Parsed] = []
        for event_file in self._files.values():
            try:
                with open(event_file.path, "rb") as handle:
                    handle.seek(event_file.offset)
                    data = handle.read(READ_CHUNK)
            except OSError:
                continue
            event_file.offset += len(data)
            buffer = event_file.buffer + data
            scan = scan_records(buffer, final=final)
            event_file.buffer = buffer[scan.consumed :]
            parsed = parse_event_records(scan.records) + Parsed(dropped=scan.corrupt)
            if event_file.prefix:
                parsed = Parsed(
                    tuple(
                        Observation(event_file.prefix + o.name, o.value, o.step, o.timestamp)
                        for o in parsed.observations
                    ),
                    parsed.dropped,
                )
            parts.append(parsed)
        return Parsed.concat(parts)


class PrometheusSource:
    """Scrapes a Prometheus endpoint on localhost every ``interval`` seconds."""

    def __init__(
        self,
        port: int,
        path: str,
        interval: float,
        *,
        step_metric: str,
        names: frozenset[str] | None,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 2.0,
    ) -> None:
        self.url = f"http://127.0.0.1:{port}{path if path.startswith('/') else '/' + path}"
        self._interval = interval
        self._step_metric = step_metric
        self._names = names
        self._clock = clock
        self._timeout = timeout
        self._next = 0.0
        self.scrapes = 0

    def poll(self, *, final: bool = False) -> Parsed:
        now = self._clock()
        if now < self._next and not final:
            return Parsed()
        self._next = now + self._interval
        try:
            with urllib.request.urlopen(self.url, timeout=self._timeout) as response:
                text = response.read(8 << 20).decode("utf-8", "replace")
        except (OSError, urllib.error.URLError, ValueError) as error:
            logger.debug("scrape of %s failed: %s", self.url, error)
            return Parsed()
        index = self.scrapes
        self.scrapes += 1
        return parse_prometheus(
            text,
            scrape_index=index,
            timestamp=time.time(),
            step_metric=self._step_metric,
            names=self._names,
        )
