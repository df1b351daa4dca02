"""The operator's index of children: slim records, grouping, and what each change wakes."""

from __future__ import annotations

from typing import Any

from kubesweep.operator.children import ChildIndex, Kind, pod_record, slim_job, slim_trial
from kubesweep.operator.compact import IndexedTrial
from kubesweep.rendering import COLLECTOR_NAME, LABEL_EXPERIMENT, LABEL_TRIAL


def trial_body(
    name: str, experiment: str, namespace: str = "ns", phase: str = "Running"
) -> dict[str, Any]:
    index = int(name.rsplit("-", 1)[1])
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {"experiment": experiment, "index": index, "parameters": {"lr": 0.1}},
        "status": {"phase": phase},
    }


def child_body(name: str, trial: str, experiment: str, namespace: str = "ns") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {LABEL_TRIAL: trial, LABEL_EXPERIMENT: experiment},
        },
        "status": {"phase": "Running"},
    }


def phase_of(trial: IndexedTrial) -> str:
    """The phase a slim trial's status holds (every indexed trial has a status)."""
    assert trial.status is not None
    return trial.status.phase.value


def test_slim_trial_drops_metadata_noise() -> None:
    trial = slim_trial(
        {
            "metadata": {"name": "exp-0", "namespace": "ns", "uid": "u", "managedFields": [{}]},
            "spec": {"experiment": "exp", "index": 0, "parameters": {"lr": 0.1}},
            "status": {"phase": "Running"},
        }
    )
    assert trial is not None
    assert (trial.name, trial.namespace, trial.uid, trial.experiment) == ("exp-0", "ns", "u", "exp")
    assert trial.source is not None  # a running trial keeps what its workload is rendered from
    assert "managedFields" not in trial.source.metadata.model_dump()
    assert slim_trial({"metadata": {"name": "x"}, "spec": {"index": -1}}) is None


def test_slim_job_keeps_gpus_and_status() -> None:
    job = slim_job(
        {
            "metadata": {"name": "exp-0"},
            "spec": {
                "suspend": True,
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "m",
                                "image": "i",
                                "resources": {"limits": {"nvidia.com/gpu": 1}},
                            }
                        ]
                    }
                },
            },
            "status": {"active": 1},
        }
    )
    assert job["spec"]["suspend"] is True
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert job["status"] == {"active": 1}


def test_pod_record_reads_the_gpus_it_holds_and_when_it_ended() -> None:
    body = child_body("exp-0-0-abcde", "exp-0", "exp")
    body["spec"] = {
        "initContainers": [{"name": COLLECTOR_NAME, "restartPolicy": "Always"}],
        "containers": [{"name": "m", "resources": {"limits": {"nvidia.com/gpu": "4"}}}],
    }
    body["status"] = {
        "phase": "Succeeded",
        "startTime": "2026-11-22T10:00:00Z",
        "containerStatuses": [
            {"name": "m", "state": {"terminated": {"finishedAt": "2026-11-22T10:30:00Z"}}}
        ],
        "initContainerStatuses": [
            {
                "name": COLLECTOR_NAME,
                "state": {"terminated": {"finishedAt": "2026-11-22T10:30:02Z"}},
            }
        ],
    }
    view = pod_record(body).view
    assert view.gpus == 4
    assert view.finish_time is not None
    assert view.finish_time.isoformat() == "2026-11-22T10:30:02+00:00"
    body["status"]["phase"] = "Running"
    assert pod_record(body).view.finish_time is None


def test_slim_job_keeps_what_gpu_accounting_reads() -> None:
    job = slim_job(
        {
            "metadata": {"name": "exp-0"},
            "spec": {
                "parallelism": 4,
                "completions": 4,
                "template": {
                    "spec": {
                        "initContainers": [{"name": "s", "restartPolicy": "Always"}],
                        "containers": [{"name": "m", "image": "i"}],
                    }
                },
            },
        }
    )
    assert (job["spec"]["parallelism"], job["spec"]["completions"]) == (4, 4)
    assert job["spec"]["template"]["spec"]["initContainers"] == [{"restartPolicy": "Always"}]


