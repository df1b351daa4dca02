"""Two objectives and a constraint through the operator: the front is exactly the right one.

Each trial prints ``error``, ``speed`` and ``memory`` computed from its parameters,
so the test computes, from the Trials' parameters alone, which trials keep the
memory bound and which of those no other beats on both objectives; the
Experiment's status must name exactly those, with the printed values.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cluster.kube import ApiError, path_for
from conftest import Apply, Cluster
from kubesweep.api import ManifestError, parse_experiment
from stack import Stack
from sweeps import API, describe, end_condition, running_stack, trial_template, trials, wait_end

#: error (minimised) falls with x, speed (maximised) falls with x and rises with y; memory
#: rises with y, and only y <= 0.4 keeps it within 220.
PROGRAM = (
    "import sys, time; x, y = float(sys.argv[1]), float(sys.argv[2]); time.sleep(1); "
    "print(f'error={(1 - x) ** 2 + 0.3 * y:.6f} speed={(1 - x) + 0.5 * y:.6f} "
    "memory={100 + 300 * y:.6f}', flush=True)"
)
MEMORY_BOUND = 220.0


def printed(x: float, y: float) -> tuple[float, float, float]:
    """What PROGRAM prints for (x, y), as the collector parses it."""
    return (
        float(f"{(1 - x) ** 2 + 0.3 * y:.6f}"),
        float(f"{(1 - x) + 0.5 * y:.6f}"),
        float(f"{100 + 300 * y:.6f}"),
    )


def manifest(name: str, max_trials: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objectives": [
                {"metric": "error", "direction": "minimize"},
                {"metric": "speed", "direction": "maximize"},
            ],
            "constraints": [{"metric": "memory", "max": MEMORY_BOUND}],
            "algorithm": {"name": "nsga2", "seed": 4, "settings": {"populationSize": 4}},
            "parameters": [
                {"name": "x", "type": "float", "min": 0.0, "max": 1.0},
                {"name": "z", "type": "float", "min": 0.0, "max": 1.0},
            ],
            # One at a time: every suggestion sees the same history on every run, so the
            # sweep's trials (and the front the test checks) do not depend on timing.
            "budget": {"maxTrials": max_trials, "parallelTrials": 1},
            "trialTemplate": trial_template(
                ["python", "-c", PROGRAM], ["${params.x}", "${params.z}"]
            ),
        },
    }


@pytest.fixture(scope="module")
def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(cluster, tmp_path_factory)


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(error, speed): lower error and higher speed are better."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def test_a_sweep_of_two_objectives_and_a_constraint_ends_with_the_exact_front(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    apply(manifest("front", 8))
    status = wait_end(cluster, namespace, "front", timeout=360)
    context = describe(cluster, namespace)
    assert end_condition(status)["type"] == "Succeeded", context
    assert end_condition(status)["reason"] == "MaxTrialsReached", context
    found = trials(cluster, namespace)
    assert len(found) == 8, context
    assert all(t["status"]["phase"] == "Succeeded" for t in found), context

    feasible: dict[str, tuple[float, float]] = {}
    infeasible = 0
    for trial in found:
        parameters = trial["spec"]["parameters"]
        error, speed, memory = printed(float(parameters["x"]), float(parameters["z"]))
        if memory > MEMORY_BOUND:
            infeasible += 1
        else:
            feasible[trial["metadata"]["name"]] = (error, speed)
    expected = {
        name
        for name, v in feasible.items()
        if not any(dominates(w, v) for other, w in feasible.items() if other != name)
    }
    assert infeasible > 0, context  # the constraint did exclude trials
    assert len(expected) >= 2, context  # and the objectives pull apart
    assert "bestTrial" not in status
    assert status["infeasibleTrials"] == infeasible, context
    assert status["paretoFrontSize"] == len(expected), context
    front = {p["name"]: p["values"] for p in status["paretoFront"]}
    assert set(front) == expected, context
    for name, values in front.items():
        assert (values["error"], values["speed"]) == feasible[name]
    # The Best column: each objective's best on the front (error down, speed up), and its size.
    best_error = min(feasible[name][0] for name in expected)
    best_speed = max(feasible[name][1] for name in expected)
    summary = f"error {best_error:.4g}, speed {best_speed:.4g} (front of {len(expected)})"
    assert status["bestSummary"] == summary, context
    listing = cluster.kubectl("get", "experiments", "front", "-n", namespace).stdout
    assert summary in listing.splitlines()[1], listing


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"algorithm": {"name": "bayesian"}}, "search one objective only"),
        ({"objective": {"metric": "error", "direction": "minimize"}}, "cannot both be set"),
        ({"constraints": [{"metric": "memory"}]}, "a constraint needs max, min or both"),
    ],
)
def test_the_api_server_refuses_what_python_refuses_naming_the_field(
    cluster: Cluster, namespace: str, stack: Stack, change: dict[str, Any], words: str
) -> None:
    body = manifest("refused", 4)
    body["spec"].update(change)
    body["metadata"]["namespace"] = namespace
    with pytest.raises(ManifestError) as local:
        parse_experiment(body)
    assert words in str(local.value)
    with pytest.raises(ApiError) as refused:
        cluster.kube.create(path_for(API, "experiments", namespace), body)
    assert refused.value.status == 422
    assert words in refused.value.message
    assert "spec.objectives" in refused.value.message or "spec.constraints" in refused.value.message
