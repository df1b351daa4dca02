"""Every example manifest is a valid Experiment, renders into a Job, and its trainer runs.

The trainers run in-process with the exact arguments the rendered Job would
give them (with fewer epochs), so a renamed flag, a placeholder the program
cannot parse or a metric line the collector cannot read fails here rather than
on a cluster.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from kubesweep.api import (
    AlgorithmName,
    Experiment,
    MetricsSource,
    ObjectMeta,
    Parameter,
    ParameterType,
    ParameterValue,
    Trial,
    TrialSpec,
    load_experiments,
)
from kubesweep.metrics import parse_json_lines, parse_text
from kubesweep.rendering import RenderSettings, check_template, render_trial
from kubesweep.rendering.workloads import locate, pod_specs, pod_templates

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MANIFESTS = sorted(EXAMPLES.glob("*.yaml")) + sorted((EXAMPLES / "gitops" / "base").glob("*.yaml"))
SETTINGS = RenderSettings(
    collector_image="kubesweep/collector:0.1.0", intake_url="http://kubesweep-operator:8443"
)


def _experiments() -> list[tuple[str, Experiment]]:
    found = []
    for path in MANIFESTS:
        text = path.read_text()
        if "kind: Experiment" not in text:
            continue
        for experiment in load_experiments(text):
            found.append((str(path.relative_to(ROOT)), experiment))
    return found


EXPERIMENTS = _experiments()
IDS = [name for name, _ in EXPERIMENTS]


def _value(parameter: Parameter) -> ParameterValue:
    """A valid assignment near the middle of the range."""
    if parameter.type is ParameterType.CATEGORICAL:
        assert parameter.values
        return parameter.values[-1]
    low, high = parameter.low, parameter.high
    value = (low * high) ** 0.5 if parameter.log else (low + high) / 2
    if parameter.step is not None:
        value = low + round((value - low) / parameter.step) * parameter.step
    return round(value) if parameter.type is ParameterType.INT else value


def sample_trial(experiment: Experiment, index: int = 0) -> Trial:
    """A trial the suggestion service could have made, with every active parameter set."""
    spec = experiment.spec
    values: dict[str, ParameterValue] = {}
    for parameter in spec.parameters:
        if parameter.when is None:
            values[parameter.name] = _value(parameter)
    for parameter in spec.parameters:
        if parameter.when is not None and values.get(parameter.when.parameter) in (
            parameter.when.values
        ):
            values[parameter.name] = _value(parameter)
    for name, value in values.items():
        assert spec.parameter(name).contains(value), (name, value)
    name = f"{experiment.metadata.name}-{index}"
    return Trial(
        metadata=ObjectMeta(name=name, namespace="examples", uid=f"uid-{name}"),
        spec=TrialSpec(
            experiment=experiment.metadata.name,
            index=index,
            parameters=values,
            fidelity=spec.fidelity.min if spec.fidelity is not None else None,
        ),
    )


def render(experiment: Experiment) -> dict[str, Any]:
    """The Job of the example's sample trial."""
    return render_trial(experiment, sample_trial(experiment), SETTINGS, token="t")


def trainer_argv(job: dict[str, Any], primary: str) -> list[str]:
    """The primary container's command line as the trainer sees it, without the wrapper."""
    container = next(
        c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == primary
    )
    command, args = container["command"], container.get("args", [])
    if command[:2] == ["/bin/sh", "-c"]:
        return list(args[1:])  # wrap_command puts the log path first
    return [*command, *args]


def test_there_is_an_example_for_every_algorithm_and_source() -> None:
    specs = [e.spec for _, e in EXPERIMENTS]
    assert {s.algorithm.name for s in specs} >= set(AlgorithmName)
    assert any(s.early_stopping is not None for s in specs)
    sources = {s.trial_template.metrics.source for s in specs}
    assert sources >= {MetricsSource.STDOUT, MetricsSource.JSON, MetricsSource.PUSH}
    assert any(
        c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu") == 1
        for s in specs
        for _, pod in pod_specs(s.trial_template)
        for c in pod["containers"]
    )


@pytest.mark.parametrize(("path", "experiment"), EXPERIMENTS, ids=IDS)
def test_example_is_small_and_its_template_is_sound(path: str, experiment: Experiment) -> None:
    spec = experiment.spec
    assert check_template(spec) == []
    assert spec.budget.max_trials <= 12
    assert spec.budget.parallel_trials <= 3
    assert len(experiment.metadata.name) <= 50, "leave room for -<index> in a 63-char Job name"


@pytest.mark.parametrize(("path", "experiment"), EXPERIMENTS, ids=IDS)
def test_example_renders_into_a_job(path: str, experiment: Experiment) -> None:
    job = render(experiment)
    assert job["metadata"]["name"] == f"{experiment.metadata.name}-0"
    argv = trainer_argv(job, experiment.spec.trial_template.primary_container)
    assert argv[:3] == ["python", "-m", argv[2]]
    assert argv[2].startswith("examples.trainers."), "run trainers as modules (see README)"
    assert importlib.util.find_spec(argv[2]) is not None
    assert not any("${" in a for a in argv), argv
    assert "workingDir" not in job["spec"]["template"]["spec"]["containers"][0]


