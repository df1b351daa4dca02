"""``kubesweep run`` with checkpoints: promoted trials and pbt steps resume from their parents.

The checkpoint examples run as they are, with a checkpoint directory standing
for the claim. The trainer prints where it started (``started at epoch 0`` or
``resumed from <dir> at epoch N``) before its first metrics line, so each trial's
log proves that it loaded its parent's checkpoint and trained only the rest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kubesweep.cli.local.runner import trials_dir
from kubesweep.cli.local.store import LocalTrial, Store
from tests.cli.conftest import EXAMPLES
from tests.cli.local_helpers import finish, kubesweep

RESUMED = re.compile(r"^resumed from (?P<dir>\S+) at epoch (?P<epoch>\d+)$")


def _run(example: str, tmp_path: Path) -> tuple[list[LocalTrial], Path, Path]:
    state = tmp_path / f"{example}.db"
    checkpoints = tmp_path / "checkpoints"
    code, out = finish(
        kubesweep(
            "run", EXAMPLES / f"{example}.yaml", "--state", state, "--checkpoints", checkpoints
        ),
        timeout=400,
    )
    assert code == 0, out
    store = Store(state)
    try:
        trials = store.trials()
        status = store.status()
    finally:
        store.close()
    assert status is not None
    assert status.phase.value == "Succeeded", status
    assert all(t.status.phase.value == "Succeeded" for t in trials), trials
    return trials, state, checkpoints


def _first_lines(state: Path, trial: LocalTrial) -> tuple[str, list[str]]:
    lines = (trials_dir(state) / trial.name / "stdout.log").read_text().splitlines()
    return lines[0], [line for line in lines if line.startswith("epoch=")]


def _check_lineage(
    trials: list[LocalTrial], state: Path, checkpoints: Path, experiment: str
) -> int:
    """Every trial started where its parent ended (or at 0); the number that resumed."""
    by_name = {t.name: t for t in trials}
    resumed = 0
    for trial in trials:
        first, epochs = _first_lines(state, trial)
        assert trial.fidelity is not None
        if trial.parent is None:
            assert first == "started at epoch 0", (trial.name, first)
            start = 0
        else:
            match = RESUMED.match(first)
            assert match is not None, (trial.name, first)
            parent = by_name[trial.parent]
            assert match["dir"] == str(checkpoints / experiment / parent.name)
            assert parent.fidelity is not None
            start = int(match["epoch"])
            assert start == round(parent.fidelity)
            resumed += 1
        assert epochs[0].startswith(f"epoch={start + 1} ")
        assert epochs[-1].startswith(f"epoch={round(trial.fidelity)} ")
        assert (checkpoints / experiment / trial.name / "model.npz").is_file()
    return resumed


def test_asha_promotions_resume_from_the_lower_rungs_checkpoint(tmp_path: Path) -> None:
    trials, state, checkpoints = _run("asha-checkpoints", tmp_path)
    assert len(trials) == 12
    resumed = _check_lineage(trials, state, checkpoints, "digits-asha-resume")
    assert resumed >= 1, "the sweep promoted no trial"
    for trial in trials:
        if trial.parent is not None:
            assert trial.tags["parent"] == trial.parent


def test_pbt_steps_load_their_parents_checkpoints_and_end_with_the_planned_trials(
    tmp_path: Path,
) -> None:
    trials, state, checkpoints = _run("pbt", tmp_path)
    assert len(trials) == 4 * 3  # population times intervals
    resumed = _check_lineage(trials, state, checkpoints, "digits-pbt")
    assert resumed == 4 * 2  # every step after the first interval
    generations = sorted(int(t.tags["generation"]) for t in trials)
    assert generations == [0] * 4 + [1] * 4 + [2] * 4
    exploited = [t for t in trials if t.perturbation is not None]
    assert exploited, "no member copied a better one"
    for trial in exploited:
        assert trial.perturbation is not None
        assert trial.perturbation.startswith(f"copied {trial.parent}")
    code, out = finish(kubesweep("trials", "digits-pbt", "--state", state, "-o", "json"))
    assert code == 0, out
    rows = {row["name"]: row for row in json.loads(out)}
    assert {name: row.get("parent") for name, row in rows.items()} == {
        t.name: t.parent for t in trials
    }
