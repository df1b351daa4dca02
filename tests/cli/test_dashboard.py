"""``kubesweep dashboard``: its JSON endpoints, event stream and pages (aiohttp test client)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kubesweep.api import Experiment
from kubesweep.cli.experiment_sources import LocalRuns
from kubesweep.cli.local.runner import trials_dir
from kubesweep.cli.main import main
from kubesweep.cli.report.data import report_data
from tests.cli.conftest import T0, example
from tests.cli.dashboard_runs import LiveRun, loss_of, parameters_of

web = pytest.importorskip("aiohttp.web", reason="the dashboard needs aiohttp (kubesweep[cli])")
test_utils = pytest.importorskip("aiohttp.test_utils")

from kubesweep.cli.dashboard import server as server_module  # noqa: E402
from kubesweep.cli.dashboard.deltas import apply  # noqa: E402
from kubesweep.cli.dashboard.feeds import LocalFeed  # noqa: E402
from kubesweep.cli.dashboard.server import Views, make_app, normal_prefix  # noqa: E402
from kubesweep.cli.dashboard.views import clean_row, experiment_view, runs_version  # noqa: E402

TestClient = test_utils.TestClient
TestServer = test_utils.TestServer


@pytest.fixture
def experiment() -> Experiment:
    return example("random")


@pytest.fixture
def run(tmp_path: Path, experiment: Experiment) -> Iterator[LiveRun]:
    live = LiveRun(tmp_path / "digits-random.db", experiment)
    yield live
    live.close()


async def _client(directory: Path, prefix: str = "/") -> Any:
    client = TestClient(TestServer(make_app(directory, prefix, interval=0.05)))
    await client.start_server()
    return client


@pytest.fixture
async def client(tmp_path: Path, run: LiveRun) -> AsyncIterator[Any]:
    client = await _client(tmp_path)
    yield client
    await client.close()


async def test_experiments_list_phase_progress_best_and_age(client: Any, run: LiveRun) -> None:
    for index in range(3):
        run.run(index)
    run.start(3)
    response = await client.get("/api/experiments")
    assert response.status == 200
    rows = await response.json()
    assert [r["name"] for r in rows] == ["digits-random"]
    row = rows[0]
    assert (row["phase"], row["done"], row["running"], row["trials"], row["total"]) == (
        "Running",
        3,
        1,
        4,
        8,
    )
    best = min(range(3), key=loss_of)
    assert row["best"] is None  # the status written names no best trial
    assert row["age_seconds"] > 0
    view = await (await client.get("/api/experiments/digits-random")).json()
    assert min(t["objective"] for t in view["trials"] if t["objective"] is not None) == loss_of(
        best
    )


async def test_experiment_view_is_the_report_data_and_exact_trial_values(
    client: Any, run: LiveRun
) -> None:
    losses = {index: run.run(index) for index in range(5)}
    view = await (await client.get("/api/experiments/digits-random")).json()
    assert view["experiment"]["done"] == 5
    assert {t["name"]: t["objective"] for t in view["trials"]} == {
        f"digits-random-{i}": loss for i, loss in losses.items()
    }
    assert [t["values"] for t in view["trials"]] == [parameters_of(i) for i in range(5)]
    report = view["report"]
    points = {p["name"]: p["y"] for p in report["history"]["points"]}
    assert points == {f"digits-random-{i}": loss for i, loss in losses.items()}
    assert {"parallel", "slices", "curves", "importance", "summary"} <= set(report)


async def test_trial_view_has_parameters_metrics_curve_reason_and_log(
    tmp_path: Path, client: Any, run: LiveRun
) -> None:
    loss = run.run(0)
    trial = await (await client.get("/api/experiments/digits-random/trials/digits-random-0")).json()
    assert trial["parameters"] == parameters_of(0)
    assert trial["metrics"] == {"val_loss": loss, "accuracy": pytest.approx(1 - loss)}
    assert trial["reason"] == "Completed"
    assert trial["curves"]["series"][0]["points"][-1] == [3, loss]
    assert trial["log"] is None
    folder = trials_dir(tmp_path / "digits-random.db") / "digits-random-0"
    folder.mkdir(parents=True)
    (folder / "stdout.log").write_text("".join(f"line {i}\n" for i in range(80)))
    trial = await (await client.get("/api/experiments/digits-random/trials/digits-random-0")).json()
    assert trial["log"][-1] == "line 79"
    assert len(trial["log"]) == 50


async def test_a_trial_without_its_objective_is_told_the_form_that_is_read(
    tmp_path: Path, client: Any, run: LiveRun
) -> None:
    run.unreported(1, "the trial process exited 0 but never reported val_loss")
    folder = trials_dir(tmp_path / "digits-random.db") / "digits-random-1"
    folder.mkdir(parents=True)
    (folder / "stdout.log").write_text("epoch 1\nval_loss: 0.25\n")
    trial = await (await client.get("/api/experiments/digits-random/trials/digits-random-1")).json()
    assert trial["message"] == (
        "the trial process exited 0 but never reported val_loss; it printed `val_loss: 0.25`, "
        "and the stdout source reads name=value pairs: print `val_loss=0.25`"
    )


async def test_unknown_names_are_404_and_nothing_is_writable(client: Any, run: LiveRun) -> None:
    run.run(0)
    assert (await client.get("/api/experiments/nope")).status == 404
    missing = await client.get("/api/experiments/digits-random/trials/digits-random-9")
    assert missing.status == 404
    assert "no trial" in (await missing.json())["error"]
    assert (await client.get("/static/secret.txt")).status == 404
    for path in ("/api/experiments", "/api/experiments/digits-random"):
        assert (await client.post(path)).status == 405
        assert (await client.delete(path)).status == 405


async def _next_update(response: Any, timeout: float = 5.0) -> Any:
    """The data of the stream's next ``update`` event."""
    event = None
    while True:
        line = (await asyncio.wait_for(response.content.readline(), timeout)).decode()
        if line.startswith("event: "):
            event = line[7:].strip()
        elif line.startswith("data: ") and event == "update":
            return json.loads(line[6:])


