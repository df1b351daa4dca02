"""The digits data set (shipped with scikit-learn) split and scaled the same way for every trainer.

Shared so that every example reports comparable ``val_loss`` and ``accuracy``:
the split is fixed (seed 0, stratified, 20 % validation) whatever the trial's
own seed, so two trials differ only by their hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

CLASSES = np.arange(10)


@dataclass(frozen=True)
class Split:
    """Training and validation arrays, features standardised on the training part."""

    x_train: Any
    x_val: Any
    y_train: Any
    y_val: Any


def load_split() -> Split:
    """Digits (1,797 8x8 images), 80/20 stratified, standardised."""
    digits = load_digits()
    x_train, x_val, y_train, y_val = train_test_split(
        digits.data, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    scaler = StandardScaler().fit(x_train)
    return Split(scaler.transform(x_train), scaler.transform(x_val), y_train, y_val)


def evaluate(model: Any, split: Split) -> dict[str, float]:
    """Validation log loss and accuracy of a fitted classifier with ``predict_proba``."""
    proba = model.predict_proba(split.x_val)
    return {
        "val_loss": float(log_loss(split.y_val, proba, labels=CLASSES)),
        "accuracy": float(accuracy_score(split.y_val, CLASSES[proba.argmax(axis=1)])),
    }


def metrics_line(epoch: int, metrics: dict[str, float]) -> str:
    """``epoch=N val_loss=... accuracy=...``: the text form the stdout source reads."""
    return " ".join([f"epoch={epoch}", *(f"{name}={value:.6f}" for name, value in metrics.items())])
