"""``kubesweep run`` for real: the tiny trainer (fast) and every example manifest (slow).

The examples run with small budgets (``--max-trials``) four at a time, each with
its own state file, from the repository root with this machine's Python, as a
user would run them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from kubesweep.cli.local.processes import detect_gpus
from kubesweep.cli.local.store import Store
from tests.cli.conftest import EXAMPLES
from tests.cli.local_helpers import finish, kubesweep, tiny_manifest, write_manifest

#: (maxTrials, parallelTrials) per example: enough to exercise each algorithm, little time.
BUDGETS = {
    "random": (3, 2),
    "grid": (3, 2),
    "sobol": (3, 2),
    "bayesian": (5, 3),
    "cmaes": (6, 3),
    "nsga2": (8, 3),
    "tpe": (3, 2),
    "hyperband": (3, 3),
    "asha": (3, 3),
    "asha-checkpoints": (3, 3),
    "pbt": (4, 2),
    "bohb": (3, 3),
    "median-stopping": (4, 2),
    "jsonl-source": (2, 2),
    "push-source": (2, 2),
}


def check_state(path: Path, max_trials: int) -> list[int]:
    store = Store(path)
    try:
        trials = store.trials()
        status = store.status()
    finally:
        store.close()
    indexes = [t.index for t in trials]
    assert len(indexes) == len(set(indexes))
    assert 0 < len(trials) <= max_trials
    assert all(t.finished for t in trials), [(t.name, t.status.phase) for t in trials]
    assert status is not None
    assert status.phase.value == "Succeeded"
    assert status.best_trial is not None or status.pareto_front
    return indexes


def test_tiny_sweep_runs_reads_and_reports(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "tiny.yaml", tiny_manifest("tiny", max_trials=4))
    state = tmp_path / "tiny.db"
    code, out = finish(kubesweep("run", manifest, "--state", state))
    assert code == 0, out
    assert "the image busybox is not used" in out
    assert "trials ranked by loss" in out
    assert "Succeeded (MaxTrialsReached)" in out
    assert check_state(state, 4) == [0, 1, 2, 3]

    code, out = finish(kubesweep("trials", "tiny", "--state", state, "-o", "json"))
    assert code == 0, out
    rows = json.loads(out)
    losses = [r["objective"] for r in rows]
    assert losses == sorted(losses)
    assert {"params.x", "metrics.other"} <= set(rows[0])

    code, out = finish(kubesweep("best", "tiny", "--state", state, "-o", "env"))
    assert code == 0, out
    assert out.startswith("KUBESWEEP_PARAM_X=")

    code, out = finish(kubesweep("logs", "tiny-0", "--state", state, "--tail", "1"))
    assert code == 0, out
    assert out.startswith("step=3 loss=")

    report = tmp_path / "tiny.html"
    code, out = finish(kubesweep("report", "tiny", "--state", state, "-o", report))
    assert code == 0, out
    assert "plot-history" in report.read_text()

    code, out = finish(kubesweep("run", manifest, "--state", state))
    assert code == 2
    assert "--resume" in out


def test_failing_trials_end_the_sweep_as_failed_with_their_output(tmp_path: Path) -> None:
    manifest = tiny_manifest("failing", max_trials=4, fail_above=-1.0, max_failed=1)
    path = write_manifest(tmp_path / "failing.yaml", manifest)
    state = tmp_path / "failing.db"
    code, out = finish(kubesweep("run", path, "--state", state))
    assert code == 1, out
    assert "Failed (MaxFailedTrialsReached)" in out
    code, out = finish(kubesweep("describe", "failing", "--state", state))
    assert "exit code 3" in out
    assert "boom: x is too large" in out


def test_a_trial_without_its_objective_is_told_as_a_process_with_the_form_that_is_read(
    tmp_path: Path,
) -> None:
    manifest = tiny_manifest("colon", max_trials=1, parallel=1, max_failed=1)
    manifest["spec"]["trialTemplate"]["job"]["template"]["spec"]["containers"][0].update(
        command=["python", "-c", "print('loss: 0.1')"], args=[]
    )
    path = write_manifest(tmp_path / "colon.yaml", manifest)
    state = tmp_path / "colon.db"
    code, out = finish(kubesweep("run", path, "--state", state))
    assert code == 1, out
    store = Store(state)
    try:
        (trial,) = store.trials()
    finally:
        store.close()
    assert trial.status.message == "the trial process exited 0 but never reported loss"
    assert "Job" not in out
    assert "the trial process exited 0 but never reported loss" in out
    assert "print `loss=0.1`" in out


def test_a_bad_manifest_exits_2_naming_the_field(tmp_path: Path) -> None:
    manifest = tiny_manifest("bad")
    manifest["spec"]["budget"]["parallelTrials"] = 10
    manifest["spec"]["parameters"][0]["max"] = -1.0
    path = write_manifest(tmp_path / "bad.yaml", manifest)
    code, out = finish(kubesweep("run", path, "--state", tmp_path / "bad.db"))
    assert code == 2
    assert "spec.budget" in out
    assert "parameters[].max must be greater than min" in out


def test_a_jobset_trial_is_refused_locally_naming_the_template(tmp_path: Path) -> None:
    jobset = EXAMPLES / "distributed" / "jobset.yaml"
    code, out = finish(kubesweep("run", jobset, "--state", tmp_path / "jobset.db"))
    assert code == 2, out
    assert "spec.trialTemplate" in out
    assert "kubesweep create" in out


@pytest.mark.slow
def test_every_example_runs_to_completion(tmp_path: Path) -> None:
    names = sorted(BUDGETS)
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} == {*names, "gpu-torch"}
    failures = []
    for start in range(0, len(names), 4):
        batch = names[start : start + 4]
        running = {
            name: kubesweep(
                "run",
                EXAMPLES / f"{name}.yaml",
                "--state",
                tmp_path / f"{name}.db",
                "--max-trials",
                str(BUDGETS[name][0]),
                "--parallel",
                str(BUDGETS[name][1]),
            )
            for name in batch
        }
        for name, process in running.items():
            code, out = finish(process, timeout=400)
            if code != 0:
                failures.append(f"{name}: exit {code}\n{out[-3000:]}")
                continue
            check_state(tmp_path / f"{name}.db", BUDGETS[name][0])
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_the_gpu_example_is_refused_without_gpus_and_runs_with_allow_cpu(tmp_path: Path) -> None:
    if shutil.which("nvidia-smi") and detect_gpus():
        pytest.skip("this machine has GPUs: the refusal cannot happen here")
    code, out = finish(kubesweep("run", EXAMPLES / "gpu-torch.yaml", "--state", tmp_path / "g.db"))
    assert code == 2
    assert "asks for 1 GPU" in out
    assert "--allow-cpu" in out
    pytest.importorskip("torch")
    # The trainer itself refuses a CPU unless told: shorten it and tell it.
    manifest = yaml.safe_load((EXAMPLES / "gpu-torch.yaml").read_text())
    container = manifest["spec"]["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
    container["args"] += ["--epochs=2", "--repeat=1", "--allow-cpu"]
    path = write_manifest(tmp_path / "gpu-cpu.yaml", manifest)
    state = tmp_path / "gpu.db"
    code, out = finish(
        kubesweep("run", path, "--state", state, "--allow-cpu", "--max-trials", "2"), timeout=400
    )
    assert code == 0, out
    assert "running them on the CPU" in out
    check_state(state, 2)