def _run(
    experiment: Experiment, monkeypatch: pytest.MonkeyPatch, local: Path
) -> tuple[str, list[str]]:
    """The trainer module and its arguments; the checkpoint claim's path becomes ``local``."""
    job = render(experiment)
    argv = trainer_argv(job, experiment.spec.trial_template.primary_container)
    module = importlib.import_module(argv[2])
    container = job["spec"]["template"]["spec"]["containers"][0]
    checkpoints = experiment.spec.trial_template.checkpoints
    mount = None if checkpoints is None else checkpoints.mount_path

    def local_path(text: str) -> str:
        return text.replace(mount, str(local)) if mount else text

    for entry in container["env"]:
        if "value" in entry:
            monkeypatch.setenv(entry["name"], local_path(entry["value"]))
    args = [local_path(a) for a in argv[3:]]
    return module.__name__, [*args, "--epochs=2", "--epoch-seconds=0"]


CPU_EXAMPLES = [(p, e) for p, e in EXPERIMENTS if "torch" not in json.dumps(e.spec.to_wire())]


@pytest.mark.parametrize(("path", "experiment"), CPU_EXAMPLES, ids=[p for p, _ in CPU_EXAMPLES])
def test_cpu_trainer_runs_with_the_rendered_arguments(
    path: str,
    experiment: Experiment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    name, args = _run(experiment, monkeypatch, tmp_path / "checkpoints")
    source = experiment.spec.trial_template.metrics.source
    reported: list[dict[str, Any]] = []
    if source is MetricsSource.JSON:
        monkeypatch.setenv("KUBESWEEP_METRICS_PATH", str(tmp_path / "metrics.jsonl"))
    if source is MetricsSource.PUSH:
        import kubesweep

        def report(step: int | None = None, **metrics: float) -> bool:
            reported.append({"step": step, **metrics})
            return True

        monkeypatch.setattr(kubesweep, "report", report, raising=False)

    assert importlib.import_module(name).main(args) == 0
    if experiment.spec.trial_template.checkpoints is not None:
        own = (
            tmp_path
            / "checkpoints"
            / experiment.metadata.name
            / sample_trial(experiment).metadata.name
        )
        assert any(own.iterdir()), "a trainer of a checkpoint example saves a checkpoint"

    if source is MetricsSource.STDOUT:
        parsed = parse_text(capsys.readouterr().out.splitlines())
    elif source is MetricsSource.JSON:
        parsed = parse_json_lines((tmp_path / "metrics.jsonl").read_text().splitlines())
    else:
        assert [r["step"] for r in reported] == [1, 2]
        return
    observed = {(o.name, o.step) for o in parsed.observations}
    for metric in experiment.spec.objective.metric_names:
        assert {(metric, 1), (metric, 2)} <= observed, (metric, observed)


@pytest.mark.slow
def test_gpu_trainer_refuses_a_cpu_and_trains_with_allow_cpu(
    capsys: pytest.CaptureFixture[str],
) -> None:
    torch = pytest.importorskip("torch")
    from examples.trainers import torch_digits_gpu

    torch.set_num_threads(1)
    if not torch.cuda.is_available():
        assert torch_digits_gpu.main(["--epochs=1"]) == torch_digits_gpu.EXIT_NO_GPU
        assert "no CUDA device is visible" in capsys.readouterr().err
    assert torch_digits_gpu.main(["--epochs=2", "--channels=4", "--allow-cpu"]) == 0
    parsed = parse_text(capsys.readouterr().out.splitlines())
    assert {(o.name, o.step) for o in parsed.observations} >= {("val_loss", 2), ("accuracy", 2)}


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "code"), [(["--epochs=1"], 0), (["--epochs=bogus"], 2)])
def test_wrapped_stdout_trainer_keeps_its_exit_code_and_tees_its_metrics(
    tmp_path: Path, extra: list[str], code: int
) -> None:
    """The rendered command line, run as the process node would, from the repository root."""
    import os
    import subprocess
    import sys

    experiment = dict(EXPERIMENTS)["examples/random.yaml"]
    container = render(experiment)["spec"]["template"]["spec"]["containers"][0]
    log = tmp_path / "stdout.log"
    args = [str(log) if a == "/kubesweep/stdout.log" else a for a in container["args"]]
    assert args[1] == "python"
    args[1] = sys.executable
    done = subprocess.run(
        [*container["command"], *args, *extra],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == code, done.stdout
    assert log.read_text() == done.stdout
    if code == 0:
        parsed = parse_text(log.read_text().splitlines())
        assert {o.name for o in parsed.observations} == {"val_loss", "accuracy"}


DISTRIBUTED = [
    path
    for path in sorted((EXAMPLES / "distributed").glob("*.yaml"))
    if "kind: Experiment" in path.read_text()
]


@pytest.mark.parametrize("path", DISTRIBUTED, ids=lambda p: p.name)
def test_distributed_example_renders_its_workload(path: Path) -> None:
    (experiment,) = load_experiments(path.read_text())
    assert check_template(experiment.spec) == []
    trial = Trial(
        metadata=ObjectMeta(name=f"{experiment.metadata.name}-0", namespace="ns", uid="u"),
        spec=TrialSpec(
            experiment=experiment.metadata.name,
            index=0,
            parameters={p.name: _value(p) for p in experiment.spec.parameters},
        ),
    )
    workload = render_trial(experiment, trial, SETTINGS, token="t")
    assert workload["metadata"]["ownerReferences"][0]["kind"] == "Trial"
    assert experiment.spec.budget.max_gpu_hours is not None
    for at in pod_templates(experiment.spec.trial_template):
        pod = locate(workload["spec"], at.keys)
        assert pod is not None, at.field
        names = [c["name"] for c in pod["spec"]["initContainers"]]
        assert names == ["kubesweep-collector"], at.field
