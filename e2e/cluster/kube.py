"""A small synchronous Kubernetes REST client for tests and the process node.

Why not the official clients: the operator uses ``kubernetes_asyncio``, but
tests read best as plain blocking calls, and the process node runs one thread
per pod. This client speaks JSON to resource paths and nothing else, so every
call shows exactly what goes over the wire. It reads a kubeconfig's current
context (client certificate, bearer token or basic TLS; exec plugins are not
supported: use ``kubectl`` through the fixtures for those clusters).

Paths are built with :func:`path_for`, e.g. ``path_for("batch/v1", "jobs", "ns", "pi")``.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from kubesweep.cli.kube import KubeConfig, load_config

JSON = dict[str, Any]


class ApiError(Exception):
    """A non-2xx answer from the API server, with its Status object."""

    def __init__(self, status: int, body: JSON | str, method: str, path: str) -> None:
        self.status = status
        self.body = body
        reason = body.get("message", "") if isinstance(body, dict) else body[:500]
        super().__init__(f"{method} {path}: {status} {reason}")

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else self.body


def path_for(
    api_version: str, plural: str, namespace: str | None = None, name: str | None = None
) -> str:
    """REST path of a collection or object: ``v1`` is the core group, else ``group/version``."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
    return base


def load_kubeconfig(path: str | os.PathLike[str], context: str | None = None) -> KubeConfig:
    """One context of a kubeconfig file, read by the ``kubesweep`` CLI's loader."""
    return load_config(os.fspath(path), context)


class Kube:
    """Blocking JSON client. Thread-safe: each request opens its own connection."""

    def __init__(self, config: KubeConfig, timeout: float = 30.0) -> None:
        self.config = config
        self.timeout = timeout
        url = urllib.parse.urlsplit(config.server)
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or 443
        self._prefix = url.path.rstrip("/")
        self._ssl = config.ssl_context()

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None) -> Kube:
        return cls(load_kubeconfig(path, context))

    def _conn(self, timeout: float | None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self._host, self._port, context=self._ssl, timeout=timeout or self.timeout
        )

    def _headers(self, content_type: str | None) -> dict[str, str]:
        h = {"Accept": "application/json", "User-Agent": "kubesweep-e2e"}
        if content_type:
            h["Content-Type"] = content_type
        if self.config.token:
            h["Authorization"] = f"Bearer {self.config.token}"
        return h

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> JSON:
        """One call; raises :class:`ApiError` on a non-2xx answer."""
        url = self._prefix + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        conn = self._conn(timeout)
        try:
            conn.request(
                method, url, body=data, headers=self._headers(content_type if data else None)
            )
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        text = raw.decode(errors="replace")
        try:
            parsed: Any = json.loads(text) if text else {}
        except ValueError:
            parsed = text
        if resp.status >= 300:
            raise ApiError(resp.status, parsed, method, path)
        return parsed if isinstance(parsed, dict) else {"raw": parsed}

    def get_raw(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """GET a non-JSON path (``/readyz``, pod logs) and return the text."""
        url = self._prefix + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        conn = self._conn(None)
        try:
            conn.request("GET", url, headers=self._headers(None))
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        finally:
            conn.close()
        if resp.status >= 300:
            raise ApiError(resp.status, text, "GET", path)
        return text

    # Conveniences ---------------------------------------------------------

    def get(self, path: str, **params: Any) -> JSON:
        return self.request("GET", path, params=params)

    def get_or_none(self, path: str) -> JSON | None:
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, path: str, **params: Any) -> list[JSON]:
        items: list[JSON] = self.get(path, **params).get("items") or []
        return items

    def create(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body)

    def replace(self, path: str, body: JSON) -> JSON:
        return self.request("PUT", path, body)

    def patch(self, path: str, body: JSON, kind: str = "merge") -> JSON:
        ctype = {
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "json": "application/json-patch+json",
        }[kind]
        return self.request("PATCH", path, body, content_type=ctype)

    def apply(self, path: str, body: JSON, field_manager: str = "kubesweep-e2e") -> JSON:
        """Server-side apply of one object at its object path."""
        return self.request(
            "PATCH",
            path,
            body,
            params={"fieldManager": field_manager, "force": "true"},
            content_type="application/apply-patch+yaml",
        )

    def delete(self, path: str, body: JSON | None = None, **params: Any) -> JSON | None:
        try:
            return self.request("DELETE", path, body, params=params)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def watch(
        self, path: str, timeout_seconds: int = 60, **params: Any
    ) -> Iterator[tuple[str, JSON]]:
        """Yield ``(type, object)`` events of one watch call until the server ends it."""
        query = {"watch": "true", "timeoutSeconds": str(timeout_seconds), **params}
        url = self._prefix + path + "?" + urllib.parse.urlencode(query)
        conn = self._conn(timeout_seconds + 30)
        try:
            conn.request("GET", url, headers=self._headers(None))
            resp = conn.getresponse()
            if resp.status >= 300:
                raise ApiError(resp.status, resp.read().decode(errors="replace"), "WATCH", path)
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.strip():
                    ev = json.loads(line)
                    yield ev["type"], ev["object"]
        finally:
            conn.close()
