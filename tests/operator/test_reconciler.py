"""Reconciliation passes against an in-memory API server: whole sweeps, restarts, outages."""

from __future__ import annotations

import random
from collections.abc import Callable, Set
from datetime import timedelta
from typing import Any

import pytest

from kubesweep.operator.children import PodRecord
from kubesweep.operator.reconciler import ExperimentState
from kubesweep.planning import End
from tests.operator.fakes import Driver, collector_pod, make_runtime

#: What a finished trial reports as its objective, from its stored body.
TrialObjective = Callable[[dict[str, Any]], float]


def lr(trial: dict[str, Any]) -> float:
    value: float = trial["spec"]["parameters"]["lr"]
    return value


def conditions(driver: Driver) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in driver.kube.experiment_status.get("conditions", [])}


async def run_until_end(
    driver: Driver,
    objective: TrialObjective = lr,
    passes: int = 30,
    *,
    fail: Set[str] = frozenset(),
) -> End:
    """Pass and finish jobs until a pass ends the sweep; that pass's end."""
    for _ in range(passes):
        plan = await driver.step()
        if plan is not None and plan.end is not None and not plan.stop:
            return plan.end
        driver.kube.finish_jobs(driver.now, objective, fail=fail)
    raise AssertionError(f"no end after {passes} passes: {driver.kube.experiment_status}")


async def test_sweep_reaches_max_trials_with_a_best_trial() -> None:
    driver = Driver({"maxTrials": 5, "parallelTrials": 2})
    end = await run_until_end(driver)
    assert end.reason.value == "MaxTrialsReached"
    assert sorted(driver.kube.trials) == [f"exp-{i}" for i in range(5)]
    assert set(driver.kube.jobs) == set(driver.kube.trials)
    status = driver.kube.experiment_status
    assert status["phase"] == "Succeeded"
    assert status["trials"]["succeeded"] == 5
    assert status["bestTrial"]["name"] == "exp-0"  # smallest lr, smallest loss
    assert conditions(driver)["Succeeded"]["reason"] == "MaxTrialsReached"
    assert conditions(driver)["Ready"]["status"] == "True"
    reasons = [r for r, _ in driver.events]
    assert reasons.count("TrialCreated") == 5
    assert reasons.count("TrialSucceeded") == 5
    assert "ExperimentSucceeded" in reasons
    # one suggestion call per pass with free slots, never one per trial
    suggest_calls = [b for e, b in driver.backend.calls if e == "suggest"]
    assert [b["count"] for b in suggest_calls] == [2, 2, 1]


async def test_trial_jobs_are_owned_by_their_trials() -> None:
    driver = Driver({"maxTrials": 1, "parallelTrials": 1})
    await driver.step()
    trial = driver.kube.trials["exp-0"]
    job = driver.kube.jobs["exp-0"]
    assert trial["metadata"]["ownerReferences"][0]["kind"] == "Experiment"
    assert job["metadata"]["ownerReferences"][0]["uid"] == trial["metadata"]["uid"]


async def test_crashing_trials_end_the_experiment_as_failed() -> None:
    driver = Driver({"maxTrials": 10, "parallelTrials": 2, "maxFailedTrials": 1})
    end = await run_until_end(driver, fail={f"exp-{i}" for i in range(10)})
    assert end.reason.value == "MaxFailedTrialsReached"
    assert driver.kube.experiment_status["phase"] == "Failed"
    assert conditions(driver)["Failed"]["status"] == "True"
    assert driver.kube.experiment_status["trials"]["failed"] == 2


async def test_target_ends_early_and_stops_running_trials() -> None:
    driver = Driver({"maxTrials": 10, "parallelTrials": 3}, objective={"target": 0.0015})
    await driver.step()  # 3 trials
    driver.kube.finish_jobs(driver.now, lr)
    await driver.step()  # exp-0 (0.001) reached the target
    assert conditions(driver)["Succeeded"]["reason"] == "TargetReached"
    assert len(driver.kube.trials) == 3


async def test_restart_at_any_pass_with_stale_views_creates_exactly_max_trials() -> None:
    rng = random.Random(7)
    driver = Driver({"maxTrials": 12, "parallelTrials": 4})
    stale = driver.kube.children()
    for _ in range(60):
        # a restarted operator forgets everything; an index may lag behind
        state = ExperimentState() if rng.random() < 0.5 else None
        children = stale if rng.random() < 0.5 else None
        stale = driver.kube.children()
        plan = await driver.step(children=children, state=state)
        if plan is not None and plan.end is not None:
            break
        if rng.random() < 0.7:
            driver.kube.finish_jobs(driver.now, lr)
    else:
        pytest.fail("the sweep did not end")
    assert sorted(driver.kube.trials, key=lambda n: int(n.split("-")[1])) == [
        f"exp-{i}" for i in range(12)
    ]
    assert driver.kube.trial_creates == 12
    assert driver.kube.experiment_status["trials"]["succeeded"] == 12


