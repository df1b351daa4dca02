"""JobSets and custom resources: every pod template gets the trial; one pod reports."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubesweep.api import parse_experiment
from kubesweep.podcontract import not_reporting_because
from kubesweep.rendering import RenderError, check_template, render_trial
from tests.api.test_workload_shapes import PYTORCH, as_jobset, as_resource, bent

from .conftest import BASE, PARAMS, TOKEN, env, settings, trial

INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
RJOB = "metadata.labels['jobset.sigs.k8s.io/replicatedjob-name']"
JOB_INDEX = "metadata.labels['jobset.sigs.k8s.io/job-index']"


def _pod(container: str = "trainer", **extra: Any) -> dict[str, Any]:
    trainer = copy.deepcopy(BASE["spec"]["trialTemplate"]["job"]["template"]["spec"])
    trainer["containers"][0]["name"] = container
    return {"spec": {**trainer, **extra}}


def _rjob(name: str, container: str = "trainer", **job: Any) -> dict[str, Any]:
    return {"name": name, "replicas": 2, "template": {"spec": {"template": _pod(container), **job}}}


def render(bend: Any, **trial_args: Any) -> dict[str, Any]:
    manifest = bent(bend)
    manifest["spec"] = {**BASE["spec"], "trialTemplate": manifest["spec"]["trialTemplate"]}
    manifest["metadata"] = BASE["metadata"]
    return render_trial(parse_experiment(manifest), trial(**trial_args), settings(), TOKEN)


def collectors(pod_templates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        next(c for c in p["spec"]["initContainers"] if c["name"] == "kubesweep-collector")
        for p in pod_templates
    ]


def pod_env(collector: dict[str, Any], fields: dict[str, str]) -> dict[str, str]:
    """The collector's env in a pod whose downward API fields read ``fields``."""
    return {
        name: value if isinstance(value, str) else fields.get(value["fieldRef"]["fieldPath"], "")
        for name, value in env(collector).items()
    }


def jobset_pods(jobset: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["template"]["spec"]["template"] for r in jobset["spec"]["replicatedJobs"]]


def test_a_jobset_gets_the_trial_in_every_replicated_jobs_pods() -> None:
    jobset = render(as_jobset(_rjob("workers", parallelism=4), _rjob("launcher", "launcher")))
    assert (jobset["apiVersion"], jobset["kind"]) == ("jobset.x-k8s.io/v1alpha2", "JobSet")
    assert jobset["metadata"]["ownerReferences"][0]["kind"] == "Trial"
    workers, launcher = jobset_pods(jobset)
    for pod in (launcher, workers):
        assert pod["metadata"]["labels"]["kubesweep.io/trial"] == "mnist-4"
        assert pod["spec"]["volumes"][-1]["name"] == "kubesweep-metrics"
    (trainer,) = workers["spec"]["containers"]
    assert "--lr=0.001" in trainer["args"]
    assert env(trainer)["KUBESWEEP_PARAM_LR"] == "0.001"
    (launcher_container,) = launcher["spec"]["containers"]
    assert "KUBESWEEP_PARAMS" not in env(launcher_container)  # not the primary container


def test_a_jobsets_defaults_give_way_to_the_template() -> None:
    def bend(spec: dict[str, Any]) -> None:
        as_jobset(_rjob("workers"), _rjob("ps", completionMode="NonIndexed"))(spec)
        spec["trialTemplate"]["retries"] = 2

    jobset = render(bend)
    workers, ps = (r["template"]["spec"] for r in jobset["spec"]["replicatedJobs"])
    assert (workers["completionMode"], workers["backoffLimit"]) == ("Indexed", 0)
    assert ps["completionMode"] == "NonIndexed"
    assert jobset["spec"]["failurePolicy"] == {"maxRestarts": 2}  # trialTemplate.retries


