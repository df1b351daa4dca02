"""The MLP digits trainer, reporting through a JSON-lines file (the ``json`` metrics source).

Each epoch appends one object, ``{"epoch": 3, "val_loss": 0.21, "accuracy":
0.95}``, to the file the Experiment names in ``trialTemplate.metrics.path``. The
renderer passes that path as ``KUBESWEEP_METRICS_PATH`` (inside the volume the
collector shares), so the program needs no flag for it; outside kubesweep it
writes ``metrics.jsonl`` in the working directory. Lines are flushed one by one
so the collector sees each epoch as it ends.

Run: ``python -m examples.trainers.jsonl_digits --lr=0.01 --epochs=5``
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from examples.trainers.mlp_digits import parse_args, train


def main(argv: Sequence[str] | None = None) -> int:
    """Train and append one JSON object per epoch to ``$KUBESWEEP_METRICS_PATH``."""
    args = parse_args(argv)
    path = Path(os.environ.get("KUBESWEEP_METRICS_PATH", "metrics.jsonl"))
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"writing metrics to {path}", flush=True)
    with path.open("a", encoding="utf-8") as out:

        def report(epoch: int, metrics: dict[str, float]) -> None:
            out.write(json.dumps({"epoch": epoch, **metrics}) + "\n")
            out.flush()

        train(args, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