LOSSES = [0.9, 0.73, 0.61, 0.52, 0.43]  # what a trial program printed, one value per step


def complete_job(driver: Driver, name: str, *, pods: list[PodRecord] | None = None) -> None:
    """The Job of ``name`` completed just now, with ``pods`` as the pod index shows them."""
    when = driver.now.isoformat()
    driver.kube.jobs[name]["status"] = {
        "startTime": when,
        "completionTime": when,
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    driver.kube.pods[name] = pods or []


def pushed_first_steps(driver: Driver, name: str, count: int) -> None:
    """The status an operator wrote from the first ``count`` pushed steps before it died."""
    seen = LOSSES[:count]
    driver.kube.trials[name]["status"] = {
        "phase": "Running",
        "objective": min(seen),
        "metrics": [
            {
                "name": "loss",
                "latest": seen[-1],
                "min": min(seen),
                "max": max(seen),
                "step": count - 1,
                "count": count,
            }
        ],
        "curve": [{"step": i, "value": v} for i, v in enumerate(seen)],
    }


def restart(driver: Driver) -> None:
    driver.rt = make_runtime(driver.kube, driver.backend)
    driver.state = ExperimentState()


async def test_a_restart_that_lost_pushes_ends_the_trial_with_the_collectors_account() -> None:
    """Two steps reached status, three pushes died with the operator; the summary has five."""
    driver = Driver({"maxTrials": 1, "parallelTrials": 1})
    await driver.step()
    pushed_first_steps(driver, "exp-0", 2)
    complete_job(driver, "exp-0", pods=[collector_pod("exp-0", LOSSES)])
    restart(driver)
    await driver.step()
    status = driver.kube.trials["exp-0"]["status"]
    assert status["phase"] == "Succeeded"
    assert status["objective"] == min(LOSSES)
    assert status["metrics"][0]["count"] == len(LOSSES)
    assert status["metrics"][0]["latest"] == LOSSES[-1]
    assert [p["value"] for p in status["curve"]] == LOSSES
    account = {c["type"]: c for c in status["conditions"]}["MetricsComplete"]
    assert (account["status"], account["reason"]) == ("True", "CollectorSummary")
    assert driver.kube.experiment_status["bestTrial"]["objective"] == min(LOSSES)


async def test_without_the_collectors_summary_a_trial_waits_then_says_its_metrics_are_partial() -> (
    None
):
    driver = Driver({"maxTrials": 1, "parallelTrials": 1})
    await driver.step()
    pushed_first_steps(driver, "exp-0", 2)
    complete_job(driver, "exp-0")  # the pod shows no termination message (yet)
    restart(driver)
    await driver.step(advance=timedelta(seconds=5))
    status = driver.kube.trials["exp-0"]["status"]
    assert (status["phase"], status["reason"]) == ("Running", "CollectingMetrics")
    await driver.step(advance=timedelta(seconds=20))  # still within the grace period
    await driver.step()
    status = driver.kube.trials["exp-0"]["status"]
    assert status["phase"] == "Succeeded"
    assert status["objective"] == min(LOSSES[:2])
    account = {c["type"]: c for c in status["conditions"]}["MetricsComplete"]
    assert (account["status"], account["reason"]) == ("False", "CollectorSummaryMissing")


async def test_suggestion_outage_reconciles_then_stalls_then_recovers() -> None:
    driver = Driver({"maxTrials": 2, "parallelTrials": 2})
    driver.backend.down = True
    await driver.step()
    assert conditions(driver)["Reconciling"]["reason"] == "SuggestionServiceUnavailable"
    assert "unreachable" in conditions(driver)["Reconciling"]["message"]
    for _ in range(4):
        await driver.step()
    assert conditions(driver)["Stalled"]["status"] == "True"
    assert driver.kube.experiment_status["phase"] != "Failed"
    driver.backend.down = False
    await driver.step()
    assert len(driver.kube.trials) == 2
    assert "Stalled" not in conditions(driver)
    end = await run_until_end(driver)
    assert end.reason.value == "MaxTrialsReached"


async def test_exhausted_space_ends_the_experiment() -> None:
    driver = Driver({"maxTrials": 10, "parallelTrials": 2})
    driver.backend.limit = 3
    end = await run_until_end(driver)
    assert end.reason.value == "SearchSpaceExhausted"
    assert len(driver.kube.trials) == 3


async def test_early_stopping_stops_the_named_running_trials() -> None:
    driver = Driver({"maxTrials": 4, "parallelTrials": 2}, earlyStopping={"name": "median"})
    await driver.step()
    for job in driver.kube.jobs.values():  # running pods
        job["status"] = {"active": 1, "ready": 1}
    await driver.step()  # trials become Running
    stop_calls = [e for e, _ in driver.backend.calls].count("stop")
    await driver.step()  # nothing changed: the rule is not asked again
    assert [e for e, _ in driver.backend.calls].count("stop") == stop_calls
    driver.backend.stop_names = ["exp-1"]
    driver.kube.trials["exp-1"]["status"]["curve"] = [{"step": 1, "value": 0.9}]
    await driver.step()
    trial = driver.kube.trials["exp-1"]
    assert trial["status"]["phase"] == "EarlyStopped"
    assert trial["status"]["message"] == "worse than the median"
    assert "exp-1" not in driver.kube.jobs
    assert ("TrialStopped", "trial exp-1 stopped: worse than the median") in driver.events


async def test_raising_max_trials_resumes_a_finished_experiment() -> None:
    driver = Driver({"maxTrials": 2, "parallelTrials": 2})
    await run_until_end(driver)
    driver.body["spec"]["budget"]["maxTrials"] = 4
    driver.body["metadata"]["generation"] = 2
    await driver.step()
    assert len(driver.kube.trials) == 4
    assert driver.kube.experiment_status["phase"] == "Running"
    assert driver.kube.experiment_status["observedGeneration"] == 2
    assert "ExperimentResumed" in [r for r, _ in driver.events]
    end = await run_until_end(driver)
    assert end.reason.value == "MaxTrialsReached"


async def test_quiet_passes_write_nothing() -> None:
    driver = Driver({"maxTrials": 2, "parallelTrials": 2})
    await run_until_end(driver)
    writes = driver.kube.writes
    for _ in range(3):
        driver.now += timedelta(minutes=1)
        await driver.step()
    assert driver.kube.writes == writes


async def test_progress_only_status_changes_are_rate_limited() -> None:
    # Seeded: an unseeded experiment's first pass writes its drawn seed before its trials.
    driver = Driver({"maxTrials": 4, "parallelTrials": 2}, algorithm={"name": "random", "seed": 1})
    half = timedelta(seconds=0.5)
    await driver.step(advance=half)  # two trials created
    assert driver.kube.experiment_patches == 1
    driver.kube.jobs["exp-0"]["status"] = {"active": 1, "ready": 1}
    await driver.step(advance=half)  # the phase changes to Running: written at once
    assert driver.kube.experiment_patches == 2
    driver.kube.jobs["exp-1"]["status"] = {"active": 1, "ready": 1}
    await driver.step(advance=timedelta(seconds=2))  # only counts changed: held back
    assert driver.kube.experiment_patches == 2
    assert driver.state.status_due
    await driver.step()  # the interval passed
    assert driver.kube.experiment_patches == 3
    assert driver.kube.experiment_status["trials"]["running"] == 2


async def test_a_pass_that_reads_status_older_than_its_seed_keeps_the_seed() -> None:
    driver = Driver({"maxTrials": 4, "parallelTrials": 1})  # unseeded
    await driver.step()
    seed = driver.kube.experiment_status["seed"]
    # The next pass sees the Experiment as it was before the first write (a lagging watch).
    driver.kube.finish_jobs(driver.now, lambda trial: 0.5)
    driver.kube.experiment_status.clear()
    await driver.step()
    assert len(driver.kube.trials) == 2
    assert driver.kube.experiment_status["seed"] == seed
    assert {body["algorithm"]["seed"] for _, body in driver.backend.calls} == {seed}
    # A restart reads the seed back from status and never draws again.
    driver.state = ExperimentState()
    driver.kube.finish_jobs(driver.now, lambda trial: 0.5)
    await driver.step()
    assert len(driver.kube.trials) == 3
    assert {body["algorithm"]["seed"] for _, body in driver.backend.calls} == {seed}


async def test_finished_workloads_are_removed_after_their_retention_the_trials_keep_status() -> (
    None
):
    driver = Driver({"maxTrials": 3, "parallelTrials": 3})
    driver.rt.workload_retention = timedelta(minutes=5)
    await driver.step()
    driver.kube.finish_jobs(driver.now, lr)  # completed a minute ago
    await driver.step()
    statuses = {n: t["status"] for n, t in driver.kube.trials.items()}
    assert all(s["phase"] == "Succeeded" for s in statuses.values()), statuses
    assert sorted(driver.kube.jobs) == ["exp-0", "exp-1", "exp-2"]  # within the retention
    driver.now += timedelta(minutes=5)
    stale = driver.kube.children()
    await driver.step()
    assert driver.kube.jobs == {}
    assert driver.kube.experiment_status["phase"] == "Succeeded"
    assert {n: t["status"] for n, t in driver.kube.trials.items()} == statuses
    # Removed once: a pass whose cache still shows the Jobs does not delete them again.
    assert sorted(stale.jobs) == ["exp-0", "exp-1", "exp-2"]
    writes = driver.kube.writes
    await driver.step(children=stale)
    assert driver.kube.writes == writes


async def test_without_a_retention_finished_workloads_stay() -> None:
    driver = Driver({"maxTrials": 2, "parallelTrials": 2})
    end = await run_until_end(driver)
    assert end.reason.value == "MaxTrialsReached"
    for _ in range(3):
        await driver.step(advance=timedelta(hours=1))
    assert sorted(driver.kube.jobs) == ["exp-0", "exp-1"]
