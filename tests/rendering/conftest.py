"""Builders for rendering tests: a base Experiment each test bends in one place."""

from __future__ import annotations

import copy
import shlex
from collections.abc import Callable
from typing import Any

import pytest

from kubesweep.api import Experiment, ObjectMeta, Trial, TrialSpec, parse_experiment
from kubesweep.rendering import RenderSettings

UID = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
TOKEN = "hmac-token-of-the-trial"

BASE: dict[str, Any] = {
    "apiVersion": "kubesweep.io/v1alpha1",
    "kind": "Experiment",
    "metadata": {"name": "mnist", "namespace": "team-a", "uid": "exp-uid"},
    "spec": {
        "objective": {
            "metric": "val_loss",
            "direction": "minimize",
            "additionalMetrics": ["accuracy"],
        },
        "algorithm": {"name": "random", "seed": 1},
        "parameters": [
            {"name": "lr", "type": "float", "min": 1.0e-5, "max": 0.1, "log": True},
            {"name": "layers", "type": "int", "min": 1, "max": 8},
            {"name": "optimizer", "type": "categorical", "values": ["adam", "sgd"]},
            {
                "name": "momentum",
                "type": "float",
                "min": 0.0,
                "max": 0.99,
                "when": {"parameter": "optimizer", "values": ["sgd"]},
            },
        ],
        "budget": {"maxTrials": 10, "parallelTrials": 2},
        "trialTemplate": {
            "primaryContainer": "trainer",
            "retries": 2,
            "job": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "trainer",
                                "image": "acme/mnist:1.0",
                                "command": ["python", "train.py"],
                                "args": [
                                    "--lr=${params.lr}",
                                    "--layers=${params.layers}",
                                    "--optimizer=${params.optimizer}",
                                ],
                            }
                        ],
                    }
                }
            },
        },
    },
}

PARAMS: dict[str, Any] = {"lr": 0.001, "layers": 3, "optimizer": "adam"}


def fake_wrap(command: list[str], args: list[str], log_path: str) -> tuple[list[str], list[str]]:
    """A stand-in for ``kubesweep.collector.wrap_command`` that shows what it was given."""
    script = f'set -o pipefail; "$@" 2>&1 | tee -a {shlex.quote(log_path)}'
    return ["/bin/sh", "-c", script, "kubesweep-wrap"], [*command, *args]


def settings(**changes: Any) -> RenderSettings:
    """Render settings as the operator would make them."""
    values: dict[str, Any] = {
        "collector_image": "kubesweep/collector:0.1.0",
        "intake_url": "http://kubesweep-operator.kubesweep-system.svc:8080/intake",
        "wrap_command": fake_wrap,
    }
    values.update(changes)
    return RenderSettings(**values)


def experiment(bend: Callable[[dict[str, Any]], object] | None = None) -> Experiment:
    """The base Experiment, after ``bend`` has changed its manifest."""
    document = copy.deepcopy(BASE)
    if bend is not None:
        bend(document)
    return parse_experiment(document)


def trial(
    parameters: dict[str, Any] | None = None,
    *,
    index: int = 4,
    fidelity: float | None = None,
    uid: str | None = UID,
    experiment_name: str = "mnist",
    namespace: str | None = "team-a",
) -> Trial:
    """A created Trial (it has a uid) of the base Experiment."""
    return Trial(
        metadata=ObjectMeta(name=f"{experiment_name}-{index}", namespace=namespace, uid=uid),
        spec=TrialSpec(
            experiment=experiment_name,
            index=index,
            parameters=dict(PARAMS if parameters is None else parameters),
            fidelity=fidelity,
        ),
    )


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a rendered Job."""
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def primary(job: dict[str, Any], name: str = "trainer") -> dict[str, Any]:
    """The primary container of a rendered Job."""
    return next(c for c in pod_spec(job)["containers"] if c["name"] == name)


def collector(job: dict[str, Any]) -> dict[str, Any]:
    """The collector sidecar of a rendered Job."""
    return next(c for c in pod_spec(job)["initContainers"] if c["name"] == "kubesweep-collector")


def env(container: dict[str, Any]) -> dict[str, Any]:
    """A container's env as name -> value (or valueFrom)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


@pytest.fixture
def base_settings() -> RenderSettings:
    """Default render settings."""
    return settings()


def argv(job: dict[str, Any], name: str = "trainer") -> list[str]:
    """The primary container's command line as the user wrote it, seen through fake_wrap."""
    container = primary(job, name)
    if container["command"][:2] == ["/bin/sh", "-c"]:
        return list(container["args"])
    return [*container["command"], *container.get("args", [])]


def user_args(job: dict[str, Any]) -> list[str]:
    """The arguments after ``python train.py``."""
    return argv(job)[2:]
