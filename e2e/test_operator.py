"""The operator on a real API server: whole sweeps, failures, targets, deletion, restarts.

The operator killed at random moments mid-sweep is a case of the fault suite
(``test_faults.py``), which runs on both nodes.

The suggestion service and the operator run as processes beside the cluster
(:mod:`stack`), watching all namespaces; each test works in its own namespace.
Trial programs are one-line Python scripts printing ``loss=<value>`` so the
metrics they report are known exactly.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from cluster.kube import JSON, path_for
from conftest import Apply, Cluster, wait_for
from stack import Stack
from sweeps import (
    API,
    describe,
    end_condition,
    ended,
    experiment,
    get,
    metrics_account,
    printed_last,
    running_stack,
    stalled,
    trials,
    wait_end,
)


@pytest.fixture(scope="module")
def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(cluster, tmp_path_factory)


def test_sweep_succeeds_with_max_trials_and_the_best_trial(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    apply(experiment("sweep", {"maxTrials": 4, "parallelTrials": 2}))
    status = wait_end(cluster, namespace, "sweep")
    assert end_condition(status)["type"] == "Succeeded", describe(cluster, namespace)
    assert end_condition(status)["reason"] == "MaxTrialsReached"
    assert status["trials"]["created"] == 4
    assert status["trials"]["succeeded"] == 4
    found = trials(cluster, namespace)
    assert sorted(t["metadata"]["name"] for t in found) == [f"sweep-{i}" for i in range(4)]
    # each objective is what its program printed
    for trial in found:
        x = float(trial["spec"]["parameters"]["x"])
        assert trial["status"]["objective"] == pytest.approx((x - 0.3) ** 2, abs=1e-5)
    best = min(found, key=lambda t: t["status"]["objective"])
    assert status["bestTrial"]["name"] == best["metadata"]["name"]
    assert status["bestTrial"]["objective"] == best["status"]["objective"]
    # After the first ask, the operator sent only the trials changed since.
    assert suggest_asks(stack, "changes") >= 1, suggest_asks(stack, "whole")


def suggest_asks(stack: Stack, carried: str) -> float:
    """Suggest requests the service answered, by how they carried their history."""
    url = f"http://127.0.0.1:{stack.suggestion_metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    labels = f'endpoint="/v1/suggest",result="{carried}"'
    series = f"kubesweep_suggestion_history_requests_total{{{labels}}}"
    for line in text.splitlines():
        if line.startswith(series):
            return float(line.split()[-1])
    return 0.0


def test_crashing_trials_count_against_max_failed_trials(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    apply(
        experiment(
            "crash", {"maxTrials": 6, "parallelTrials": 1, "maxFailedTrials": 1}, exit_code=3
        )
    )
    status = wait_end(cluster, namespace, "crash")
    condition = end_condition(status)
    assert (condition["type"], condition["reason"]) == ("Failed", "MaxFailedTrialsReached")
    assert status["trials"]["failed"] == 2
    assert status["phase"] == "Failed"


def test_target_ends_the_sweep_early(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    apply(experiment("target", {"maxTrials": 10, "parallelTrials": 1}, target=1.0))
    status = wait_end(cluster, namespace, "target")
    assert end_condition(status)["reason"] == "TargetReached"
    assert status["trials"]["created"] < 10


def test_deleting_an_experiment_removes_trials_and_jobs(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    apply(experiment("gone", {"maxTrials": 4, "parallelTrials": 2}, sleep=30))
    wait_for(
        lambda: cluster.kube.list(path_for("batch/v1", "jobs", namespace)),
        60,
        what="the first Jobs",
    )
    cluster.kube.delete(
        path_for(API, "experiments", namespace, "gone"), propagationPolicy="Background"
    )
    wait_for(
        lambda: (
            not trials(cluster, namespace)
            and not cluster.kube.list(path_for("batch/v1", "jobs", namespace))
            and not cluster.kube.list(path_for("v1", "pods", namespace))
        ),
        120,
        1.0,
        what="trials, jobs and pods to be deleted",
    )


#: Two steps, a pause in which the test stops the operator, then three more steps.
PAUSED_PROGRAM = (
    "import time\n"
    "losses = [0.9, 0.73, 0.61, 0.52, 0.43]\n"
    "for step, loss in enumerate(losses, 1):\n"
    "    print(f'step={step} loss={loss}', flush=True)\n"
    "    time.sleep(20 if step == 2 else 0.2)\n"
)


def job_complete(cluster: Cluster, namespace: str, name: str) -> bool:
    job = cluster.kube.get(path_for("batch/v1", "jobs", namespace, name))
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)


def test_pushes_lost_with_a_killed_operator_come_back_from_the_collectors_summary(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    """Steps 1-2 reach status; the operator is down for steps 3-5 and the final batch.

    The trial must end with the objective of all five steps (the termination
    message's summary), not the one of the two pushes that arrived.
    """
    manifest = experiment("lost-pushes", {"maxTrials": 1, "parallelTrials": 1})
    container = manifest["spec"]["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
    container["command"] = ["python", "-c", PAUSED_PROGRAM]
    container["args"] = []
    apply(manifest)
    trial_path = path_for(API, "trials", namespace, "lost-pushes-0")

    def two_steps_written() -> bool:
        metrics = (cluster.kube.get(trial_path).get("status") or {}).get("metrics") or []
        return bool(metrics) and metrics[0]["count"] == 2

    wait_for(two_steps_written, 20, 0.2, what="the first two steps in the Trial's status")
    stack.kill_operator()
    try:
        wait_for(
            lambda: job_complete(cluster, namespace, "lost-pushes-0"),
            90,
            0.5,
            what="the trial's Job to complete while the operator is down",
        )
    finally:
        stack.start_operator()
    status = wait_end(cluster, namespace, "lost-pushes", timeout=120)
    assert end_condition(status)["reason"] == "MaxTrialsReached"
    trial = cluster.kube.get(trial_path)
    assert trial["status"]["objective"] == 0.43, trial["status"]
    assert trial["status"]["metrics"][0]["count"] == 5
    assert metrics_account(trial) == ("True", "CollectorSummary")
    assert status["bestTrial"]["objective"] == 0.43


def test_metrics_survive_an_unreachable_intake(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    """Pushes go nowhere; the collector's termination message still delivers the objective."""
    stack.extra_operator_args = ("--intake-url=http://127.0.0.1:9/v1/metrics",)
    stack.restart_operator()
    try:
        apply(experiment("lost", {"maxTrials": 2, "parallelTrials": 2}))
        status = wait_end(cluster, namespace, "lost")
    finally:
        stack.extra_operator_args = ()
        stack.restart_operator()
    assert end_condition(status)["type"] == "Succeeded", describe(cluster, namespace)
    for trial in trials(cluster, namespace):
        x = float(trial["spec"]["parameters"]["x"])
        assert trial["status"]["objective"] == printed_last(x)  # PROGRAM prints it once
        assert metrics_account(trial) == ("True", "CollectorSummary")


ALGORITHMS = ["grid", "random", "sobol", "bayesian", "tpe", "hyperband", "asha", "bohb"]
MULTI_FIDELITY = {"hyperband", "asha", "bohb"}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_sweeps_to_the_end(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack, algorithm: str
) -> None:
    from kubesweep.api import AlgorithmName
    from kubesweep.suggestion import registry

    if not registry.available(AlgorithmName(algorithm)):
        pytest.skip(f"{algorithm} is not installed here")
    manifest = experiment("algo", {"maxTrials": 4, "parallelTrials": 2})
    spec = manifest["spec"]
    spec["algorithm"] = {"name": algorithm, "seed": 5}
    if algorithm == "grid":
        spec["parameters"][0]["step"] = 0.25
    if algorithm in MULTI_FIDELITY:
        spec["fidelity"] = {"parameter": "epochs", "min": 1, "max": 9, "eta": 3}
    apply(manifest)
    status = wait_end(cluster, namespace, "algo")
    assert end_condition(status)["type"] == "Succeeded", describe(cluster, namespace)
    assert end_condition(status)["reason"] in ("MaxTrialsReached", "SearchSpaceExhausted")
    assert status["trials"]["created"] <= 4
    assert status["bestTrial"]["objective"] == min(
        t["status"]["objective"]
        for t in trials(cluster, namespace)
        if t["status"].get("phase") == "Succeeded"
    )


def test_cmaes_tells_each_generation_its_results_through_the_operator(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    """One trial at a time, so the second generation is drawn from the first one's results:
    the operator must carry the algorithm's tags and the objectives back unchanged, and
    then its trials are exactly those that the algorithm proposes from the same history.
    """
    from kubesweep.api import Algorithm
    from kubesweep.api.suggestion_wire import (
        ObservedTrial,
        SearchSpace,
        SuggestRequest,
        TrialState,
    )
    from kubesweep.suggestion import registry

    manifest = experiment("cma", {"maxTrials": 6, "parallelTrials": 1}, sleep=1.0)
    spec = manifest["spec"]
    algorithm = {"name": "cmaes", "seed": 5, "settings": {"populationSize": 4}}
    spec["algorithm"] = algorithm
    spec["parameters"].append({"name": "z", "type": "float", "min": -1.0, "max": 1.0})
    apply(manifest)
    status = wait_end(cluster, namespace, "cma")
    context = describe(cluster, namespace)
    assert end_condition(status)["type"] == "Succeeded", context
    assert end_condition(status)["reason"] == "MaxTrialsReached", context
    found = sorted(trials(cluster, namespace), key=lambda t: int(t["spec"]["index"]))
    assert [t["metadata"]["name"] for t in found] == [f"cma-{i}" for i in range(6)], context
    assert all(t["status"]["phase"] == "Succeeded" for t in found), context
    # Each generation after the first begins with its mean (tagged, no member number).
    generations = [
        (t["spec"]["tags"]["generation"], t["spec"]["tags"].get("member", "mean")) for t in found
    ]
    assert generations == [
        ("0", "0"),
        ("0", "1"),
        ("0", "2"),
        ("0", "3"),
        ("1", "mean"),
        ("1", "0"),
    ]
    best = min(found, key=lambda t: t["status"]["objective"])
    assert status["bestTrial"]["name"] == best["metadata"]["name"], context
    assert status["bestTrial"]["objective"] == best["status"]["objective"], context

    space = SearchSpace.model_validate({"parameters": spec["parameters"]})
    history = [
        ObservedTrial(
            name=t["metadata"]["name"],
            parameters=t["spec"]["parameters"],
            state=TrialState.COMPLETED,
            value=t["status"]["objective"],
            tags=t["spec"]["tags"],
        )
        for t in found[:4]
    ]
    reply = registry.suggest(
        SuggestRequest(
            space=space,
            algorithm=Algorithm.model_validate(algorithm),
            trials=history,
        )
    )
    assert reply.assignments[0].parameters == found[4]["spec"]["parameters"], context


def test_raising_max_trials_extends_a_finished_experiment(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    manifest = experiment("grow", {"maxTrials": 2, "parallelTrials": 2})
    apply(manifest)
    first = wait_end(cluster, namespace, "grow")
    assert end_condition(first)["reason"] == "MaxTrialsReached"
    cluster.kube.patch(
        path_for(API, "experiments", namespace, "grow"), {"spec": {"budget": {"maxTrials": 3}}}
    )
    wait_for(
        lambda: (
            (get(cluster, namespace, "grow").get("status") or {}).get("observedGeneration") == 2
        ),
        60,
        what="the edit to be observed",
    )
    status = wait_end(cluster, namespace, "grow")
    assert end_condition(status)["reason"] == "MaxTrialsReached"
    assert status["trials"]["created"] == 3
    assert status["observedGeneration"] == 2


def test_suggestion_outage_stalls_then_the_sweep_finishes(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    stack.stop_suggestion()
    try:
        apply(experiment("outage", {"maxTrials": 2, "parallelTrials": 2}))
        condition = wait_for(lambda: stalled(cluster, namespace, "outage"), 90, 1.0, what="Stalled")
        assert condition["reason"] == "SuggestionServiceUnavailable"
        assert get(cluster, namespace, "outage")["status"]["phase"] != "Failed"
    finally:
        stack.start_suggestion()
    status = wait_end(cluster, namespace, "outage", timeout=180)
    assert end_condition(status)["type"] == "Succeeded"


#: loss = index + 1/(epoch+1), one epoch a second: later trials are always worse.
EPOCHS_PROGRAM = (
    "import sys, time\n"
    "index = int(sys.argv[1])\n"
    "epochs = int(float(sys.argv[2])) if len(sys.argv) > 2 else 8\n"
    "for epoch in range(epochs + 1):\n"
    "    print(f'epoch={epoch} loss={index + 1 / (epoch + 1):.6f}', flush=True)\n"
    "    time.sleep(1)\n"
)


def test_median_stopping_stops_worse_trials(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    manifest = experiment("median", {"maxTrials": 5, "parallelTrials": 2})
    spec = manifest["spec"]
    spec["earlyStopping"] = {"name": "median", "settings": {"minTrials": 2, "startStep": 1}}
    container = spec["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
    container["command"] = ["python", "-c", EPOCHS_PROGRAM]
    container["args"] = ["${trial.index}"]
    apply(manifest)
    status = wait_end(cluster, namespace, "median", timeout=300)
    assert end_condition(status)["type"] == "Succeeded", describe(cluster, namespace)
    assert status["trials"]["earlyStopped"] >= 1, describe(cluster, namespace)
    stopped = [t for t in trials(cluster, namespace) if t["status"].get("phase") == "EarlyStopped"]
    assert all(t["spec"]["index"] >= 2 for t in stopped)
    assert all(t["status"]["reason"] == "EarlyStopped" for t in stopped)
    assert status["bestTrial"]["name"] == "median-0"


def test_gpu_trials_never_oversubscribe_and_waiting_ones_show_as_pending(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    gpus = cluster.gpus
    if gpus < 1:
        pytest.skip("the cluster offers no GPUs")
    trials_wanted = gpus + 2
    manifest = experiment(
        "gpu", {"maxTrials": trials_wanted, "parallelTrials": trials_wanted}, sleep=6
    )
    container = manifest["spec"]["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
    container["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    apply(manifest)
    most_running, most_pending = 0, 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        status = get(cluster, namespace, "gpu").get("status") or {}
        counts = status.get("trials", {})
        most_running = max(most_running, counts.get("running", 0))
        most_pending = max(most_pending, counts.get("pending", 0))
        if ended(cluster, namespace, "gpu"):
            break
        time.sleep(0.5)
    status = wait_end(cluster, namespace, "gpu")
    assert end_condition(status)["type"] == "Succeeded", describe(cluster, namespace)
    assert most_running <= gpus
    assert most_pending >= 1  # the trials without a GPU waited, and said so
    assert status["gpuSeconds"] >= trials_wanted * 5  # each held one GPU for ~6 s


def test_asha_stops_trials_at_its_rungs(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    manifest = experiment("asha", {"maxTrials": 6, "parallelTrials": 3})
    spec = manifest["spec"]
    spec["algorithm"] = {"name": "asha", "seed": 2, "settings": {"mode": "stopping"}}
    spec["fidelity"] = {"parameter": "epochs", "min": 1, "max": 9, "eta": 3}
    container = spec["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
    container["command"] = ["python", "-c", EPOCHS_PROGRAM]
    container["args"] = ["${trial.index}", "${params.epochs}"]
    apply(manifest)
    status = wait_end(cluster, namespace, "asha", timeout=300)
    assert end_condition(status)["type"] == "Succeeded", describe(cluster, namespace)
    assert status["trials"]["earlyStopped"] >= 1, describe(cluster, namespace)
    assert status["bestTrial"]["name"] == "asha-0"


def test_a_trainer_that_ends_at_once_still_reports_its_metrics(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    """The trainer starts only once the collector can catch SIGTERM (its startupProbe)."""
    apply(experiment("instant", {"maxTrials": 3, "parallelTrials": 3}, sleep=0.0))
    status = wait_end(cluster, namespace, "instant")
    assert status["trials"]["succeeded"] == 3, describe(cluster, namespace)
    for trial in trials(cluster, namespace):
        x = float(trial["spec"]["parameters"]["x"])
        assert trial["status"]["objective"] == pytest.approx((x - 0.3) ** 2, abs=1e-5)


@pytest.mark.parametrize(
    ("bend", "field"),
    [
        (
            lambda spec: spec["trialTemplate"]["job"]["template"]["spec"]["containers"][0][
                "args"
            ].append("${params.nope}"),
            "${params.nope}",
        ),
        (
            lambda spec: spec["trialTemplate"]["metrics"].update(filters=["(unclosed"]),
            "spec.trialTemplate.metrics.filters",
        ),
    ],
    ids=["unknown-placeholder", "bad-regex"],
)
def test_what_the_crd_cannot_check_stalls_with_the_field_named(
    cluster: Cluster,
    namespace: str,
    apply: Apply,
    stack: Stack,
    bend: Callable[[JSON], object],
    field: str,
) -> None:
    """Accepted by the API server, refused by the operator before any trial is spent."""
    manifest = experiment("bad", {"maxTrials": 2, "parallelTrials": 1})
    bend(manifest["spec"])
    apply(manifest)

    condition = wait_for(lambda: stalled(cluster, namespace, "bad"), 60, what="a Stalled condition")
    assert condition["status"] == "True"
    assert condition["reason"] == "InvalidSpec"
    assert field in condition["message"], condition["message"]
    assert trials(cluster, namespace) == []
