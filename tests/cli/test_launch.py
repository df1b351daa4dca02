"""A trial as a local process: the rendered Job's primary container, paths made local."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubesweep.api import Checkpoints
from kubesweep.cli.local.launch import (
    LaunchError,
    build_launch,
    describe_launch,
    expand_kube_vars,
    gpu_devices,
    local_trial,
    python_path_env,
    remap_paths,
)
from kubesweep.cli.local.runner import apply_overrides, gpus_per_trial, spec_problems
from tests.cli.conftest import example


def test_random_example_runs_its_command_with_substituted_args_and_param_env(
    tmp_path: Path,
) -> None:
    experiment = example("random")
    params = {"alpha": 0.001, "eta0": 0.5, "penalty": "l1"}
    trial = local_trial(experiment, 3, "digits-random-3", parameters=params)
    launch = build_launch(experiment, trial, tmp_path, push_port=5555, base_env={"HOME": "/h"})
    assert launch.argv[:3] == ("python", "-m", "examples.trainers.sklearn_digits")
    assert "--alpha=0.001" in launch.argv
    assert "--penalty=l1" in launch.argv
    assert "--seed=3" in launch.argv
    assert json.loads(launch.env["KUBESWEEP_PARAMS"]) == params
    assert launch.env["KUBESWEEP_PARAM_PENALTY"] == "l1"
    assert launch.env["KUBESWEEP_TRIAL_NAME"] == "digits-random-3"
    assert launch.env["HOME"] == "/h"
    assert launch.env["KUBESWEEP_METRICS_DIR"] == str(tmp_path)
    assert launch.collector.source == "stdout"
    assert launch.collector.stdout_log == str(tmp_path / "stdout.log")
    assert launch.collector.objective_metric == "val_loss"
    assert launch.gpus == 0
    assert "kubesweep/trainer-sklearn:0.1.0 is not used" in describe_launch(launch, tmp_path)


def test_json_source_path_lives_in_the_trial_directory(tmp_path: Path) -> None:
    experiment = example("jsonl-source")
    trial = local_trial(experiment, 0, "digits-jsonl-0", parameters={"lr": 0.01, "hidden": 32})
    launch = build_launch(experiment, trial, tmp_path, push_port=1, base_env={})
    assert launch.collector.source == "json"
    assert launch.collector.path == str(tmp_path / "metrics.jsonl")
    assert launch.env["KUBESWEEP_METRICS_PATH"] == str(tmp_path / "metrics.jsonl")


def test_push_source_reports_to_the_trials_own_port(tmp_path: Path) -> None:
    experiment = example("push-source")
    trial = local_trial(experiment, 0, "digits-push-0", parameters={"lr": 0.01, "hidden": 32})
    launch = build_launch(experiment, trial, tmp_path, push_port=40123, base_env={})
    assert launch.env["KUBESWEEP_REPORT_URL"] == "http://127.0.0.1:40123"
    assert launch.collector.source == "push"
    assert launch.collector.push_port == 0  # the runner serves the endpoint itself


def test_fidelity_reaches_the_args(tmp_path: Path) -> None:
    experiment = example("hyperband")
    params = {"lr": 0.01, "alpha": 0.0001, "hidden": 32}
    trial = local_trial(experiment, 0, "digits-hyperband-0", parameters=params, fidelity=3.0)
    launch = build_launch(experiment, trial, tmp_path, push_port=1, base_env={})
    assert "--epochs=3" in launch.argv


def test_gpu_example_asks_for_one_gpu(tmp_path: Path) -> None:
    experiment = example("gpu-torch")
    assert gpus_per_trial(experiment) == 1
    params = {"lr": 0.001, "channels": 16, "dropout": 0.1}
    trial = local_trial(experiment, 0, "digits-gpu-0", parameters=params)
    assert build_launch(experiment, trial, tmp_path, push_port=1, base_env={}).gpus == 1


def test_a_container_without_command_cannot_run_locally(tmp_path: Path) -> None:
    data = example("push-source").to_wire()
    container = data["spec"]["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
    del container["command"]
    from kubesweep.api import Experiment

    experiment = Experiment.model_validate(data)
    trial = local_trial(experiment, 0, "digits-push-0", parameters={"lr": 0.01, "hidden": 32})
    with pytest.raises(LaunchError, match="sets no command"):
        build_launch(experiment, trial, tmp_path, push_port=1, base_env={})


def test_kube_vars_and_paths() -> None:
    env = {"A": "1"}
    assert expand_kube_vars("x$(A)y$(B)$$(A)", env) == "x1y$(B)$(A)"
    mapping = {"/kubesweep": Path("/tmp/t")}
    assert remap_paths("--out=/kubesweep/m.jsonl", mapping) == "--out=/tmp/t/m.jsonl"
    assert remap_paths("/kubesweep", mapping) == "/tmp/t"
    assert remap_paths("/kubesweeping/x /a/kubesweep", mapping) == "/kubesweeping/x /a/kubesweep"


def test_gpu_devices_from_nvidia_smi() -> None:
    lines = ["GPU 0: NVIDIA H100 (UUID: GPU-a)", "GPU 1: NVIDIA H100 (UUID: GPU-b)", ""]
    assert gpu_devices(lines, None) == ["0", "1"]
    assert gpu_devices(lines, "1") == ["1"]
    assert gpu_devices([], "0") == []


def test_python_path_env_puts_this_python_first() -> None:
    env = python_path_env({"PATH": "/usr/bin:/venv/bin"}, "/venv/bin/python")
    assert env["PATH"] == "/venv/bin:/usr/bin"


def test_overrides_lower_parallel_to_max_trials() -> None:
    experiment, notes = apply_overrides(example("asha"), max_trials=2, parallel=None)
    assert experiment.spec.budget.max_trials == 2
    assert experiment.spec.budget.parallel_trials == 2
    assert notes == ["parallelTrials lowered from 3 to maxTrials=2"]
    same, none = apply_overrides(example("asha"), None, None)
    assert same == example("asha")
    assert none == []


def test_spec_problems_name_the_field() -> None:
    data = example("random").to_wire()
    data["spec"]["algorithm"]["settings"] = {"nonsense": 1}
    from kubesweep.api import Experiment

    problems = spec_problems(Experiment.model_validate(data))
    assert problems
    assert all(p.startswith("spec.") for p in problems)
    assert any("nonsense" in p for p in problems)
    assert spec_problems(example("random")) == []


def test_the_checkpoint_claim_is_the_runs_checkpoint_directory(tmp_path: Path) -> None:
    experiment = example("random")
    template = experiment.spec.trial_template.model_copy(
        update={"checkpoints": Checkpoints(volume_claim="sweeps", mount_path="/ckpt")}
    )
    experiment = experiment.model_copy(
        update={"spec": experiment.spec.model_copy(update={"trial_template": template})}
    )
    params = {"alpha": 0.001, "eta0": 0.5, "penalty": "l1"}
    trial = local_trial(
        experiment, 3, "digits-random-3", parameters=params, parent="digits-random-1"
    )
    root = tmp_path / "checkpoints"
    launch = build_launch(
        experiment, trial, tmp_path / "t", push_port=1, base_env={}, checkpoint_root=root
    )
    assert launch.env["KUBESWEEP_CHECKPOINT_DIR"] == str(root / "digits-random" / "digits-random-3")
    assert launch.env["KUBESWEEP_RESUME_FROM"] == str(root / "digits-random" / "digits-random-1")
