"""The experiment page's deltas: a patch rebuilds the new JSON, and is small."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubesweep.cli.dashboard.deltas import apply, diff


def _trial(index: int, objective: float | None = None, phase: str = "Running") -> dict[str, Any]:
    return {"name": f"t-{index}", "index": index, "phase": phase, "objective": objective}


def _view(trials: list[dict[str, Any]], best: str | None) -> dict[str, Any]:
    return {"experiment": {"done": len(trials), "best": best}, "trials": trials, "seq": 0}


OLD = _view([_trial(0, 0.5, "Succeeded"), _trial(1), _trial(2)], "t-0")

CASES = {
    "a trial finished, the best changed": _view(
        [_trial(0, 0.5, "Succeeded"), _trial(1, 0.25, "Succeeded"), _trial(2)], "t-1"
    ),
    "a trial added": _view([*OLD["trials"], _trial(3)], "t-0"),
    "a trial removed": _view([OLD["trials"][0], OLD["trials"][2]], "t-0"),
    "trials reordered": _view(list(reversed(OLD["trials"])), "t-0"),
    "a key added and one gone": {"experiment": {"done": 3}, "trials": OLD["trials"], "x": [1]},
    "every trial gone": _view([], None),
    "a value's type changed": {**OLD, "seq": "0"},
}


@pytest.mark.parametrize("new", CASES.values(), ids=CASES.keys())
def test_a_patch_rebuilds_the_new_value(new: dict[str, Any]) -> None:
    patch = diff(OLD, new)
    assert patch is not None
    assert apply(OLD, json.loads(json.dumps(patch))) == new


def test_an_unchanged_value_has_no_patch() -> None:
    assert diff(OLD, json.loads(json.dumps(OLD))) is None
    assert apply(OLD, None) is OLD


def test_rows_that_stay_in_place_are_patched_by_name_not_sent_again() -> None:
    trials = [_trial(i, i / 10, "Succeeded") for i in range(1000)]
    old = _view(trials, "t-0")
    changed = [*trials[:500], _trial(500, 0.01, "Succeeded"), *trials[501:], _trial(1000)]
    new = _view(changed, "t-500")
    patch = diff(old, new)
    assert patch == {
        "{}": {
            "experiment": {"{}": {"done": {"=": 1001}, "best": {"=": "t-500"}}},
            "trials": {
                "[]": [_trial(1000)],
                "~": {"t-500": {"{}": {"objective": {"=": 0.01}}}},
            },
        }
    }
    assert len(json.dumps(patch)) * 100 < len(json.dumps(new))
    assert apply(old, patch) == new


def test_a_reordered_list_is_sent_whole() -> None:
    patch = diff(OLD, CASES["trials reordered"])
    assert patch is not None
    assert patch["{}"]["trials"] == {"=": CASES["trials reordered"]["trials"]}


def test_a_list_that_grew_at_its_end_sends_the_new_end() -> None:
    old = {"best": [[0, 0.5], [1, 0.25]]}
    new = {"best": [[0, 0.5], [1, 0.25], [4, 0.125]]}
    patch = diff(old, new)
    assert patch == {"{}": {"best": {"+": [[4, 0.125]]}}}
    assert apply(old, patch) == new
    shrunk = {"best": [[0, 0.5]]}
    assert apply(old, diff(old, shrunk)) == shrunk
