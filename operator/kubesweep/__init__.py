"""kubesweep: hyperparameter sweeps as a Kubernetes operator.

The distribution is spread over two source folders (``operator/`` and
``suggestion/``); ``extend_path`` joins them into one ``kubesweep`` package when
both are on ``sys.path`` (an editable install), and a wheel merges them anyway.

Only light names live here: ``kubesweep.report`` (and ``checkpoint_dir``,
``resume_from``) for trial programs must import
nothing beyond the standard library, and the cluster client is loaded lazily.
"""

from __future__ import annotations

from pkgutil import extend_path
from typing import Any

# In place, so that the module's spec lists both folders too (import-linter reads it).
__path__[:] = extend_path(__path__, __name__)

__all__ = ["Client", "checkpoint_dir", "report", "resume_from"]


def __getattr__(name: str) -> Any:
    if name in ("report", "checkpoint_dir", "resume_from"):
        from kubesweep.collector import client

        return getattr(client, name)
    if name == "Client":
        from kubesweep.cli.client import Client

        return Client
    raise AttributeError(f"module 'kubesweep' has no attribute {name!r}")
