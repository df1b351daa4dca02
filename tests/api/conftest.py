"""A minimal valid Experiment manifest that each test bends in one place."""

from __future__ import annotations

import copy
from typing import Any

import pytest

VALID: dict[str, Any] = {
    "apiVersion": "kubesweep.io/v1alpha1",
    "kind": "Experiment",
    "metadata": {"name": "mnist-lr", "namespace": "team-a"},
    "spec": {
        "objective": {"metric": "val_loss", "direction": "minimize", "target": 0.05},
        "algorithm": {"name": "bayesian", "seed": 7, "settings": {"initialTrials": 8}},
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
        "budget": {"maxTrials": 60, "parallelTrials": 6, "maxFailedTrials": 3},
        "trialTemplate": {
            "primaryContainer": "trainer",
            "job": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "trainer",
                                "image": "acme/mnist:1.0",
                                "command": ["python", "train.py"],
                                "args": ["--lr=${params.lr}"],
                            }
                        ],
                    }
                }
            },
        },
    },
}


@pytest.fixture
def manifest() -> dict[str, Any]:
    """A fresh deep copy of the valid manifest."""
    return copy.deepcopy(VALID)