async def test_events_push_a_new_line_when_the_store_changes(client: Any, run: LiveRun) -> None:
    response = await client.get("/api/events", params={"experiment": "digits-random"})
    assert response.headers["Content-Type"].startswith("text/event-stream")
    first = await _next_update(response)
    assert first["done"] == 0
    run.run(0)
    seen = first
    while seen["done"] < 1:
        seen = await _next_update(response)
    run.run(1)
    while seen["done"] < 2:
        seen = await _next_update(response)
    assert seen["trials"] == 2
    response.close()


async def test_events_without_an_experiment_list_every_run(client: Any, run: LiveRun) -> None:
    response = await client.get("/api/events")
    rows = await _next_update(response)
    assert [r["name"] for r in rows] == ["digits-random"]
    response.close()


def test_the_fingerprint_changes_with_every_commit(tmp_path: Path, experiment: Experiment) -> None:
    assert runs_version(tmp_path / "none") == ()
    live = LiveRun(tmp_path / "digits-random.db", experiment)
    try:
        before = runs_version(tmp_path)
        live.start(0)
        after = runs_version(tmp_path)
        assert after != before
        live.finish(0)
        assert runs_version(tmp_path) != after
    finally:
        live.close()


def test_reading_a_quiet_store_is_no_change(tmp_path: Path, experiment: Experiment) -> None:
    live = LiveRun(tmp_path / "digits-random.db", experiment)
    live.run(0)
    live.close()
    before = runs_version(tmp_path)
    runs = LocalRuns(tmp_path)
    for _ in range(3):
        found = runs.experiment("digits-random")
        assert len(runs.trials(found)) == 1
        assert runs_version(tmp_path) == before


@pytest.mark.parametrize(
    ("given", "expected"), [("/", "/"), ("", "/"), ("ks", "/ks/"), ("/a/b/", "/a/b/")]
)
def test_prefix_is_normalised(given: str, expected: str) -> None:
    assert normal_prefix(given) == expected


async def test_everything_is_served_under_a_prefix(tmp_path: Path, run: LiveRun) -> None:
    run.run(0)
    client = await _client(tmp_path, "/tools/sweeps")
    try:
        assert (await client.get("/api/experiments")).status == 404
        rows = await (await client.get("/tools/sweeps/api/experiments")).json()
        assert rows[0]["done"] == 1
        page = await (await client.get("/tools/sweeps/experiments/digits-random")).text()
        assert 'data-base="/tools/sweeps/"' in page
        assert 'src="/tools/sweeps/static/dashboard.js"' in page
        assert (await client.get("/tools/sweeps")).status == 200
        assert (await client.get("/tools/sweeps/static/report.js")).status == 200
    finally:
        await client.close()


async def test_pages_and_assets_fetch_nothing_from_elsewhere(client: Any, run: LiveRun) -> None:
    run.run(0)
    responses = [
        await client.get(path)
        for path in (
            "/",
            "/experiments/digits-random",
            "/experiments/digits-random/trials/digits-random-0",
            "/static/dashboard.js",
            "/static/dashboard.css",
            "/static/report.js",
            "/static/uPlot.iife.min.js",
            "/static/uPlot.min.css",
        )
    ]
    assert [r.status for r in responses] == [200] * len(responses)
    for text in [await r.text() for r in responses]:
        assert not re.search(r"(src|href)=\"(https?:)?//", text)
        assert "cdn" not in text.lower()


