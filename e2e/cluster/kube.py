"""A small synchronous Kubernetes REST client for tests and the process node.

Why not the official clients: the operator uses ``kubernetes_asyncio``, but
tests read best as plain blocking calls, and the process node runs one thread
per pod. This is the ``kubesweep`` CLI's client (:class:`kubesweep.cli.kube.Kube`:
kubeconfig loading, TLS, tokens, one connection per call) with the conveniences
tests use, and one difference in errors: an answer outside 2xx raises
:class:`ApiError` with the server's Status object, and a failure to connect
stays an ``OSError`` for the callers that retry on it.

Paths are built with :func:`path_for`, e.g. ``path_for("batch/v1", "jobs", "ns", "pi")``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from kubesweep.cli import kube as cli_kube
from kubesweep.cli.kube import KubeConfig, error_body, load_config, path_for

__all__ = ["JSON", "ApiError", "Kube", "KubeConfig", "load_kubeconfig", "path_for"]

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


def load_kubeconfig(path: str | os.PathLike[str], context: str | None = None) -> KubeConfig:
    """One context of a kubeconfig file, read by the ``kubesweep`` CLI's loader."""
    return load_config(os.fspath(path), context)


class Kube(cli_kube.Kube):
    """Blocking JSON client. Thread-safe: each request opens its own connection."""

    user_agent = "kubesweep-e2e"

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None) -> Kube:
        return cls(load_kubeconfig(path, context))

    def request(self, method: str, path: str, body: Any = None, **options: Any) -> JSON:
        """One call; raises :class:`ApiError` on a non-2xx answer.

        ``options`` are :meth:`exchange`'s (``params``, ``content_type``,
        ``timeout``); the signature is the CLI client's, whose inherited
        ``get`` and ``list_items`` call this method.
        """
        status, text = self.exchange(method, path, body, **options)
        parsed = error_body(text) if text else {}
        if status >= 300:
            raise ApiError(status, parsed, method, path)
        return parsed if isinstance(parsed, dict) else {"raw": parsed}

    def get_raw(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """GET a non-JSON path (``/readyz``, pod logs) and return the text."""
        status, text = self.exchange("GET", path, params=params)
        if status >= 300:
            raise ApiError(status, text, "GET", path)
        return text

    # Conveniences ---------------------------------------------------------

    def get_or_none(self, path: str) -> JSON | None:
        try:
            return self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, path: str, **params: Any) -> list[JSON]:
        return self.list_items(path, **params)

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
        try:
            for event in self.watch_lines(path, timeoutSeconds=str(timeout_seconds), **params):
                yield event["type"], event["object"]
        except cli_kube.KubeError as error:
            if error.status is None:
                raise
            raise ApiError(error.status, error.body or "", "WATCH", path) from None
