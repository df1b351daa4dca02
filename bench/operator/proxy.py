"""A counting reverse proxy between the operator and the API server.

Why a proxy: the API server's ``apiserver_request_total`` counts requests by
resource and verb but not by client, and on the local cluster the operator, the
benchmark and the process node all use the admin identity; the cluster harness
starts the API server without an audit log. Putting the operator (and only the
operator) behind this proxy attributes every request exactly: the operator gets
a kubeconfig whose server is the proxy's plain-HTTP loopback address, and the
proxy forwards each request to the API server over TLS with the admin client
certificate, streaming responses so that kopf's watches work unchanged.

Counts are by ``(resource[/subresource], verb)``; Events are also counted by their
``reason`` so that per-trial Events can be told from per-experiment ones.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import ssl
import threading
from collections import Counter
from pathlib import Path

import yaml
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

import bench.operator.common  # noqa: F401  (puts e2e/ on sys.path)
from stack import free_port

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "upgrade",
        "host",
    }
)


def resource_of(path: str) -> str:
    """``/apis/g/v/namespaces/ns/trials/x/status`` -> ``trials/status``; core and cluster too."""
    parts = [p for p in path.split("?", maxsplit=1)[0].split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return path
    if len(rest) >= 2 and rest[0] == "namespaces":
        rest = rest[2:] or ["namespaces"]
    if not rest:
        return path
    resource = rest[0]
    if len(rest) >= 3:
        resource += "/" + rest[2]
    return resource


class CountingProxy:
    """Forward plain HTTP on loopback to the API server, counting every request."""

    def __init__(self, kubeconfig: str) -> None:
        doc = yaml.safe_load(Path(kubeconfig).read_text())
        context = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])
        cluster = next(c for c in doc["clusters"] if c["name"] == context["context"]["cluster"])
        user = next(u for u in doc["users"] if u["name"] == context["context"]["user"])
        self.upstream = str(cluster["cluster"]["server"]).rstrip("/")
        base = Path(kubeconfig).parent
        ctx = ssl.create_default_context(
            cafile=str(base / cluster["cluster"]["certificate-authority"])
        )
        ctx.load_cert_chain(
            str(base / user["user"]["client-certificate"]),
            str(base / user["user"]["client-key"]),
        )
        self.ssl = ctx
        self.port = free_port()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.event_reasons: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name="counting proxy", daemon=True)
        self.started = threading.Event()
        self.session: ClientSession | None = None
        self.runner: web.AppRunner | None = None

    # -- outside view ------------------------------------------------------------

    def kubeconfig(self, path: Path) -> str:
        """Write a kubeconfig that points at the proxy; return its path."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
            "current-context": "proxy",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        return str(path)

    def snapshot(self) -> tuple[Counter[tuple[str, str]], Counter[str]]:
        with self.lock:
            return Counter(self.counts), Counter(self.event_reasons)

    def start(self) -> CountingProxy:
        self.thread.start()
        if not self.started.wait(30):
            raise TimeoutError("the counting proxy did not start")
        return self

    def stop(self) -> None:
        async def close() -> None:
            # Upstream first: that ends the watch streams the handlers are relaying,
            # which the runner's cleanup would otherwise wait out.
            if self.session is not None:
                await self.session.close()
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if self.runner is not None:
                await self.runner.cleanup()

        if self.loop.is_running():
            future = asyncio.run_coroutine_threadsafe(close(), self.loop)
            with contextlib.suppress(TimeoutError, concurrent.futures.TimeoutError):
                future.result(15)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(15)

    # -- inside the proxy's loop ---------------------------------------------------

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.started.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.session = ClientSession(
            connector=TCPConnector(ssl=self.ssl, limit=0),
            timeout=ClientTimeout(total=None, sock_connect=30),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def _count(self, method: str, path: str, body: bytes) -> None:
        resource = resource_of(path)
        reason = None
        if method == "POST" and resource == "events":
            try:
                reason = str(json.loads(body).get("reason"))
            except ValueError:
                reason = "?"
        with self.lock:
            self.counts[(resource, method)] += 1
            if reason is not None:
                self.event_reasons[reason] += 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        body = await request.read()
        self._count(request.method, request.path, body)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
        ) as upstream:
            reply = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() not in HOP_BY_HOP:
                    reply.headers[key] = value
            await reply.prepare(request)
            async for chunk in upstream.content.iter_any():
                await reply.write(chunk)
            await reply.write_eof()
            return reply
