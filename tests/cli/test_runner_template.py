"""The local runner checks the trial template once per run, as the operator does per pass."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kubesweep.api import Experiment, TrialPhase
from kubesweep.api.experiment import ExperimentSpec
from kubesweep.cli.local import runner as runner_module
from kubesweep.cli.local.runner import Runner, RunOptions, open_state
from kubesweep.rendering import check_template
from kubesweep.rendering import job as job_module
from tests.cli.conftest import ROOT
from tests.cli.local_helpers import tiny_manifest


def run_to_end(experiment: Experiment, tmp_path: Path) -> Runner:
    options = RunOptions(state=tmp_path / "run.db", cwd=ROOT, tick_seconds=0.0)
    store, _ = open_state(experiment, options)
    runner = Runner(experiment, store, options)
    try:
        for _ in range(1500):
            plan = runner.tick()
            if plan.end is not None and not runner.procs and not runner._stopping_alive():
                return runner
            time.sleep(0.02)
        raise AssertionError("the run did not end")
    finally:
        runner._interrupt()


def test_launches_do_not_check_the_template_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []

    def counted(spec: ExperimentSpec) -> list[str]:
        checked.append("run")
        return check_template(spec)

    def at_launch(spec: ExperimentSpec) -> list[str]:
        raise AssertionError("the template was checked again for a launch")

    monkeypatch.setattr(runner_module, "check_template", counted)
    monkeypatch.setattr(job_module, "check_template", at_launch)
    manifest = tiny_manifest("once", max_trials=3, parallel=3, steps=1, pause=0.0)
    runner = run_to_end(Experiment.model_validate(manifest), tmp_path)
    phases = [t.status.phase for t in runner.store.trials()]
    assert phases == [TrialPhase.SUCCEEDED] * 3
    assert checked == ["run"]


def test_a_template_problem_still_fails_each_trial_with_the_renderers_words(
    tmp_path: Path,
) -> None:
    manifest = tiny_manifest("bad", max_trials=2, parallel=2, max_failed=2)
    container = manifest["spec"]["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
    container["args"].append("${params.nope}")
    experiment = Experiment.model_validate(manifest)
    problems = check_template(experiment.spec)
    assert problems
    runner = run_to_end(experiment, tmp_path)
    trials = runner.store.trials()
    assert trials
    for trial in trials:
        assert trial.status.phase is TrialPhase.FAILED
        assert trial.status.reason == "InvalidTemplate"
        assert trial.status.message == "; ".join(problems)
