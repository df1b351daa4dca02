"""Run code that could exhaust memory in a child process with a hard memory cap.

The machine the tests run on is shared: a regression that lets one request
allocate without bound must fail the test, not wake the kernel's OOM killer
(which may pick an unrelated process). The child gets ``RLIMIT_AS`` before it
runs anything, so an allocation past the cap raises ``MemoryError`` there, and
a wall-clock timeout ends it if it computes instead of allocating.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

#: Address space for a child that imports numpy, scipy and scikit-learn and
#: computes a little: generous for that, far below what a runaway would take.
DEFAULT_CAP_BYTES = 3 << 30

_ROOT = Path(__file__).resolve().parents[2]


def run_capped(
    code: str, *, stdin: str = "", cap_bytes: int = DEFAULT_CAP_BYTES, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``python -c`` under the cap, ``stdin`` as its input; its output
    and exit status."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))

    env = {
        **os.environ,
        # One BLAS thread: each thread's buffers count against the cap.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    try:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=_ROOT,
            env=env,
            preexec_fn=limit,  # the cap applies before the child runs anything
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            f"the capped child did not finish within {timeout:g}s: it computed without bound"
        ) from error
