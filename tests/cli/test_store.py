"""The SQLite state: trials by index, status round trips, resume turns running into pending."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from kubesweep.api import ExperimentStatus, TrialPhase, TrialStatus
from kubesweep.cli.local.runner import RunOptions, checkpoints_dir, open_state
from kubesweep.cli.local.store import (
    LocalTrial,
    StateError,
    Store,
    parse_row,
    resumed_status,
)
from tests.cli.conftest import example


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "state.db")
    s.set_meta(experiment="exp", manifest="{}")
    return s


def test_a_trial_index_is_recorded_once(store: Store) -> None:
    trial = LocalTrial(index=0, name="exp-0", parameters={"lr": 0.1})
    assert store.add_trial(trial)
    assert not store.add_trial(replace(trial, parameters={"lr": 0.2}))
    assert [t.parameters for t in store.trials()] == [{"lr": 0.1}]


def test_rows_are_the_trials_unparsed(store: Store) -> None:
    for index in range(3):
        store.add_trial(LocalTrial(index=index, name=f"exp-{index}", parameters={"lr": index}))
    store.update_trial(
        LocalTrial(
            index=1,
            name="exp-1",
            parameters={"lr": 1},
            status=TrialStatus(phase=TrialPhase.RUNNING),
        )
    )
    rows = store.rows()
    assert [row[1] for row in rows] == ["exp-0", "exp-1", "exp-2"]
    assert [parse_row(row) for row in rows] == store.trials()
    assert store.rows() == rows  # read again unchanged: equal rows, which readers compare


def test_a_trial_must_be_named_after_its_experiment_and_index(store: Store) -> None:
    with pytest.raises(StateError):
        store.add_trial(LocalTrial(index=1, name="exp-2", parameters={}))


def test_status_and_process_round_trip(store: Store) -> None:
    trial = LocalTrial(index=3, name="exp-3", parameters={"opt": "sgd"}, fidelity=9.0)
    store.add_trial(trial)
    status = TrialStatus(phase=TrialPhase.RUNNING, reason="Running", objective=0.5)
    store.update_trial(replace(trial, status=status, attempts=1, pid=42, pid_start="77"))
    again = store.trial("exp-3")
    assert again is not None
    assert again.status == status
    assert (again.attempts, again.pid, again.pid_start, again.fidelity) == (1, 42, "77", 9.0)
    store.save_status(ExperimentStatus(message="hi"))
    status_again = store.status()
    assert status_again is not None
    assert status_again.message == "hi"


def test_resume_turns_unfinished_trials_pending_and_keeps_finished_ones(store: Store) -> None:
    done = TrialStatus(phase=TrialPhase.SUCCEEDED, objective=0.1)
    running = TrialStatus(phase=TrialPhase.RUNNING, objective=0.7)
    store.add_trial(LocalTrial(index=0, name="exp-0", parameters={}, status=done))
    store.add_trial(LocalTrial(index=1, name="exp-1", parameters={}, status=running))
    store.add_trial(LocalTrial(index=2, name="exp-2", parameters={}))
    before = store.resume_unfinished()
    assert [t.name for t in before] == ["exp-1", "exp-2"]
    phases = {t.name: (t.status.phase, t.status.objective) for t in store.trials()}
    assert phases == {
        "exp-0": (TrialPhase.SUCCEEDED, 0.1),
        "exp-1": (TrialPhase.PENDING, None),
        "exp-2": (TrialPhase.PENDING, None),
    }


def test_resumed_status_keeps_a_finished_status() -> None:
    stopped = TrialStatus(phase=TrialPhase.EARLY_STOPPED)
    assert resumed_status(stopped) is stopped
    assert resumed_status(TrialStatus(phase=TrialPhase.RUNNING)).reason == "Resumed"


def test_exhausted_flag(store: Store) -> None:
    assert not store.exhausted
    store.set_exhausted(True)
    assert store.exhausted


def test_an_interrupted_run_leaves_no_trial_running(store: Store) -> None:
    done = TrialStatus(phase=TrialPhase.SUCCEEDED, objective=0.1)
    running = TrialStatus(phase=TrialPhase.RUNNING, reason="Running", objective=0.7)
    store.add_trial(LocalTrial(index=0, name="exp-0", parameters={}, status=done))
    store.add_trial(LocalTrial(index=1, name="exp-1", parameters={}, status=running))
    store.update_trial(
        LocalTrial(index=1, name="exp-1", parameters={}, status=running, pid=42, pid_start="7")
    )
    store.save_status(
        ExperimentStatus.model_validate(
            {
                "phase": "Running",
                "trials": {"created": 2, "running": 1, "succeeded": 1, "completed": 1},
                "conditions": [
                    {
                        "type": "Reconciling",
                        "status": "True",
                        "reason": "TrialsRunning",
                        "lastTransitionTime": "2026-11-22T10:00:00Z",
                    }
                ],
            }
        )
    )
    store.mark_interrupted("interrupted; continue with kubesweep run exp.yaml --resume")
    trials = {t.name: t for t in store.trials()}
    assert trials["exp-0"].status == done
    assert trials["exp-1"].status.phase is TrialPhase.PENDING
    assert trials["exp-1"].status.reason == "Interrupted"
    assert (trials["exp-1"].pid, trials["exp-1"].pid_start) == (42, "7")  # for --resume
    status = store.status()
    assert status is not None
    assert status.phase.value == "Pending"
    assert (status.trials.running, status.trials.pending) == (0, 1)
    assert status.message == "interrupted; continue with kubesweep run exp.yaml --resume"
    ready = status.condition("Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", "Interrupted")
    assert status.condition("Reconciling") is None


def test_a_trials_parent_and_perturbation_round_trip(store: Store) -> None:
    trial = LocalTrial(
        index=5, name="exp-5", parameters={"lr": 0.1}, parent="exp-2", perturbation="lr x1.2"
    )
    store.add_trial(trial)
    again = store.trial("exp-5")
    assert again is not None
    assert (again.parent, again.perturbation) == ("exp-2", "lr x1.2")
    store.add_trial(LocalTrial(index=6, name="exp-6", parameters={}))
    fresh = store.trial("exp-6")
    assert fresh is not None
    assert (fresh.parent, fresh.perturbation) == (None, None)


def test_a_state_file_from_before_lineage_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.execute(
            "INSERT INTO trials (idx, name, parameters, fidelity, tags, status) "
            "VALUES (0, 'exp-0', '{}', NULL, '{}', '{}')"
        )
    store = Store(path)
    store.set_meta(experiment="exp", manifest="{}")
    old = store.trial("exp-0")
    assert old is not None
    assert old.parent is None
    assert store.add_trial(LocalTrial(index=1, name="exp-1", parameters={}, parent="exp-0"))
    assert [t.parent for t in store.trials()] == [None, "exp-0"]


#: The trials table as state files had it before trials recorded their lineage.
OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE trials (
    idx INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    parameters TEXT NOT NULL,
    fidelity REAL,
    tags TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    pid INTEGER,
    pid_start TEXT
);
"""


def test_fresh_removes_the_runs_own_checkpoints_but_never_a_named_directory(
    tmp_path: Path,
) -> None:
    experiment = example("random")
    state = tmp_path / "run.db"
    named = tmp_path / "mine"
    for directory in (checkpoints_dir(state), named):
        (directory / "digits-random" / "digits-random-0").mkdir(parents=True)
    store, _ = open_state(experiment, RunOptions(state=state, cwd=tmp_path))
    store.close()
    options = RunOptions(state=state, cwd=tmp_path, fresh=True, checkpoints=named)
    assert options.checkpoint_root == named
    store, resumed = open_state(experiment, options)
    store.close()
    assert not resumed
    assert not checkpoints_dir(state).exists()
    assert (named / "digits-random" / "digits-random-0").is_dir()
    assert RunOptions(state=state, cwd=tmp_path).checkpoint_root == checkpoints_dir(state)
