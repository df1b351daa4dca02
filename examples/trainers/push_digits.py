"""The MLP digits trainer, reporting with ``kubesweep.report`` (the ``push`` metrics source).

``kubesweep.report(step=..., **metrics)`` POSTs the values to the collector
sidecar on localhost (the renderer tells it where through
``KUBESWEEP_REPORT_URL``). The client uses only the standard library, so the
trial image needs the ``kubesweep`` package and nothing else; any language can
do the same with one HTTP POST.

Run: ``python -m examples.trainers.push_digits --lr=0.01 --epochs=5``
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import kubesweep
from examples.trainers.mlp_digits import parse_args, train


def main(argv: Sequence[str] | None = None) -> int:
    """Train and report each epoch's metrics to the collector."""
    args = parse_args(argv)

    def report(epoch: int, metrics: dict[str, float]) -> None:
        kubesweep.report(step=epoch, **metrics)
        print(f"reported epoch {epoch}", flush=True)

    train(args, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
