"""Ranking and sorting of trial records, and the running best."""

from __future__ import annotations

import math

from kubesweep.api import Direction, TrialPhase
from kubesweep.cli.ranking import best_so_far, is_known_sort_key, rank, sort_records
from tests.cli.conftest import record


def test_rank_puts_succeeded_by_objective_first_then_stopped_then_failures() -> None:
    records = [
        record(0, None, TrialPhase.FAILED),
        record(1, 0.5),
        record(2, 0.2, TrialPhase.EARLY_STOPPED),
        record(3, 0.3),
        record(4, None, TrialPhase.RUNNING),
        record(5, math.nan),
    ]
    names = [r.index for r in rank(records, Direction.MINIMIZE)]
    assert names == [3, 1, 5, 2, 4, 0]


def test_rank_maximize_reverses_the_objective_order() -> None:
    records = [record(0, 0.1), record(1, 0.9), record(2, 0.5)]
    assert [r.index for r in rank(records, Direction.MAXIMIZE)] == [1, 2, 0]


def test_rank_ties_go_to_the_earlier_index() -> None:
    records = [record(2, 0.1), record(0, 0.1)]
    assert [r.index for r in rank(records, Direction.MINIMIZE)] == [0, 2]


def test_sort_by_parameter_metric_and_duration_with_missing_values_last() -> None:
    records = [record(0, 0.3, lr=0.1), record(1, 0.2), record(2, 0.1, lr=0.01)]
    assert [r.index for r in sort_records(records, "lr", Direction.MINIMIZE)] == [2, 0, 1]
    by_desc = sort_records(records, "lr", Direction.MINIMIZE, descending=True)
    assert [r.index for r in by_desc] == [0, 2, 1]
    assert [r.index for r in sort_records(records, "val_loss", Direction.MINIMIZE)] == [2, 1, 0]
    assert [r.index for r in sort_records(records, "duration", Direction.MINIMIZE)] == [0, 1, 2]


def test_sort_by_mixed_categorical_values_compares_text() -> None:
    records = [record(0, 0.3, opt="sgd"), record(1, 0.2, opt=3), record(2, 0.1, opt="adam")]
    assert [r.index for r in sort_records(records, "opt", Direction.MINIMIZE)] == [1, 2, 0]


def test_known_sort_keys() -> None:
    records = [record(0, 0.3, lr=0.1)]
    assert is_known_sort_key("objective", records)
    assert is_known_sort_key("lr", records)
    assert is_known_sort_key("val_loss", records)
    assert not is_known_sort_key("nope", records)


def test_best_so_far_skips_missing_values() -> None:
    values = [None, 3.0, 4.0, math.nan, 1.0, 2.0]
    assert best_so_far(values, Direction.MINIMIZE) == [None, 3.0, 3.0, 3.0, 1.0, 1.0]
    assert best_so_far(values, Direction.MAXIMIZE) == [None, 3.0, 4.0, 4.0, 4.0, 4.0]


def test_to_dict_is_flat() -> None:
    row = record(1, 0.5, lr=0.1).to_dict()
    assert row["params.lr"] == 0.1
    assert row["metrics.val_loss"] == 0.5
    assert row["duration"] == 20.0
    assert row["phase"] == "Succeeded"