def test_rank_0_of_the_first_replicated_job_reports_unless_another_is_named() -> None:
    jobset = render(as_jobset(_rjob("workers"), _rjob("driver")))
    rank0 = {RJOB: "workers", JOB_INDEX: "0", INDEX: "0"}
    for collector in collectors(jobset_pods(jobset)):
        assert not_reporting_because(pod_env(collector, rank0)) is None
        for other in ({**rank0, JOB_INDEX: "1"}, {**rank0, INDEX: "3"}, {**rank0, RJOB: "driver"}):
            assert not_reporting_because(pod_env(collector, other)) is not None

    def named(spec: dict[str, Any]) -> None:
        as_jobset(_rjob("workers"), _rjob("driver"))(spec)
        spec["trialTemplate"]["reportingPod"] = {
            "matchLabels": {"jobset.sigs.k8s.io/replicatedjob-name": "driver"}
        }

    (collector, _) = collectors(jobset_pods(render(named)))
    assert not_reporting_because(pod_env(collector, {**rank0, RJOB: "driver"})) is None


def test_a_reporting_pod_of_no_replicated_job_or_without_the_primary_is_refused() -> None:
    def unknown(spec: dict[str, Any]) -> None:
        as_jobset(_rjob("workers"))(spec)
        spec["trialTemplate"]["reportingPod"] = {
            "matchLabels": {"jobset.sigs.k8s.io/replicatedjob-name": "chief"}
        }

    problems = check_template(parse_experiment(bent(unknown)).spec)
    assert problems == [
        "trialTemplate.reportingPod.matchLabels: jobset.sigs.k8s.io/replicatedjob-name 'chief' "
        "names no replicated Job of trialTemplate.jobSet (they are workers)"
    ]
    launcher_first = as_jobset(_rjob("launcher", "launcher"), _rjob("workers"))
    (problem,) = check_template(parse_experiment(bent(launcher_first)).spec)
    assert problem.startswith("trialTemplate.primaryContainer: the reporting pod's replicated Job")


def test_child_job_names_must_fit_a_label() -> None:
    long_name = "x" * 56
    with pytest.raises(RenderError, match="has more than 63 characters"):
        render(as_jobset(_rjob(long_name)))


def _resource_pods(resource: dict[str, Any]) -> list[dict[str, Any]]:
    specs = resource["spec"]["pytorchReplicaSpecs"]
    return [specs["Master"]["template"], specs["Worker"]["template"]]


def test_a_custom_resource_gets_the_trial_in_each_named_pod_template() -> None:
    spec = copy.deepcopy(PYTORCH["spec"])
    spec["runPolicy"] = {"description": "${experiment.name} trial ${trial.index}, $${LITERAL}"}
    for replica in spec["pytorchReplicaSpecs"].values():
        replica["template"] = _pod()
    resource = render(as_resource(spec=spec))
    assert (resource["apiVersion"], resource["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    assert resource["metadata"]["name"] == "mnist-4"
    assert resource["metadata"]["ownerReferences"][0]["uid"]
    # Every string of the spec is substituted, once.
    assert resource["spec"]["runPolicy"]["description"] == "mnist trial 4, ${LITERAL}"
    for pod in _resource_pods(resource):
        (trainer,) = pod["spec"]["containers"]
        assert "--lr=0.001" in trainer["args"]
        assert env(trainer)["KUBESWEEP_PARAMS"]
        assert pod["metadata"]["labels"]["kubesweep.io/trial"] == "mnist-4"
    master, worker = collectors(_resource_pods(resource))
    label = "metadata.labels['training.kubeflow.org/replica-type']"
    assert not_reporting_because(pod_env(master, {label: "master"})) is None
    assert not_reporting_because(pod_env(worker, {label: "worker"})) is not None
    assert "backoffLimit" not in resource["spec"]


def test_a_custom_resource_path_that_is_no_pod_template_is_refused() -> None:
    bend = as_resource(podTemplates=["pytorchReplicaSpecs.Chief.template"])
    assert check_template(parse_experiment(bent(bend)).spec) == [
        "trialTemplate.resource.podTemplates[0]: "
        "trialTemplate.resource.spec.pytorchReplicaSpecs.Chief.template is not a pod template "
        "(an object with spec.containers)"
    ]


def test_an_unknown_placeholder_anywhere_in_a_custom_resource_is_refused() -> None:
    spec = copy.deepcopy(PYTORCH["spec"])
    spec["entrypoint"] = "python train.py --lr=${params.lrr}"
    (problem,) = check_template(parse_experiment(bent(as_resource(spec=spec))).spec)
    assert problem.startswith(
        "trialTemplate.resource.spec.entrypoint: unknown placeholder ${params.lrr}"
    )
    assert PARAMS  # the base trial's parameters are the ones known
