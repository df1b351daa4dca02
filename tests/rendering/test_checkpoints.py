"""What ``trialTemplate.checkpoints`` adds to a trial pod: a claim, locations, placeholders."""

from __future__ import annotations

from typing import Any

import pytest

from kubesweep.api import Trial, TrialSpec
from kubesweep.api.suggestion_wire import Assignment
from kubesweep.rendering import (
    RenderError,
    check_template,
    known_placeholders,
    render_trial,
    trial_manifest,
)

from .conftest import TOKEN, collector, env, experiment, pod_spec, primary, settings, trial


def _with_checkpoints(**checkpoints: Any) -> Any:
    def bend(document: dict[str, Any]) -> None:
        template = document["spec"]["trialTemplate"]
        template["checkpoints"] = checkpoints
        container = template["job"]["template"]["spec"]["containers"][0]
        container["args"] = [
            "--save=${trial.checkpointDir}",
            "--resume=${trial.resumeFrom}",
        ]
        container["env"] = [{"name": "RESUME", "value": "from ${trial.resumeFrom}"}]

    return bend


def _child(parent: str | None) -> Trial:
    base = trial()
    return base.model_copy(update={"spec": base.spec.model_copy(update={"parent": parent})})


def _render(bend: Any, of: Trial) -> dict[str, Any]:
    return render_trial(experiment(bend), of, settings(), TOKEN)


def test_the_claim_is_mounted_into_the_primary_container_only() -> None:
    job = _render(_with_checkpoints(volumeClaim="sweeps", mountPath="/ckpt"), _child(None))
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    assert volumes["kubesweep-checkpoints"] == {
        "name": "kubesweep-checkpoints",
        "persistentVolumeClaim": {"claimName": "sweeps"},
    }
    assert {"name": "kubesweep-checkpoints", "mountPath": "/ckpt"} in primary(job)["volumeMounts"]
    mounted = {m["name"] for m in collector(job)["volumeMounts"]}
    assert "kubesweep-checkpoints" not in mounted


def test_a_promoted_trial_learns_its_own_directory_and_its_parents() -> None:
    job = _render(_with_checkpoints(volumeClaim="sweeps", mountPath="/ckpt"), _child("mnist-1"))
    variables = env(primary(job))
    assert variables["KUBESWEEP_CHECKPOINT_DIR"] == "/ckpt/mnist/mnist-4"
    assert variables["KUBESWEEP_RESUME_FROM"] == "/ckpt/mnist/mnist-1"
    assert variables["RESUME"] == "from /ckpt/mnist/mnist-1"
    args = primary(job)["args"]
    assert "--save=/ckpt/mnist/mnist-4" in args
    assert "--resume=/ckpt/mnist/mnist-1" in args


def test_a_trial_without_a_parent_has_no_resume_variable_and_an_empty_placeholder() -> None:
    job = _render(_with_checkpoints(volumeClaim="sweeps"), _child(None))
    variables = env(primary(job))
    assert variables["KUBESWEEP_CHECKPOINT_DIR"] == "/checkpoints/mnist/mnist-4"
    assert "KUBESWEEP_RESUME_FROM" not in variables
    assert "--resume=" in primary(job)["args"]


def test_an_object_store_prefix_is_passed_through_and_mounts_nothing() -> None:
    job = _render(_with_checkpoints(uri="s3://bucket/sweeps"), _child("mnist-1"))
    variables = env(primary(job))
    assert variables["KUBESWEEP_CHECKPOINT_DIR"] == "s3://bucket/sweeps/mnist/mnist-4"
    assert variables["KUBESWEEP_RESUME_FROM"] == "s3://bucket/sweeps/mnist/mnist-1"
    names = {v["name"] for v in pod_spec(job)["volumes"]}
    assert "kubesweep-checkpoints" not in names


def test_without_checkpoints_a_parent_changes_nothing_and_the_placeholders_are_unknown() -> None:
    with_parent = render_trial(experiment(), _child("mnist-1"), settings(), TOKEN)
    without = render_trial(experiment(), _child(None), settings(), TOKEN)
    assert with_parent == without
    assert "trial.resumeFrom" not in known_placeholders(experiment().spec)
    problems = check_template(experiment(_with_checkpoints(volumeClaim="x")).spec)
    assert problems == []


def test_checkpoint_placeholders_without_checkpoints_are_refused() -> None:
    def bend(document: dict[str, Any]) -> None:
        _with_checkpoints()(document)
        del document["spec"]["trialTemplate"]["checkpoints"]

    with pytest.raises(RenderError, match=r"unknown placeholder \$\{trial.checkpointDir\}"):
        render_trial(experiment(bend), _child(None), settings(), TOKEN)


@pytest.mark.parametrize(
    ("mount_path", "words"),
    [
        ("/kubesweep/ckpt", "kubesweep's metrics volume"),
        ("/", "the root"),
        ("/data", "already a volume mount of the primary container"),
    ],
)
def test_a_mount_path_that_would_hide_something_is_refused(mount_path: str, words: str) -> None:
    def bend(document: dict[str, Any]) -> None:
        _with_checkpoints(volumeClaim="sweeps", mountPath=mount_path)(document)
        pod = document["spec"]["trialTemplate"]["job"]["template"]["spec"]
        pod["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        pod["volumes"] = [{"name": "data", "emptyDir": {}}]

    problems = check_template(experiment(bend).spec)
    assert any(p.startswith("trialTemplate.checkpoints.mountPath") and words in p for p in problems)


def test_the_checkpoint_volume_name_is_reserved() -> None:
    def bend(document: dict[str, Any]) -> None:
        _with_checkpoints(volumeClaim="sweeps")(document)
        pod = document["spec"]["trialTemplate"]["job"]["template"]["spec"]
        pod["volumes"] = [{"name": "kubesweep-checkpoints", "emptyDir": {}}]

    problems = check_template(experiment(bend).spec)
    assert any("kubesweep-checkpoints is reserved" in p for p in problems)


def test_the_trial_records_the_parent_and_perturbation_it_was_suggested_with() -> None:
    manifest = trial_manifest(
        experiment="mnist",
        namespace="team-a",
        experiment_uid="exp-uid",
        index=7,
        name="mnist-7",
        assignment=Assignment(
            parameters={"lr": 0.01},
            fidelity=4.0,
            parent="mnist-2",
            perturbation="copied mnist-2; lr x1.2",
        ),
    )
    spec = TrialSpec.model_validate(manifest["spec"])
    assert (spec.parent, spec.perturbation) == ("mnist-2", "copied mnist-2; lr x1.2")
    plain = trial_manifest(
        experiment="mnist",
        namespace="team-a",
        experiment_uid="exp-uid",
        index=8,
        name="mnist-8",
        assignment=Assignment(parameters={"lr": 0.01}),
    )
    assert "parent" not in plain["spec"]
