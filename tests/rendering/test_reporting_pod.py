"""Multi-pod Jobs: only the reporting pod's collector reports, every pod gets the trial."""

from __future__ import annotations

from typing import Any

import pytest

from kubesweep.api import parse_experiment
from kubesweep.podcontract import not_reporting_because
from kubesweep.rendering import check_template, render_trial
from kubesweep.rendering.workloads import reporting_selector

from .conftest import BASE, TOKEN, collector, env, experiment, settings, trial

INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


def indexed(pods: int = 2, **reporting: dict[str, str]) -> Any:
    def bend(document: dict[str, Any]) -> None:
        template = document["spec"]["trialTemplate"]
        template["job"].update(
            {"parallelism": pods, "completions": pods, "completionMode": "Indexed"}
        )
        if reporting:
            template["reportingPod"] = reporting

    return bend


def reporting_env(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in env(collector(job)).items() if k.startswith("KUBESWEEP_REPORTING")}


def pod_env(job: dict[str, Any], **fields: str) -> dict[str, str]:
    """The collector's env in a pod whose downward API fields read ``fields``."""
    values: dict[str, str] = {}
    for name, value in env(collector(job)).items():
        if isinstance(value, str):
            values[name] = value
        else:
            values[name] = fields.get(value["fieldRef"]["fieldPath"], "")
    return values


def test_a_single_pod_job_has_no_reporting_rule() -> None:
    job = render_trial(experiment(), trial(), settings(), TOKEN)
    assert reporting_env(job) == {}


def test_an_indexed_job_reports_from_completion_index_0() -> None:
    job = render_trial(experiment(indexed()), trial(), settings(), TOKEN)
    assert reporting_env(job) == {
        "KUBESWEEP_REPORTING_POD": f'[{{"env":"KUBESWEEP_REPORTING_FIELD_0","equals":"0",'
        f'"field":"{INDEX}"}}]',
        "KUBESWEEP_REPORTING_FIELD_0": {"fieldRef": {"fieldPath": INDEX}},
    }
    assert not_reporting_because(pod_env(job, **{INDEX: "0"})) is None
    assert not_reporting_because(pod_env(job, **{INDEX: "1"})) == (
        f"{INDEX} is '1', the reporting pod's is '0'"
    )
    assert job["spec"]["completionMode"] == "Indexed"  # the JobSpec as written


def test_reporting_pod_adds_to_the_kinds_rule_and_wins_a_clash() -> None:
    bend = indexed(
        matchAnnotations={"batch.kubernetes.io/job-completion-index": "3"},
        matchLabels={"role": "chief"},
    )
    job = render_trial(experiment(bend), trial(), settings(), TOKEN)
    fields = {"metadata.labels['role']": "chief", INDEX: "3"}
    assert not_reporting_because(pod_env(job, **fields)) is None
    assert not_reporting_because(pod_env(job, **{**fields, INDEX: "0"})) is not None
    assert not_reporting_because(pod_env(job, **{INDEX: "3"})) is not None


@pytest.mark.parametrize(
    "job",
    [
        {"parallelism": 2},
        {"completions": 3},
        {"parallelism": 2, "completions": 2, "completionMode": "NonIndexed"},
    ],
)
def test_a_non_indexed_job_of_several_pods_is_accepted_and_every_pod_reports(
    job: dict[str, Any],
) -> None:
    """A v1alpha1 manifest that worked before keeps working: no pod can be named, so
    every pod reports into the one series, as it always did."""
    document = {**BASE, "spec": {**BASE["spec"]}}
    template = {**BASE["spec"]["trialTemplate"]}
    template["job"] = {**template["job"], **job}
    document["spec"]["trialTemplate"] = template
    accepted = parse_experiment(document)
    assert reporting_selector(accepted.spec.trial_template) == ({}, {})


def test_one_pod_needs_no_index() -> None:
    document = {**BASE, "spec": {**BASE["spec"]}}
    template = {**BASE["spec"]["trialTemplate"]}
    template["job"] = {**template["job"], "parallelism": 1, "completions": 1}
    document["spec"]["trialTemplate"] = template
    parse_experiment(document)


def test_a_reporting_key_no_pod_can_carry_is_refused() -> None:
    spec = experiment(indexed(matchLabels={"bad key'": "x"})).spec
    assert check_template(spec) == [
        'trialTemplate.reportingPod.matchLabels: "bad key\'" is not a label or annotation key '
        "(an optional DNS prefix and '/', then letters, digits, '-', '_', '.')"
    ]
