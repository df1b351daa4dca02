"""The kubelet's HTTPS port: container logs, so ``kubectl logs`` works through the API server.

The API server proxies ``kubectl logs`` to ``/containerLogs/<ns>/<pod>/<container>``
on the node's port (``previous``, ``tailLines`` and ``follow`` supported), over
TLS with the node's serving certificate; given a client CA, the node asks the API
server for a client certificate it signed.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from node.processnode.kubelet import ProcessNode
from node.processnode.layout import container_log_path, pid_file

log = logging.getLogger(__name__)


def serve_logs(
    node: ProcessNode, cert: str, key: str, client_ca: str | None
) -> ThreadingHTTPServer:
    """Serve ``/containerLogs/<ns>/<pod>/<container>``, so ``kubectl logs`` works."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(url.query)
            parts = url.path.strip("/").split("/")
            if url.path in ("/healthz", "/readyz", "/livez"):
                self._send(200, b"ok")
                return
            if len(parts) != 4 or parts[0] != "containerLogs":
                self._send(404, b"not found")
                return
            _, ns, pod, container = parts
            previous = q.get("previous", [""])[0] == "true"
            try:
                path = container_log_path(node.state_dir, ns, pod, container, previous)
            except FileNotFoundError as e:
                self._send(404, str(e).encode())
                return
            f = open(path, "rb")  # noqa: SIM115 - kept open to follow
            text = f.read().decode(errors="replace")
            if "tailLines" in q:
                text = "\n".join(text.splitlines()[-int(q["tailLines"][0]) :]) + "\n"
            if q.get("follow", [""])[0] != "true" or previous:
                f.close()
                self._send(200, text.encode())
                return
            # follow: stream what the file gains until the container's process is gone
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            pidfile = pid_file(path.parent.parent, container)
            with f:
                self.wfile.write(text.encode())
                self.wfile.flush()
                while True:
                    running = pidfile.exists()
                    chunk = f.read()
                    if chunk:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    elif not running or node.stop.is_set():
                        return
                    else:
                        time.sleep(0.2)

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", node.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    node.port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, name="kubelet-api", daemon=True).start()
    return srv
