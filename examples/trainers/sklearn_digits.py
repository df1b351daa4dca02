"""A linear classifier (SGDClassifier) on scikit-learn's digits, one line of metrics per epoch.

The trial program of most CPU examples. It trains with ``partial_fit`` so that
metrics appear per epoch (what early stopping and multi-fidelity algorithms
judge), and prints them as ``epoch=N val_loss=... accuracy=...`` for the stdout
source. A run takes well under a second; ``--epoch-seconds`` slows it down so
that a local cluster can show early stopping at work. ``--report-weights`` adds
``weights=``, the coefficients that are not zero: the model's size, which a
sparsity penalty (l1, elasticnet) trades against its loss, the two objectives of
the multi-objective example.

Run: ``python -m examples.trainers.sklearn_digits --alpha=1e-4 --eta0=0.01 --epochs=5``
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence

from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier

from examples.trainers._digits import CLASSES, evaluate, load_split, metrics_line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The hyperparameters, as the Experiment's args pass them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=1e-4, help="regularisation strength")
    parser.add_argument("--eta0", type=float, default=0.01, help="initial learning rate")
    parser.add_argument(
        "--learning-rate",
        default="invscaling",
        choices=["constant", "optimal", "invscaling", "adaptive"],
    )
    parser.add_argument("--penalty", default="l2", choices=["l2", "l1", "elasticnet"])
    parser.add_argument("--l1-ratio", type=float, default=0.15)
    parser.add_argument("--loss", default="log_loss", choices=["log_loss", "modified_huber"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch-seconds", type=float, default=0.0, help="sleep after each epoch")
    parser.add_argument(
        "--report-weights", action="store_true", help="also print the non-zero coefficients"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Train for ``--epochs`` epochs and print the validation metrics after each."""
    args = parse_args(argv)
    split = load_split()
    model = SGDClassifier(
        loss=args.loss,
        penalty=args.penalty,
        alpha=args.alpha,
        l1_ratio=args.l1_ratio,
        learning_rate=args.learning_rate,
        eta0=args.eta0,
        random_state=args.seed,
    )
    print(f"training SGDClassifier {vars(args)}", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for epoch in range(1, args.epochs + 1):
            model.partial_fit(split.x_train, split.y_train, classes=CLASSES)
            metrics = evaluate(model, split)
            if args.report_weights:
                metrics["weights"] = float((model.coef_ != 0).sum())
            print(metrics_line(epoch, metrics), flush=True)
            if args.epoch_seconds:
                time.sleep(args.epoch_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