async def test_names_are_escaped_in_pages(client: Any) -> None:
    page = await (await client.get("/experiments/%3Cb%3Ex")).text()
    assert "<b>x" not in page
    assert "&lt;b&gt;x" in page


def test_the_command_is_listed_and_documents_its_options() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "dashboard" in result.output
    result = CliRunner().invoke(main, ["dashboard", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--dir", "--host", "--port", "--prefix", "127.0.0.1", "--cluster", "-A"):
        assert option in result.output


def test_a_cluster_dashboard_without_a_kubeconfig_says_so_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    result = CliRunner().invoke(main, ["dashboard", "--cluster"])
    assert result.exit_code == 2
    assert "no kubeconfig" in result.output


def test_the_experiment_pages_plots_are_the_report_data(
    run: LiveRun, experiment: Experiment
) -> None:
    for index in range(6):
        run.run(index)
    source = LocalRuns(run.store.path.parent)
    found = source.experiment("digits-random")
    records = source.trials(found)
    report = report_data(found, records, T0)
    page = experiment_view(found, records, T0, report["importance"])["report"]
    assert page["drawn"] == {"trials": 6, "of": 6}
    assert page == clean_row(report)


async def test_a_body_is_computed_once_per_change_and_importance_less_often(
    run: LiveRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted = []

    def counting(records: Any, experiment: Experiment) -> list[dict[str, Any]]:
        fitted.append(len(records))
        return [{"name": "eta0", "importance": 1.0}]

    monkeypatch.setattr(server_module, "importances", counting)
    views = Views(LocalFeed(run.store.path.parent), importance_every=3600, fit_share=1e9)
    run.run(0)
    first = await views.body("digits-random")
    assert await views.body("digits-random") is first
    assert fitted == [1]
    run.run(1)
    second = json.loads(await views.body("digits-random"))
    assert second["experiment"]["done"] == 2
    assert second["report"]["importance"] == [{"name": "eta0", "importance": 1.0}]
    assert fitted == [1]  # not fitted again: neither an hour nor 1e9 fits have passed
    views.fit_share = 0  # a quick fit is redone at the next change
    run.run(2)
    await views.body("digits-random")
    assert fitted == [1, 3]


async def test_a_change_is_streamed_as_a_delta_that_rebuilds_the_page(
    client: Any, run: LiveRun
) -> None:
    """The experiment page's stream: ``sync`` with the page's seq, then for a write a delta
    from that seq, much smaller than the page, that turns the page into the next one."""
    for index in range(30):
        run.run(index)
    before = json.loads(await (await client.get("/api/experiments/digits-random")).read())
    events = await client.get("/api/events?experiment=digits-random&deltas=1")
    kind, data = await _event(events)
    assert (kind, data) == ("sync", {"seq": before["seq"]})
    loss = run.run(30)
    kind, raw = await _event(events, raw=True)
    delta = json.loads(raw)
    assert (kind, delta["from"], delta["to"]) == ("delta", before["seq"], before["seq"] + 1)
    after = json.loads(await (await client.get("/api/experiments/digits-random")).read())
    assert after["seq"] == delta["to"]
    rebuilt = apply({k: v for k, v in before.items() if k != "seq"}, delta["patch"])
    assert rebuilt == {k: v for k, v in after.items() if k != "seq"}
    assert {t["name"]: t["objective"] for t in rebuilt["trials"]}["digits-random-30"] == loss
    assert len(raw) * 5 < len(json.dumps(after))
    events.close()


async def test_a_stream_behind_the_kept_patches_is_told_to_reset(
    tmp_path: Path, run: LiveRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "PATCHES_KEPT", 1)
    views = Views(LocalFeed(tmp_path))
    run.run(0)
    assert (await views.state("digits-random")).seq == 0
    for index in (1, 2):
        run.run(index)
        await views.state("digits-random")
    state = await views.state("digits-random")
    assert (state.seq, sorted(state.patches)) == (2, [2])

    written: list[bytes] = []

    class Sink:
        async def write(self, data: bytes) -> None:
            written.append(data)

    sink: Any = Sink()
    assert await server_module._send_deltas(views, "digits-random", 0, sink) == 2
    assert written == [b'event: reset\ndata: {"seq":2}\n\n']


async def _event(response: Any, raw: bool = False) -> tuple[str, Any]:
    """The next server-sent event: its name and its data (parsed unless ``raw``)."""
    while True:
        block = (await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10)).decode()
        if block.startswith(":"):
            continue
        head, _, data = block.strip().partition("\ndata: ")
        return head.removeprefix("event: "), data if raw else json.loads(data)
