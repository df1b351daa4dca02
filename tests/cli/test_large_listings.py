"""The CLI at many trials: lists read a page at a time, ``trials --limit``, ``best --top``."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from kubesweep.cli import kube as kube_module
from kubesweep.cli.main import main
from tests.cli.conftest import example

NS = "team-a"
EXPERIMENTS = f"/apis/kubesweep.io/v1alpha1/namespaces/{NS}/experiments"
TRIALS = f"/apis/kubesweep.io/v1alpha1/namespaces/{NS}/trials"


def trial(index: int, loss: float | None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running"}
    if loss is not None:
        status = {"phase": "Succeeded", "reason": "Completed", "objective": loss}
    return {
        "apiVersion": "kubesweep.io/v1alpha1",
        "kind": "Trial",
        "metadata": {"name": f"demo-{index}", "namespace": NS, "resourceVersion": "1"},
        "spec": {"experiment": "demo", "index": index, "parameters": {"eta0": 0.01 * index}},
        "status": status,
    }


class PagedApi:
    """An API server whose Trial list honours ``limit`` and ``continue``."""

    def __init__(self, trials: list[dict[str, Any]]) -> None:
        experiment = example("random").to_wire()
        experiment["metadata"] = {"name": "demo", "namespace": NS, "resourceVersion": "1"}
        experiment["status"] = {"phase": "Running"}
        self.queries: list[dict[str, list[str]]] = []
        queries = self.queries

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                params = urllib.parse.parse_qs(query)
                if path == f"{EXPERIMENTS}/demo":
                    self._send(experiment)
                elif path == TRIALS:
                    queries.append(params)
                    limit = int(params.get("limit", [str(len(trials))])[0])
                    start = int(params.get("continue", ["0"])[0])
                    page = trials[start : start + limit]
                    more = start + limit < len(trials)
                    metadata = {"continue": str(start + limit)} if more else {}
                    self._send({"kind": "TrialList", "metadata": metadata, "items": page})
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def _send(self, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    servers: list[PagedApi] = []

    def start(trials: list[dict[str, Any]]) -> PagedApi:
        api = PagedApi(trials)
        servers.append(api)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "test",
            "clusters": [{"name": "c", "cluster": {"server": api.url}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [
                {"name": "test", "context": {"cluster": "c", "user": "u", "namespace": NS}}
            ],
        }
        (tmp_path / "config").write_text(yaml.safe_dump(config))
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
        return api

    yield start
    for api in servers:
        api.close()


def test_trials_are_listed_a_page_at_a_time(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_module, "LIST_PAGE", 4)
    api = serve([trial(i, loss=1.0 + i) for i in range(10)])
    result = CliRunner().invoke(main, ["trials", "demo", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert [row["name"] for row in json.loads(result.output)] == [f"demo-{i}" for i in range(10)]
    assert [q.get("continue") for q in api.queries] == [None, ["4"], ["8"]]
    assert all(q["limit"] == ["4"] for q in api.queries)


def test_trials_limit_shows_the_first_in_the_order(serve: Any) -> None:
    serve([trial(i, loss=abs(i - 6) + 0.5) for i in range(10)])
    result = CliRunner().invoke(main, ["trials", "demo", "--limit", "3", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert [row["name"] for row in json.loads(result.output)] == ["demo-6", "demo-5", "demo-7"]
    table = CliRunner().invoke(main, ["trials", "demo", "--limit", "2"], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "2 of 10 trials shown" in table.output
    assert "demo-6" in table.output
    assert "demo-9" not in table.output


def test_best_top_lists_the_best_succeeded_trials_best_first(serve: Any) -> None:
    trials = [trial(i, loss=abs(i - 6) + 0.5) for i in range(10)]
    trials[6] = trial(6, loss=None)  # running: not among the best, whatever it reports
    serve(trials)
    result = CliRunner().invoke(main, ["best", "demo", "--top", "3", "-o", "json"])
    assert result.exit_code == 0, result.output
    best = json.loads(result.output)
    assert [b["trial"] for b in best] == ["demo-5", "demo-7", "demo-4"]
    assert [b["objective"]["value"] for b in best] == [1.5, 1.5, 2.5]
    assert best[0]["parameters"] == {"eta0": 0.05}
    refused = CliRunner().invoke(main, ["best", "demo", "--top", "3", "-o", "env"])
    assert refused.exit_code == 2
    assert "-o yaml or -o json" in refused.output
