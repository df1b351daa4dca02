"""A small CNN in PyTorch on scikit-learn's digits, on a GPU, with metrics per epoch on stdout.

The GPU example: its Experiment asks for ``nvidia.com/gpu: 1`` and the program
refuses to run on a CPU (exit code 3, with a message that says why) unless
``--allow-cpu`` is given, so a trial that was scheduled without a GPU fails
loudly instead of silently taking hours. The data are scikit-learn's 8x8
digits turned into tensors, so nothing is downloaded; an epoch takes
milliseconds on a GPU, and ``--repeat`` multiplies the training set (with
small random shifts) when a longer run is wanted.

Run: ``python -m examples.trainers.torch_digits_gpu --lr=0.003 --channels=32 --epochs=10``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from examples.trainers._digits import load_split

#: Exit code when no GPU is visible and ``--allow-cpu`` was not given.
EXIT_NO_GPU = 3


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The hyperparameters, as the Experiment's args pass them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--channels", type=int, default=32, help="filters of the first conv")
    parser.add_argument("--dropout", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="copies of the training set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        default=os.environ.get("KUBESWEEP_ALLOW_CPU") == "1",
        help="run on the CPU when no GPU is visible (also KUBESWEEP_ALLOW_CPU=1, which "
        "`kubesweep run --allow-cpu` sets)",
    )
    return parser.parse_args(argv)


def build_model(channels: int, dropout: float) -> Any:
    """Two 3x3 convolutions, a 2x2 max-pool and a linear layer: 8x8 in, 10 logits out."""
    from torch import nn  # type: ignore[import-not-found, unused-ignore]  # torch is optional

    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(2 * channels * 4 * 4, 10),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Train on the GPU and print ``epoch=N val_loss=... accuracy=...`` after each epoch."""
    args = parse_args(argv)
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]  # torch is optional
        from torch.nn import functional  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        print("error: PyTorch is not installed (pip install torch)", file=sys.stderr)
        return 2
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif args.allow_cpu:
        device = torch.device("cpu")
    else:
        print(
            "error: no CUDA device is visible (torch.cuda.is_available() is False). This "
            "trial asks for nvidia.com/gpu; check the node's GPUs and CUDA_VISIBLE_DEVICES, "
            "or pass --allow-cpu to train on the CPU.",
            file=sys.stderr,
        )
        return EXIT_NO_GPU
    torch.manual_seed(args.seed)
    split = load_split()

    def tensors(x: Any, y: Any) -> tuple[Any, Any]:
        images = torch.tensor(x, dtype=torch.float32).reshape(-1, 1, 8, 8)
        return images.to(device), torch.tensor(y, dtype=torch.long).to(device)

    x_train, y_train = tensors(split.x_train, split.y_train)
    x_val, y_val = tensors(split.x_val, split.y_val)
    if args.repeat > 1:
        x_train = torch.cat([x_train, *(_shifted(x_train, torch) for _ in range(args.repeat - 1))])
        y_train = y_train.repeat(args.repeat)

    model = build_model(args.channels, args.dropout).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"training a CNN on {name}, {len(x_train)} images per epoch", flush=True)
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), device=device)
        for start in range(0, len(order), args.batch_size):
            batch = order[start : start + args.batch_size]
            optimizer.zero_grad()
            loss = functional.cross_entropy(model(x_train[batch]), y_train[batch])
            loss.backward()  # type: ignore[no-untyped-call, unused-ignore]  # untyped in torch
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = functional.cross_entropy(logits, y_val).item()
            accuracy = (logits.argmax(dim=1) == y_val).float().mean().item()
        seconds = time.perf_counter() - started
        print(
            f"epoch={epoch} val_loss={val_loss:.6f} accuracy={accuracy:.6f} "
            f"epoch_seconds={seconds:.4f}",
            flush=True,
        )
    return 0


def _shifted(images: Any, torch: Any) -> Any:
    """The images rolled by up to one pixel in each direction: cheap augmentation."""
    dx, dy = (int(v) for v in torch.randint(-1, 2, (2,)))
    return torch.roll(images, shifts=(dy, dx), dims=(2, 3))


if __name__ == "__main__":
    sys.exit(main())
