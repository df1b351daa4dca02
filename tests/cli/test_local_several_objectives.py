"""``kubesweep run`` with two objectives and a constraint, end to end on this machine.

The front the run records must be exactly the non-dominated feasible trials,
computed here from each trial's parameters with the trainer's own formulas, and
``best``, ``describe`` and the report must show it with the spec's directions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from kubesweep.cli.local.store import Store
from tests.cli.local_helpers import finish, kubesweep, write_manifest

#: Two objectives of (x, y) in [0, 1]^2 that pull apart (speed against error, say), and a
#: memory figure that only small y keeps under the bound.
TRAINER = """
import math, sys
x, y = float(sys.argv[1]), float(sys.argv[2])
error = (1 - x) ** 2 + 0.3 * y
speed = (1 - x) + 0.5 * y
memory = 100 + 300 * y
print(f"error={error!r} speed={speed!r} memory={memory!r}", flush=True)
"""

MEMORY_BOUND = 220.0


def scores(x: float, y: float) -> tuple[float, float, float]:
    """The trainer's error (minimised), speed (maximised) and memory."""
    return (1 - x) ** 2 + 0.3 * y, (1 - x) + 0.5 * y, 100 + 300 * y


def manifest(max_trials: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubesweep.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "pareto"},
        "spec": {
            "objectives": [
                {"metric": "error", "direction": "minimize"},
                {"metric": "speed", "direction": "maximize"},
            ],
            "constraints": [{"metric": "memory", "max": MEMORY_BOUND}],
            "algorithm": {"name": "nsga2", "seed": 3, "settings": {"populationSize": 4}},
            "parameters": [
                {"name": "x", "type": "float", "min": 0.0, "max": 1.0},
                {"name": "y", "type": "float", "min": 0.0, "max": 1.0},
            ],
            "budget": {"maxTrials": max_trials, "parallelTrials": 3},
            "trialTemplate": {
                "primaryContainer": "main",
                "job": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "busybox",
                                    "command": ["python", "-c", TRAINER],
                                    "args": ["${params.x}", "${params.y}"],
                                }
                            ]
                        }
                    }
                },
            },
        },
    }


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(error, speed): lower error and higher speed are better."""
    at_least = a[0] <= b[0] and a[1] >= b[1]
    return at_least and (a[0] < b[0] or a[1] > b[1])


@pytest.mark.slow
def test_a_local_sweep_ends_with_exactly_the_non_dominated_feasible_trials(
    tmp_path: Path,
) -> None:
    path = write_manifest(tmp_path / "pareto.yaml", manifest(14))
    state = tmp_path / "pareto.db"
    code, out = finish(kubesweep("run", path, "--state", state))
    assert code == 0, out
    assert "Pareto front:" in out

    store = Store(state)
    try:
        trials = store.trials()
        status = store.status()
    finally:
        store.close()
    assert status is not None
    assert len(trials) == 14
    assert all(t.status.phase.value == "Succeeded" for t in trials)

    computed = {}
    infeasible = 0
    for t in trials:
        error, speed, memory = scores(float(t.parameters["x"]), float(t.parameters["y"]))
        if memory > MEMORY_BOUND:
            infeasible += 1
        else:
            computed[t.name] = (error, speed)
    expected = {
        name
        for name, v in computed.items()
        if not any(dominates(w, v) for other, w in computed.items() if other != name)
    }
    assert infeasible > 0  # the constraint did exclude trials
    assert len(expected) >= 3  # and the objectives do pull apart
    assert status.best_trial is None
    assert status.infeasible_trials == infeasible
    assert status.pareto_front is not None
    assert {p.name for p in status.pareto_front} == expected
    assert status.pareto_front_size == len(expected)
    for point in status.pareto_front:
        assert math.isclose(point.values["error"], computed[point.name][0], rel_tol=1e-9)
        assert math.isclose(point.values["speed"], computed[point.name][1], rel_tol=1e-9)

    code, out = finish(kubesweep("best", "pareto", "--state", state, "-o", "json"))
    assert code == 0, out
    best = json.loads(out)
    assert best["objectives"] == [
        {"metric": "error", "direction": "minimize"},
        {"metric": "speed", "direction": "maximize"},
    ]
    assert {p["trial"] for p in best["front"]} == expected
    assert best["infeasibleTrials"] == infeasible

    code, out = finish(kubesweep("best", "pareto", "--state", state, "-o", "env"))
    assert code == 2
    assert "several objectives" in out

    code, out = finish(kubesweep("describe", "pareto", "--state", state))
    assert code == 0, out
    assert "minimize error, maximize speed subject to memory <= 220" in out
    assert f"Pareto front: {len(expected)} trials" in out
    assert "error ↓" in out
    assert "speed ↑" in out

    report = tmp_path / "pareto.html"
    code, out = finish(kubesweep("report", "pareto", "--state", state, "-o", report))
    assert code == 0, out
    assert 'id="plot-pareto-1"' in report.read_text()
