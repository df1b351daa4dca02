"""A change to a large experiment costs the dashboard what changed, not the whole experiment.

At 100,000 trials the experiment page was made again from nothing at every write:
every record built, every table row made and compared. These tests hold the
pieces that keep what did not change: the records of unchanged rows of a state
file, the table rows of unchanged records, the report's ranking done once, and
the history's points that need no cleaning; and a bulk read without the cyclic
collector's passes over what it builds.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesweep.api import Direction, Experiment
from kubesweep.cli import experiment_sources
from kubesweep.cli.experiment_sources import LocalRuns
from kubesweep.cli.local.store import LocalTrial, parse_row
from kubesweep.cli.ranking import TrialRecord, rank
from kubesweep.cli.report import data
from kubesweep.cli.report.sample import drawn_records
from tests.cli.conftest import T0, example, record
from tests.cli.dashboard_runs import LiveRun, loss_of

pytest.importorskip("aiohttp.web", reason="the dashboard needs aiohttp (kubesweep[cli])")

from kubesweep.cli.dashboard import views as views_module
from kubesweep.cli.dashboard.deltas import diff
from kubesweep.cli.dashboard.feeds import LocalFeed
from kubesweep.cli.dashboard.server import Views
from kubesweep.cli.dashboard.views import TrialRows, experiment_view


@pytest.fixture
def experiment() -> Experiment:
    return example("random")


@pytest.fixture
def run(tmp_path: Path, experiment: Experiment) -> Iterator[LiveRun]:
    live = LiveRun(tmp_path / "digits-random.db", experiment)
    yield live
    live.close()


def _another_budget(experiment: Experiment) -> Experiment:
    wire = experiment.to_wire()
    wire["spec"]["budget"]["maxTrials"] += 1
    return Experiment.model_validate(wire)


def test_a_state_file_read_again_gives_the_same_records_for_unchanged_trials(
    run: LiveRun, experiment: Experiment
) -> None:
    for index in range(4):
        run.run(index)
    run.start(4)
    runs = LocalRuns(run.store.path.parent, keep_parsed=True)
    first = runs.trials(experiment)
    run.finish(4)
    run.run(5)
    second = runs.trials(experiment)
    assert [r.name for r in second] == [f"digits-random-{i}" for i in range(6)]
    assert all(second[i] is first[i] for i in range(4))
    assert second[4] is not first[4]
    assert (first[4].phase.value, second[4].phase.value) == ("Running", "Succeeded")
    # Another spec may reduce the metrics otherwise: every record is built again.
    third = runs.trials(_another_budget(experiment))
    assert third == second
    assert not any(a is b for a, b in zip(third, second, strict=True))


def test_a_reader_keeps_the_rows_and_records_not_the_parsed_trials(
    run: LiveRun, experiment: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[weakref.ref[LocalTrial]] = []

    def tracked(row: Any) -> LocalTrial:
        trial = parse_row(row)
        parsed.append(weakref.ref(trial))
        return trial

    monkeypatch.setattr(experiment_sources, "parse_row", tracked)
    for index in range(3):
        run.run(index)
    runs = LocalRuns(run.store.path.parent, keep_parsed=True)
    records = runs.trials(experiment)
    run.run(3)
    records = runs.trials(experiment)
    assert len(parsed) == 4  # each row parsed once
    gc.collect()
    assert [ref() for ref in parsed] == [None] * 4
    assert [r.objective for r in records] == [loss_of(i) for i in range(4)]


def test_a_reader_that_keeps_nothing_builds_new_records(
    run: LiveRun, experiment: Experiment
) -> None:
    run.run(0)
    runs = LocalRuns(run.store.path.parent)
    assert runs.trials(experiment)[0] is not runs.trials(experiment)[0]
    assert runs.trials(experiment) == runs.trials(experiment)


def test_rows_are_made_again_only_for_records_that_changed(experiment: Experiment) -> None:
    records = [record(i, 0.5 + i / 10, alpha=0.001, penalty="l2") for i in range(5)]
    rows = TrialRows()
    first = rows.rows(records, experiment.spec)
    # Equal records (a cluster's Trials are turned into records again at every read) keep
    # their rows; the changed one and the new one get new rows.
    again = [dataclasses.replace(r) for r in records]
    again[2] = dataclasses.replace(records[2], objective=0.01)
    again.append(record(5, 0.9, alpha=0.01, penalty="l1"))
    second = rows.rows(list(reversed(again)), experiment.spec)
    assert [row["index"] for row in second] == list(range(6))
    assert [second[i] is first[i] for i in range(5)] == [True, True, False, True, True]
    assert second[2]["objective"] == 0.01
    assert second == [views_module.trial_row(r, experiment.spec) for r in again]
    # A trial that is gone leaves the table; another spec makes every row again.
    third = rows.rows(again[1:], experiment.spec)
    assert [row["index"] for row in third] == [1, 2, 3, 4, 5]
    fourth = rows.rows(again[1:], _another_budget(experiment).spec)
    assert fourth == third
    assert not any(a is b for a, b in zip(fourth, third, strict=True))


async def test_a_write_makes_the_rows_of_the_trials_it_changed_only(
    run: LiveRun, experiment: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    real = views_module.trial_row

    def counting(record: TrialRecord, spec: Any = None) -> dict[str, Any]:
        made.append(record.name)
        return real(record, spec)

    monkeypatch.setattr(views_module, "trial_row", counting)
    views = Views(LocalFeed(run.store.path.parent))
    for index in range(5):
        run.run(index)
    run.start(5)
    await views.body("digits-random")
    assert len(made) == 6
    made.clear()
    run.finish(5)
    run.run(6)
    page = json.loads(await views.body("digits-random"))
    assert made == ["digits-random-5", "digits-random-6"]
    # What the page holds is what a page made from nothing holds.
    runs = LocalRuns(run.store.path.parent)
    found = runs.experiment("digits-random")
    fresh = experiment_view(found, runs.trials(found), importance=page["report"]["importance"])
    assert page["trials"] == fresh["trials"]
    assert page["report"]["history"] == fresh["report"]["history"]


def test_the_report_ranks_once_and_draws_what_it_drew_before(
    experiment: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [
        record(i, abs(math.sin(i)), alpha=10 ** -(1 + i % 5), penalty="l2") for i in range(1500)
    ]
    ranked = rank(records, Direction.MINIMIZE)
    assert drawn_records(records, Direction.MINIMIZE, ranked=ranked) == drawn_records(
        records, Direction.MINIMIZE
    )
    assert data.summary(experiment, records, ranked) == data.summary(experiment, records)
    calls: list[int] = []

    def counting(given: Any, direction: Direction) -> list[TrialRecord]:
        calls.append(len(given))
        return rank(given, direction)

    monkeypatch.setattr(data, "rank", counting)
    data.report_data(experiment, records, T0, importance=[])
    assert calls == [1500]


def test_the_history_is_clean_as_made_and_the_page_encodes_without_nan(
    experiment: Experiment,
) -> None:
    records = [
        record(0, math.nan, alpha=0.001, penalty="l2"),
        record(1, 0.4, alpha=0.001, penalty="l2"),
        record(2, math.inf, alpha=0.001, penalty="l1"),
        record(3, 0.3, alpha=0.01, penalty="l1"),
        record(4, -math.inf, alpha=0.01, penalty="l2"),
    ]
    history = data.history(records, Direction.MINIMIZE)
    for key in data.CLEAN_BY_MAKING:
        json.dumps(history[key], allow_nan=False)
    assert [p["x"] for p in history["points"]] == [1, 3]
    assert history["best"] == [[1, 0.4], [3, 0.3]]
    page = experiment_view(experiment, records, T0, importance=[])
    json.dumps(page, allow_nan=False)
    assert page["report"]["history"] == views_module.clean(history)


def test_a_value_compared_with_itself_has_no_patch() -> None:
    class Unequal(dict[str, Any]):  # noqa: PLW1641 (a dict: unhashable as it is)
        """A row that differs from everything, itself included, when compared."""

        def __eq__(self, other: object) -> bool:
            return False

        def __ne__(self, other: object) -> bool:
            return True

    row = Unequal(name="a", value=1)
    old = {"rows": [row, {"name": "b", "value": 2}]}
    new = {"rows": [row, {"name": "b", "value": 3}]}
    assert diff(row, row) is None
    assert diff(old, new) == {"{}": {"rows": {"[]": [], "~": {"b": {"{}": {"value": {"=": 3}}}}}}}
