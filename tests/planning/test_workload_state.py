"""Each workload kind's own way of saying it succeeded, failed, or waits, read as one state."""

from __future__ import annotations

from typing import Any

import pytest

from kubesweep.api import ResourceTemplate, StatusMatch
from kubesweep.planning.workload import jobset_state, resource_state

T = "2026-11-22T11:30:00Z"


def conditions(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {
        "status": {
            "conditions": [
                {"type": t, "status": s, "reason": f"{t}Reason", "lastTransitionTime": T}
                for t, s in pairs
            ]
        }
    }


def template(success: dict[str, Any], failure: dict[str, Any]) -> ResourceTemplate:
    return ResourceTemplate(
        api_version="example.com/v1",
        kind="TrainingRun",
        spec={},
        pod_templates=["template"],
        success=StatusMatch.model_validate(success),
        failure=StatusMatch.model_validate(failure),
    )


def test_a_jobset_ends_by_its_conditions_and_waits_when_suspended() -> None:
    done = jobset_state(conditions(("Completed", "True")))
    assert done.succeeded is not None
    assert done.failed is None
    assert done.completion_time is not None
    failed = jobset_state(conditions(("RestartingJobSet", "True"), ("Failed", "True")))
    assert failed.failed is not None
    assert failed.failed.reason == "FailedReason"
    restarting = jobset_state(conditions(("RestartingJobSet", "True")))
    assert not restarting.ended  # a restart is the JobSet's own failure policy at work
    assert jobset_state({"spec": {"suspend": True}}).suspended
    assert jobset_state(conditions(("Suspended", "True"))).suspended


def test_a_jobsets_template_gpus_count_every_replicated_jobs_pods() -> None:
    pod = {"containers": [{"resources": {"limits": {"nvidia.com/gpu": 4}}}]}
    spec = {
        "replicatedJobs": [
            {"replicas": 2, "template": {"spec": {"parallelism": 2, "template": {"spec": pod}}}},
            {"template": {"spec": {"template": {"spec": {"containers": [{}]}}}}},
        ]
    }
    assert jobset_state({"spec": spec}).template_gpus == 2 * 2 * 4


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ({"conditions": [{"type": "Succeeded", "status": "True"}]}, "succeeded"),
        ({"conditions": [{"type": "Succeeded", "status": "False"}]}, "failed"),  # Tekton's way
        ({"conditions": [{"type": "Succeeded", "status": "Unknown"}]}, "running"),
        ({}, "running"),
    ],
)
def test_conditions_of_a_custom_resource(status: dict[str, Any], outcome: str) -> None:
    rules = template({"condition": "Succeeded"}, {"condition": "Succeeded", "status": "False"})
    state = resource_state({"status": status}, rules)
    found = "succeeded" if state.succeeded else "failed" if state.failed else "running"
    assert found == outcome
    assert state.kind == "TrainingRun"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ({"jobStatus": "SUCCEEDED"}, "succeeded"),
        ({"jobStatus": "FAILED"}, "failed"),
        ({"jobStatus": "STOPPED"}, "failed"),
        ({"jobStatus": "RUNNING"}, "running"),
        ({"jobStatus": {"nested": "SUCCEEDED"}}, "running"),
        ({}, "running"),
    ],
)
def test_a_status_field_of_a_custom_resource(status: dict[str, Any], outcome: str) -> None:
    rules = template(
        {"field": "status.jobStatus", "values": ["SUCCEEDED"]},
        {"field": "status.jobStatus", "values": ["FAILED", "STOPPED"]},
    )
    state = resource_state({"status": status}, rules)
    found = "succeeded" if state.succeeded else "failed" if state.failed else "running"
    assert found == outcome
    if state.failed is not None:
        assert state.failed.reason == f"jobStatus={status['jobStatus']}"


def test_a_failure_wins_over_a_success_shown_at_once() -> None:
    rules = template({"condition": "Done"}, {"condition": "Broken"})
    state = resource_state(conditions(("Done", "True"), ("Broken", "True")), rules)
    assert state.failed is not None
    assert state.succeeded is None
