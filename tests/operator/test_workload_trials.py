"""Trials that run as JobSets or custom resources: created, owned, judged, stopped whole."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kubesweep.operator.children import PodRecord
from kubesweep.operator.workloads import JOBSET, WorkloadResource
from kubesweep.planning import PodView
from tests.operator.fakes import T0, Driver, collector_pod, make_runtime

WORKERS: dict[str, Any] = {
    "replicatedJobs": [
        {
            "name": "workers",
            "replicas": 2,
            "template": {
                "spec": {
                    "parallelism": 4,
                    "completions": 4,
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "trainer",
                                    "command": ["torchrun", "train.py"],
                                    "resources": {"limits": {"nvidia.com/gpu": 4}},
                                }
                            ]
                        }
                    },
                }
            },
        }
    ]
}


def jobset_driver(budget: dict[str, Any], *, enabled: bool = True) -> Driver:
    driver = Driver(budget)
    template = driver.body["spec"]["trialTemplate"]
    del template["job"]
    template["jobSet"] = WORKERS
    if enabled:
        driver.rt = make_runtime(driver.kube, driver.backend, (JOBSET,))
    return driver


def condition(type_: str, reason: str = "", message: str = "") -> dict[str, Any]:
    when = (T0 + timedelta(minutes=1)).isoformat()
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": when,
    }


def ranks(name: str, count: int, phase: str = "Running") -> list[PodRecord]:
    start = T0 - timedelta(minutes=10)
    return [
        PodRecord(PodView(f"{name}-workers-{r // 4}-{r % 4}", phase, start_time=start, gpus=4))
        for r in range(count)
    ]


async def test_a_trial_runs_as_a_jobset_owned_by_its_trial() -> None:
    driver = jobset_driver({"maxTrials": 1, "parallelTrials": 1})
    await driver.step()
    assert driver.kube.jobs == {}
    jobset = driver.kube.workloads["exp-0"]
    assert (jobset["apiVersion"], jobset["kind"]) == ("jobset.x-k8s.io/v1alpha2", "JobSet")
    owner = jobset["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Trial", "exp-0", True)
    assert owner["uid"] == driver.kube.trials["exp-0"]["metadata"]["uid"]


async def test_a_jobset_trial_counts_every_pod_and_succeeds_when_the_jobset_completes() -> None:
    driver = jobset_driver({"maxTrials": 1, "parallelTrials": 1})
    await driver.step()
    driver.kube.pods["exp-0"] = ranks("exp-0", 8)
    await driver.step()
    status = driver.kube.trials["exp-0"]["status"]
    assert status["phase"] == "Running"
    assert status["gpuSeconds"] >= 8 * 4 * 600  # every rank's GPUs, not one pod's
    driver.kube.workloads["exp-0"]["status"] = {"conditions": [condition("Completed")]}
    driver.kube.pods["exp-0"] = [collector_pod("exp-0", [0.5, 0.25]), *ranks("exp-0", 7)]
    await driver.step()
    status = driver.kube.trials["exp-0"]["status"]
    assert (status["phase"], status["objective"]) == ("Succeeded", 0.25)


async def test_a_failed_rank_fails_the_trial_only_when_the_jobset_gives_up() -> None:
    driver = jobset_driver({"maxTrials": 1, "parallelTrials": 1})
    await driver.step()
    driver.kube.pods["exp-0"] = [*ranks("exp-0", 7), *ranks("exp-0-failed", 1, "Failed")]
    driver.kube.workloads["exp-0"]["status"] = {
        "conditions": [condition("RestartingJobSet", "FailedJobs")]
    }
    await driver.step()
    assert driver.kube.trials["exp-0"]["status"]["phase"] == "Running"
    driver.kube.workloads["exp-0"]["status"] = {
        "conditions": [
            condition("Failed", "FailedJobs", "jobset failed due to reaching max restarts")
        ]
    }
    await driver.step()
    status = driver.kube.trials["exp-0"]["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "FailedJobs")
    assert status["message"] == "jobset failed due to reaching max restarts"


async def test_stopping_a_jobset_trial_deletes_the_whole_jobset() -> None:
    driver = jobset_driver({"maxTrials": 2, "parallelTrials": 2, "maxGPUHours": 1})
    await driver.step()
    for name in ("exp-0", "exp-1"):
        driver.kube.pods[name] = ranks(name, 8)
    await driver.step()  # 2 trials x 8 pods x 4 GPUs x 10 min: past 1 GPU-hour
    assert driver.kube.workloads == {}
    assert {t["status"]["phase"] for t in driver.kube.trials.values()} == {"EarlyStopped"}
    conditions = driver.kube.experiment_status["conditions"]
    assert "MaxGPUHoursReached" in {c["reason"] for c in conditions}


async def test_a_jobset_experiment_where_jobsets_are_not_enabled_is_refused() -> None:
    driver = jobset_driver({"maxTrials": 1, "parallelTrials": 1}, enabled=False)
    await driver.step()
    assert driver.kube.trials == {}
    (stalled,) = driver.kube.experiment_status["conditions"]
    assert stalled["reason"] == "InvalidSpec"
    assert stalled["message"].startswith(
        "trialTemplate.jobSet: this kubesweep installation does not run JobSet "
        "(jobset.x-k8s.io/v1alpha2) trials"
    )


TRAINING_RUN = WorkloadResource("example.com/v1", "TrainingRun", "trainingruns")


def resource_driver() -> Driver:
    driver = Driver({"maxTrials": 1, "parallelTrials": 1})
    template = driver.body["spec"]["trialTemplate"]
    job = template.pop("job")
    template["resource"] = {
        "apiVersion": "example.com/v1",
        "kind": "TrainingRun",
        "spec": {"runName": "${trial.name}", "worker": {"template": job["template"]}},
        "podTemplates": ["worker.template"],
        "success": {"field": "status.phase", "values": ["Done"]},
        "failure": {"field": "status.phase", "values": ["Error"]},
    }
    template["reportingPod"] = {}
    driver.rt = make_runtime(driver.kube, driver.backend, (TRAINING_RUN,))
    return driver


async def test_a_custom_resource_trial_runs_and_fails_as_its_status_says() -> None:
    driver = resource_driver()
    await driver.step()
    run = driver.kube.workloads["exp-0"]
    assert (run["kind"], run["spec"]["runName"]) == ("TrainingRun", "exp-0")
    assert run["metadata"]["ownerReferences"][0]["name"] == "exp-0"
    driver.kube.workloads["exp-0"]["status"] = {"phase": "Error"}
    await driver.step()
    status = driver.kube.trials["exp-0"]["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "phase=Error")
    assert status["message"] == "the trial's TrainingRun failed"
