"""The localhost push endpoint: any language can POST its metrics.

``POST /v1/report`` (any path is taken) with a JSON object (``{"step": 3, "loss": 0.2}``, the same
shape as a JSON-lines line, or a list of them) or with ``text/plain``
``name=value`` lines. The reply is ``202`` with the counts of accepted and
dropped values, sent as soon as the body is parsed; nothing the trainer does
waits on the intake. ``GET /healthz`` answers ``200``.

It listens on 127.0.0.1 only: the trainer shares the pod's network namespace,
nothing outside the pod can reach it, so it needs no authentication. A body
shorter than its declared length is refused (400) rather than parsed in part,
and a connection that sends nothing for ``IDLE_SECONDS`` is closed, so a stalled
client cannot keep a thread for ever.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubesweep.metrics.jsonl import parse_json_object
from kubesweep.metrics.observation import Parsed
from kubesweep.metrics.text import parse_text

logger = logging.getLogger(__name__)

MAX_BODY = 1 << 20
#: Seconds a connection may stay silent (headers or body) before it is closed.
IDLE_SECONDS = 10.0


def parse_body(body: bytes, content_type: str) -> Parsed | None:
    """The observations of a pushed body, or ``None`` if it is not readable."""
    text = body.decode("utf-8", "replace")
    stripped = text.lstrip()
    if "json" in content_type or stripped.startswith(("{", "[")):
        try:
            return parse_json_object(json.loads(text))
        except (ValueError, RecursionError):
            return None
    return parse_text(text.splitlines())


class _Handler(BaseHTTPRequestHandler):
    server: PushServer
    timeout = IDLE_SECONDS  # the socket's timeout: a silent client's read ends, its thread too

    def do_GET(self) -> None:
        self._reply(200 if self.path == "/healthz" else 404, {"ok": self.path == "/healthz"})

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._reply(413, {"error": f"body must be at most {MAX_BODY} bytes"})
            return
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            return
        if len(body) < length:
            self._reply(400, {"error": f"body ended after {len(body)} of {length} bytes"})
            return
        parsed = parse_body(body, self.headers.get("Content-Type", ""))
        if parsed is None:
            self._reply(400, {"error": "body is neither JSON nor name=value lines"})
            return
        self.server.received.put(parsed)
        self._reply(202, {"accepted": len(parsed.observations), "dropped": parsed.dropped})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("push endpoint: " + format, *args)


class PushServer(ThreadingHTTPServer):
    """The push endpoint; what it receives waits in :attr:`received` for the main loop."""

    daemon_threads = True

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.received: queue.SimpleQueue[Parsed] = queue.SimpleQueue()
        super().__init__((host, port), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, name="push", daemon=True)

    @property
    def port(self) -> int:
        """The port bound (useful when asked for port 0)."""
        return int(self.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def poll(self, *, final: bool = False) -> Parsed:  # noqa: ARG002
        """Everything received since the last poll."""
        parts = []
        while True:
            try:
                parts.append(self.received.get_nowait())
            except queue.Empty:
                return Parsed.concat(parts)

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self.shutdown()
        self.server_close()
