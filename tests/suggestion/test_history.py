"""Held histories: a request may carry only what changed since a history the replica holds."""

from __future__ import annotations

import pytest

from kubesweep.api.suggestion_wire import ObservedTrial, TrialState
from kubesweep.suggestion.history import HistoryNeededError, HistoryStore, chain


def trial(name: str, state: TrialState = TrialState.COMPLETED, value: float = 1.0) -> ObservedTrial:
    valued = state is not TrialState.PENDING
    return ObservedTrial(
        name=name, parameters={"x": 0.5}, state=state, value=value if valued else None
    )


def names(trials: list[ObservedTrial]) -> list[str]:
    return [t.name for t in trials]


def test_changes_build_on_the_held_history() -> None:
    store = HistoryStore()
    first = store.resolve("uid-a", None, [trial("t0"), trial("t1")], b"whole")
    assert names(first.trials) == ["t0", "t1"]
    assert first.token == chain("uid-a", None, b"whole")
    second = store.resolve("uid-a", first.token, [trial("t2")], b"changes")
    assert names(second.trials) == ["t0", "t1", "t2"]
    assert second.token == chain("uid-a", first.token, b"changes")
    assert second.token != first.token
    assert store.token("uid-a") == second.token


def test_a_changed_trial_replaces_its_old_record_in_place() -> None:
    store = HistoryStore()
    first = store.resolve("uid-a", None, [trial("t0", TrialState.PENDING), trial("t1")], b"w")
    finished = trial("t0", TrialState.COMPLETED, value=0.25)
    second = store.resolve("uid-a", first.token, [finished, trial("t2")], b"c")
    assert names(second.trials) == ["t0", "t1", "t2"]
    assert second.trials[0] == finished


def test_an_unknown_base_is_a_miss_and_leaves_the_held_history() -> None:
    store = HistoryStore()
    first = store.resolve("uid-a", None, [trial("t0")], b"w")
    with pytest.raises(HistoryNeededError, match="send the whole history"):
        store.resolve("uid-a", "not-a-token", [trial("t1")], b"c")
    assert store.token("uid-a") == first.token


def test_an_older_base_is_a_miss_once_the_history_moved_on() -> None:
    store = HistoryStore()
    first = store.resolve("uid-a", None, [trial("t0")], b"w")
    store.resolve("uid-a", first.token, [trial("t1")], b"c")
    with pytest.raises(HistoryNeededError):
        store.resolve("uid-a", first.token, [trial("t1")], b"c")


def test_a_restarted_replica_holds_nothing() -> None:
    token = HistoryStore().resolve("uid-a", None, [trial("t0")], b"w").token
    assert token is not None
    with pytest.raises(HistoryNeededError):
        HistoryStore().resolve("uid-a", token, [trial("t1")], b"c")


def test_experiments_are_held_apart() -> None:
    store = HistoryStore()
    a = store.resolve("uid-a", None, [trial("a0")], b"same")
    b = store.resolve("uid-b", None, [trial("b0")], b"same")
    assert a.token != b.token  # the UID is part of the chain
    with pytest.raises(HistoryNeededError):
        store.resolve("uid-b", a.token, [trial("b1")], b"c")
    assert names(store.resolve("uid-a", a.token, [trial("a1")], b"c").trials) == ["a0", "a1"]
    assert names(store.resolve("uid-b", b.token, [trial("b1")], b"c").trials) == ["b0", "b1"]


def test_the_least_recently_used_experiment_is_evicted_by_count() -> None:
    store = HistoryStore(max_experiments=2)
    a = store.resolve("uid-a", None, [trial("a0")], b"w")
    store.resolve("uid-b", None, [trial("b0")], b"w")
    a = store.resolve("uid-a", a.token, [trial("a1")], b"c")  # a is now the most recent
    store.resolve("uid-c", None, [trial("c0")], b"w")
    assert len(store) == 2
    assert store.token("uid-b") is None
    assert store.token("uid-a") == a.token


def test_the_held_bytes_stay_within_the_bound() -> None:
    store = HistoryStore(max_bytes=100)
    a = store.resolve("uid-a", None, [trial("a0")], b"x" * 60)
    store.resolve("uid-b", None, [trial("b0")], b"x" * 60)
    assert store.token("uid-a") is None
    assert store.size_bytes == 60
    with pytest.raises(HistoryNeededError):
        store.resolve("uid-a", a.token, [trial("a1")], b"c")
    # A history larger than the bound is answered, never held.
    too_large = store.resolve("uid-c", None, [trial("c0")], b"x" * 101)
    assert too_large.token is None
    assert names(too_large.trials) == ["c0"]


def test_new_trials_grow_the_estimate_and_replaced_ones_do_not() -> None:
    store = HistoryStore()
    first = store.resolve("uid-a", None, [trial("t0", TrialState.PENDING)], b"x" * 40)
    second = store.resolve("uid-a", first.token, [trial("t0")], b"x" * 30)
    assert store.size_bytes == 40
    store.resolve("uid-a", second.token, [trial("t0"), trial("t1")], b"x" * 30)
    assert store.size_bytes == 55


def test_no_experiment_or_repeated_names_hold_nothing() -> None:
    store = HistoryStore()
    assert store.resolve(None, None, [trial("t0")], b"w").token is None
    twice = store.resolve("uid-a", None, [trial("t0"), trial("t0", value=2.0)], b"w")
    assert twice.token is None
    assert len(twice.trials) == 2  # the algorithm gets the request as it came
    with pytest.raises(HistoryNeededError):
        store.resolve(None, "token", [trial("t1")], b"c")


def test_a_disabled_store_holds_nothing() -> None:
    store = HistoryStore(max_experiments=0)
    assert not store.enabled
    assert store.resolve("uid-a", None, [trial("t0")], b"w").token is None
    assert len(store) == 0
