"""``kubesweep.report``: the one function a trial program needs, standard library only.

Beside it, for trainers of an Experiment with ``trialTemplate.checkpoints``:
:func:`checkpoint_dir` (where this trial writes its checkpoint) and
:func:`resume_from` (where its parent's is, when it continues a parent's training).

It POSTs the metrics to the collector's localhost push endpoint
(``KUBESWEEP_PUSH_URL``, else ``KUBESWEEP_REPORT_URL`` as the renderer sets it,
else ``http://127.0.0.1:9477/v1/report``). When no
collector answers (a local run, a misconfigured pod, a collector restarting) it
prints the same values as a ``step=3 loss=0.2`` line instead, which the stdout
source reads and a human can see, so a value is never silently lost. After a
failure it prints without trying the endpoint for a few seconds, so a trainer
without a collector does not pay a connection attempt per call.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

from kubesweep.podcontract import (
    DEFAULT_PUSH_PORT,
    ENV_CHECKPOINT_DIR,
    ENV_PUSH_URL,
    ENV_REPORT_URL,
    ENV_RESUME_FROM,
    PUSH_PATH,
)

_REPORT_PATH = PUSH_PATH
DEFAULT_PUSH_URL = f"http://127.0.0.1:{DEFAULT_PUSH_PORT}{_REPORT_PATH}"
_RETRY_AFTER = 10.0
_state = {"unreachable_until": 0.0}


def _push_url() -> str:
    """``KUBESWEEP_PUSH_URL`` or ``KUBESWEEP_REPORT_URL`` (a base URL gets the report path)."""
    url = os.environ.get(ENV_PUSH_URL) or os.environ.get(ENV_REPORT_URL)
    if not url:
        return DEFAULT_PUSH_URL
    scheme, _, rest = url.partition("://")
    if "/" not in rest.rstrip("/"):
        return f"{scheme}://{rest.rstrip('/')}{_REPORT_PATH}"
    return url


def _line(step: int | None, metrics: dict[str, float]) -> str:
    pairs = [] if step is None else [f"step={step}"]
    pairs.extend(f"{name}={float(value)!r}" for name, value in metrics.items())
    return " ".join(pairs)


def report(step: int | None = None, **metrics: float) -> bool:
    """Report ``metrics`` (at ``step``, if given) to the collector.

    Returns ``True`` when the collector took them and ``False`` when they were
    printed to stdout instead. NaN and infinite values are sent as they are and
    counted as dropped by the collector.
    """
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise ValueError(f"step must be a non-negative int, not {step!r}")
    values = {name: float(value) for name, value in metrics.items()}
    if time.monotonic() >= _state["unreachable_until"]:
        payload: dict[str, object] = dict(values)
        if step is not None:
            payload["step"] = step
        body = json.dumps(payload).encode()
        request = urllib.request.Request(
            _push_url(), data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2.0) as response:
                if 200 <= response.status < 300:
                    return True
        except (OSError, urllib.error.URLError, ValueError):
            pass
        _state["unreachable_until"] = time.monotonic() + _RETRY_AFTER
    print(_line(step, values), flush=True, file=sys.stdout)
    return False


def checkpoint_dir(create: bool = True) -> str | None:
    """This trial's own checkpoint directory, or None without ``trialTemplate.checkpoints``.

    A local directory (a mounted claim, or ``kubesweep run``'s checkpoint directory) is
    created when ``create`` is true; an object-store URI is returned as it is, for the
    trainer's own storage library.
    """
    location = os.environ.get(ENV_CHECKPOINT_DIR) or None
    if location is not None and create and "://" not in location:
        os.makedirs(location, exist_ok=True)
    return location


def resume_from() -> str | None:
    """The parent trial's checkpoint directory when this trial continues its training
    (a promoted trial, a pbt step), else None: then training starts from scratch."""
    return os.environ.get(ENV_RESUME_FROM) or None