def test_pod_record_reads_waiting_and_the_collector_summary() -> None:
    record = pod_record(
        {
            "metadata": {"name": "p"},
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes have free nvidia.com/gpu",
                    }
                ],
                "initContainerStatuses": [
                    {"name": COLLECTOR_NAME, "state": {"terminated": {"message": '{"v":1}'}}}
                ],
            },
        }
    )
    assert record.view.unschedulable_message == "0/1 nodes have free nvidia.com/gpu"
    assert record.summary_message == '{"v":1}'


def test_trials_are_grouped_by_experiment_and_each_change_names_it() -> None:
    index = ChildIndex()
    assert index.apply(Kind.TRIALS, "ADDED", trial_body("a-0", "a")) == {("ns", "a")}
    assert index.apply(Kind.TRIALS, "ADDED", trial_body("a-1", "a")) == {("ns", "a")}
    assert index.apply(Kind.TRIALS, "ADDED", trial_body("b-0", "b")) == {("ns", "b")}
    assert index.apply(Kind.TRIALS, "ADDED", trial_body("a-0", "a", namespace="other")) == {
        ("other", "a")
    }
    assert sorted(t.name for t in index.trials(("ns", "a"))) == ["a-0", "a-1"]
    assert [t.name for t in index.trials(("other", "a"))] == ["a-0"]

    index.apply(Kind.TRIALS, "MODIFIED", trial_body("a-1", "a", phase="Succeeded"))
    phases = {t.name: phase_of(t) for t in index.trials(("ns", "a"))}
    assert phases == {"a-0": "Running", "a-1": "Succeeded"}

    assert index.apply(Kind.TRIALS, "DELETED", trial_body("a-0", "a")) == {("ns", "a")}
    assert [t.name for t in index.trials(("ns", "a"))] == ["a-1"]
    assert index.trial("ns", "a-0") is None
    assert index.count(Kind.TRIALS) == 3


def test_a_malformed_trial_is_dropped_and_its_old_record_goes() -> None:
    index = ChildIndex()
    index.apply(Kind.TRIALS, "ADDED", trial_body("a-0", "a"))
    broken = trial_body("a-0", "a")
    broken["spec"]["index"] = -1
    # The experiment is still told: its trial vanished from the picture.
    assert index.apply(Kind.TRIALS, "MODIFIED", broken) == {("ns", "a")}
    assert index.trials(("ns", "a")) == []


def test_jobs_and_pods_are_found_by_trial_and_wake_their_experiment() -> None:
    index = ChildIndex()
    assert index.apply(Kind.JOBS, "ADDED", child_body("a-0", "a-0", "a")) == {("ns", "a")}
    assert index.apply(Kind.PODS, "ADDED", child_body("a-0-x1", "a-0", "a")) == {("ns", "a")}
    assert index.apply(Kind.PODS, "ADDED", child_body("a-0-x2", "a-0", "a")) == {("ns", "a")}
    job = index.job("ns", "a-0")
    assert job is not None
    assert job["metadata"]["name"] == "a-0"
    assert sorted(p.view.name for p in index.pods("ns", "a-0")) == ["a-0-x1", "a-0-x2"]
    assert index.job("ns", "a-1") is None
    assert index.pods("ns", "a-1") == []

    index.apply(Kind.PODS, "DELETED", child_body("a-0-x1", "a-0", "a"))
    assert [p.view.name for p in index.pods("ns", "a-0")] == ["a-0-x2"]


def test_objects_without_the_trial_labels_are_not_children() -> None:
    index = ChildIndex()
    unlabelled = {"metadata": {"name": "web", "namespace": "ns"}, "status": {}}
    assert index.apply(Kind.PODS, "ADDED", unlabelled) == set()
    assert index.count(Kind.PODS) == 0


def test_objects_listed_in_a_namespace() -> None:
    index = ChildIndex()
    index.apply(Kind.TRIALS, "ADDED", trial_body("a-0", "a"))
    index.apply(Kind.TRIALS, "ADDED", trial_body("a-0", "a", namespace="other"))
    assert index.objects(Kind.TRIALS, "ns") == [("ns", "a-0")]
    assert sorted(index.objects(Kind.TRIALS, None)) == [("ns", "a-0"), ("other", "a-0")]
