"""A small neural network (MLPClassifier) on scikit-learn's digits, metrics per epoch on stdout.

The trial program of the TPE and multi-fidelity examples: ``--epochs`` is the
budget Hyperband, ASHA and BOHB hand out through the fidelity parameter, and
``--solver``/``--momentum`` show a conditional parameter (momentum only matters
for sgd). The JSON-lines and push examples reuse :func:`build_model` and
:func:`train` with another way of reporting.

Run: ``python -m examples.trainers.mlp_digits --lr=0.01 --hidden=64 --epochs=9``
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable, Sequence

from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from examples.trainers._digits import CLASSES, evaluate, load_split, metrics_line

#: Receives the epoch number and the validation metrics after each epoch.
Reporter = Callable[[int, dict[str, float]], None]


def optional_float(default: float) -> Callable[[str], float]:
    """A float argument that also accepts the empty string, which an inactive
    conditional parameter renders as (``--momentum=``), meaning ``default``."""

    def parse(text: str) -> float:
        return float(text) if text.strip() else default

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The hyperparameters, as the Experiment's args pass them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=1e-3, help="initial learning rate")
    parser.add_argument("--alpha", type=float, default=1e-4, help="L2 penalty")
    parser.add_argument("--hidden", type=int, default=64, help="units per hidden layer")
    parser.add_argument("--layers", type=int, default=1, help="hidden layers")
    parser.add_argument("--solver", default="adam", choices=["adam", "sgd"])
    parser.add_argument(
        "--momentum",
        type=optional_float(0.9),
        default=0.9,
        help="sgd only; empty (the parameter is inactive) means the default",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch-seconds", type=float, default=0.0, help="sleep after each epoch")
    return parser.parse_args(argv)


def build_model(args: argparse.Namespace) -> MLPClassifier:
    """The network the arguments describe."""
    return MLPClassifier(
        hidden_layer_sizes=(args.hidden,) * args.layers,
        solver=args.solver,
        momentum=args.momentum,
        learning_rate_init=args.lr,
        alpha=args.alpha,
        batch_size=args.batch_size,
        random_state=args.seed,
    )


def train(args: argparse.Namespace, report: Reporter) -> dict[str, float]:
    """One ``partial_fit`` pass over the training set per epoch; returns the last metrics."""
    split = load_split()
    model = build_model(args)
    metrics: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(1, args.epochs + 1):
            model.partial_fit(split.x_train, split.y_train, classes=CLASSES)
            metrics = evaluate(model, split)
            report(epoch, metrics)
            if args.epoch_seconds:
                time.sleep(args.epoch_seconds)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Train and print ``epoch=N val_loss=... accuracy=...`` after each epoch."""
    args = parse_args(argv)
    print(f"training MLPClassifier {vars(args)}", flush=True)
    train(args, lambda epoch, metrics: print(metrics_line(epoch, metrics), flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
