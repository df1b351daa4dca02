"""Finding and reading a kubeconfig as kubectl does."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from kubesweep.cli.kube import ConfigError, Kube, kubeconfig_path, load_config, path_for


def write_kubeconfig(path: Path) -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "dev",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://127.0.0.1:6443/",
                    "certificate-authority-data": base64.b64encode(b"not a cert").decode(),
                },
            },
            {"name": "plain", "cluster": {"server": "http://127.0.0.1:8080"}},
        ],
        "users": [{"name": "u", "user": {"token": "secret"}}],
        "contexts": [
            {"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}},
            {"name": "other", "context": {"cluster": "plain"}},
        ],
    }
    path.write_text(yaml.safe_dump(document))
    return path


def test_kubeconfig_path_follows_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_kubeconfig(tmp_path / "config")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{config}")
    assert kubeconfig_path() == config
    assert kubeconfig_path("/explicit") == Path("/explicit")


def test_context_namespace_token_and_inline_ca(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "config")
    config = load_config(str(path))
    assert config.server == "https://127.0.0.1:6443"
    assert config.namespace == "team-a"
    assert config.token == "secret"
    assert config.ca_file is not None
    assert Path(config.ca_file).read_bytes() == b"not a cert"
    assert load_config(str(path), namespace="x").namespace == "x"
    other = load_config(str(path), context="other")
    assert other.namespace == "default"
    assert Kube(other).namespace == "default"  # plain http needs no TLS context
    with pytest.raises(ConfigError, match="no context named 'nope'"):
        load_config(str(path), context="nope")


def test_no_kubeconfig_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="no kubeconfig"):
        load_config()


def test_path_for() -> None:
    assert path_for("v1", "pods", "ns", "p") == "/api/v1/namespaces/ns/pods/p"
    assert (
        path_for("kubesweep.io/v1alpha1", "experiments")
        == "/apis/kubesweep.io/v1alpha1/experiments"
    )


class _Answers:
    """A tiny plain-HTTP API server: one scripted answer per path, every request recorded."""

    def __init__(self, answers: dict[str, tuple[int, str]]) -> None:
        import http.server
        import threading

        requests: list[tuple[str, str, str]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                requests.append((self.command, self.path, body))
                status, text = answers.get(self.path.split("?")[0], (404, "not here"))
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def do_DELETE(self) -> None:
                self._answer()

            def log_message(self, *_: object) -> None:
                pass

        self.requests = requests
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_exchange_answers_every_status_and_errors_keep_the_status_object() -> None:
    from kubesweep.cli.kube import KubeConfig, KubeError

    status = '{"kind": "Status", "message": "trials.kubesweep.io \\"x\\" not found", "code": 404}'
    api = _Answers({"/ok": (200, '{"a": 1}'), "/missing": (404, status), "/text": (500, "boom")})
    try:
        kube = Kube(KubeConfig(server=api.url))
        assert kube.exchange("GET", "/missing", params={"x": "1", "skip": None}) == (404, status)
        assert api.requests[-1][1] == "/missing?x=1"  # None values are left out
        assert kube.request("POST", "/ok", {"b": 2}) == {"a": 1}
        assert api.requests[-1] == ("POST", "/ok", '{"b": 2}')

        with pytest.raises(KubeError) as error:
            kube.get("/missing")
        assert error.value.status == 404
        assert isinstance(error.value.body, dict)
        assert error.value.body["code"] == 404
        assert 'GET /missing: 404 trials.kubesweep.io "x" not found' in str(error.value)

        with pytest.raises(KubeError) as error:
            kube.get("/text")
        assert (error.value.status, error.value.body) == (500, "boom")
    finally:
        api.close()

    with pytest.raises(KubeError) as unreachable:
        kube.get("/ok")
    assert unreachable.value.status is None
    assert "cannot reach the API server" in str(unreachable.value)
