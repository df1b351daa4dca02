"""Running ``kubesweep run`` as a subprocess, and a tiny trainer that needs no ML libraries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.cli.conftest import ROOT

#: A trainer as ``python -c``: prints ``step=N loss=...`` every ``pause`` seconds; the loss
#: depends on x, so the objective varies; exits 3 when x is above ``fail_above``.
TRAINER = """
import sys, time
x, steps = float(sys.argv[1]), int(sys.argv[2])
pause, fail_above = float(sys.argv[3]), float(sys.argv[4])
if x > fail_above:
    print("boom: x is too large", flush=True)
    sys.exit(3)
for step in range(1, steps + 1):
    time.sleep(pause)
    print(f"step={step} loss={(x - 0.3) ** 2 + 1.0 / step:.6f} other={x:.3f}", flush=True)
"""


def tiny_manifest(
    name: str,
    *,
    max_trials: int = 4,
    parallel: int = 2,
    steps: int = 3,
    pause: float = 0.1,
    fail_above: float = 2.0,
    max_failed: int | None = None,
    marker: str = "kubesweep-test",
) -> dict[str, Any]:
    """An Experiment running :data:`TRAINER` (random search over x in [0, 1])."""
    budget: dict[str, Any] = {"maxTrials": max_trials, "parallelTrials": parallel}
    if max_failed is not None:
        budget["maxFailedTrials"] = max_failed
    return {
        "apiVersion": "kubesweep.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {
                "metric": "loss",
                "direction": "minimize",
                "additionalMetrics": ["other"],
            },
            "algorithm": {"name": "random", "seed": 5},
            "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
            "budget": budget,
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
                                    "args": [
                                        "${params.x}",
                                        str(steps),
                                        str(pause),
                                        str(fail_above),
                                        marker,
                                    ],
                                }
                            ]
                        }
                    }
                },
            },
        },
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(manifest))
    return path


def kubesweep(*args: str | Path, cwd: Path = ROOT, **kwargs: Any) -> subprocess.Popen[str]:
    """``kubesweep ARGS`` from ``cwd`` (the repository root by default), output captured."""
    env = {**os.environ, "COLUMNS": "200", **kwargs.pop("env", {})}
    return subprocess.Popen(
        [sys.executable, "-m", "kubesweep.cli.main", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        **kwargs,
    )


def finish(process: subprocess.Popen[str], timeout: float = 240) -> tuple[int, str]:
    """Wait for the process; its exit code and output."""
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out
