"""Softmax regression on digits by minibatch SGD, checkpointed after every epoch.

The trial program of the checkpoint examples (``asha-checkpoints.yaml``,
``pbt.yaml``). ``--epochs`` is the epoch to train *up to*: a trial that resumes
from its parent's checkpoint (a promotion, a pbt step) loads the weights and the
epoch count the parent reached and trains only the epochs that are missing, with
its own hyperparameters (pbt may have changed the learning rate). It prints
``resumed from <dir> at epoch N`` or ``started at epoch 0`` before its first
metrics line, so a log shows where each trial began.

Where the checkpoints are: ``--checkpoint-dir`` and ``--resume-from`` (the
examples pass ``${trial.checkpointDir}`` and ``${trial.resumeFrom}``), else
``kubesweep.checkpoint_dir()`` and ``kubesweep.resume_from()``, which read the
variables every trial with ``trialTemplate.checkpoints`` has. The model is a
weight matrix, so a checkpoint is one ``.npz`` file, written to a temporary
name and renamed, so a trial stopped while writing never leaves half of one.

Run: ``python -m examples.trainers.checkpoint_digits --lr=0.1 --epochs=3
--checkpoint-dir=/tmp/a``, then ``--epochs=9 --checkpoint-dir=/tmp/b --resume-from=/tmp/a``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import kubesweep
from examples.trainers._digits import load_split, metrics_line

#: The checkpoint file in a trial's directory.
CHECKPOINT = "model.npz"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The hyperparameters and where the checkpoints are."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.1, help="SGD step size")
    parser.add_argument("--batch", type=int, default=32, help="examples per step")
    parser.add_argument("--epochs", type=int, default=9, help="train up to this epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", default="", help="where this trial saves")
    parser.add_argument("--resume-from", default="", help="the parent's checkpoint directory")
    parser.add_argument("--epoch-seconds", type=float, default=0.0, help="sleep after each epoch")
    return parser.parse_args(argv)


def _softmax(logits: Any) -> Any:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _metrics(weights: Any, x: Any, y: Any) -> dict[str, float]:
    proba = _softmax(x @ weights)
    loss = -np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None)).mean()
    return {"val_loss": float(loss), "accuracy": float((proba.argmax(axis=1) == y).mean())}


def load(directory: str) -> tuple[Any, int]:
    """The weights and the epoch a checkpoint directory holds."""
    with np.load(Path(directory) / CHECKPOINT) as stored:
        return stored["weights"], int(stored["epoch"])


def save(directory: str, weights: Any, epoch: int) -> None:
    """Write the checkpoint atomically: a temporary file renamed over the old one."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    temporary = path / f".{CHECKPOINT}.tmp"
    with temporary.open("wb") as stream:
        np.savez(stream, weights=weights, epoch=epoch)
    os.replace(temporary, path / CHECKPOINT)


def main(argv: Sequence[str] | None = None) -> int:
    """Resume or start, train up to ``--epochs``, print metrics and save after each epoch."""
    args = parse_args(argv)
    own = args.checkpoint_dir or kubesweep.checkpoint_dir()
    parent = args.resume_from or kubesweep.resume_from()
    split = load_split()
    x_train = np.hstack([split.x_train, np.ones((len(split.x_train), 1))])
    x_val = np.hstack([split.x_val, np.ones((len(split.x_val), 1))])
    weights, epoch = np.zeros((x_train.shape[1], 10)), 0
    if parent:
        weights, epoch = load(parent)
        print(f"resumed from {parent} at epoch {epoch}", flush=True)
    else:
        print("started at epoch 0", flush=True)
    onehot = np.eye(10)[split.y_train]
    while epoch < args.epochs:
        epoch += 1
        order = np.random.default_rng(args.seed * 10_000 + epoch).permutation(len(x_train))
        for start in range(0, len(order), args.batch):
            rows = order[start : start + args.batch]
            gradient = x_train[rows].T @ (_softmax(x_train[rows] @ weights) - onehot[rows])
            weights -= args.lr * gradient / len(rows)
        print(metrics_line(epoch, _metrics(weights, x_val, split.y_val)), flush=True)
        if own:
            save(own, weights, epoch)
        if args.epoch_seconds:
            time.sleep(args.epoch_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
