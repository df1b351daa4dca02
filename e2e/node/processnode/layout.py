"""Where a pod's files lie under the node's state directory, and reading its logs.

One directory per pod, ``<state>/pods/<ns>_<name>_<uid>/``, holds its volumes,
one folder per container (``<container>/<restart>.log`` and the
``termination-log``) and a pidfile per running container. The layout is also
read without a node: the e2e fixtures read logs from it, and ``cluster down``
kills what the pidfiles name.
"""

from __future__ import annotations

import os
from pathlib import Path

from cluster.kube import JSON


def pod_directory(state_dir: Path, pod: JSON) -> Path:
    """The directory of one pod (by uid, so a new pod of the same name gets its own)."""
    m = pod["metadata"]
    return state_dir / "pods" / f"{m['namespace']}_{m['name']}_{m['uid']}"


def pid_file(pod_dir: Path, container: str) -> Path:
    """``"<pid> <start time>"`` of a container's process while it runs."""
    return pod_dir / f"{container}.pid"


def log_file(pod_dir: Path, container: str, restart: int) -> Path:
    """The output of one run of a container (restart 0 is the first run)."""
    return pod_dir / container / f"{restart}.log"


def container_log_path(
    state_dir: str | os.PathLike[str],
    namespace: str,
    pod: str,
    container: str,
    previous: bool = False,
) -> Path:
    """Log file of a container's newest run (or the run before it); newest pod of that name."""
    pods = sorted(
        Path(state_dir).glob(f"pods/{namespace}_{pod}_*/{container}"),
        key=lambda p: p.stat().st_mtime,
    )
    if not pods:
        raise FileNotFoundError(f"no logs for {namespace}/{pod}/{container}")
    runs = sorted(pods[-1].glob("*.log"), key=lambda p: int(p.stem))
    if previous:
        runs = runs[:-1]
    if not runs:
        raise FileNotFoundError(f"no {'previous ' if previous else ''}run of {container}")
    return runs[-1]


def read_container_log(
    state_dir: str | os.PathLike[str],
    namespace: str,
    pod: str,
    container: str,
    previous: bool = False,
) -> str:
    """Text of a container's log kept by a node with this ``state_dir``."""
    path = container_log_path(state_dir, namespace, pod, container, previous)
    return path.read_text(errors="replace")
