"""What the pods share with this machine: its network and its Python environment.

There are no images and no pod network, so every pod has the host's loopback
address and runs with the repository's virtual environment first on ``PATH``.
"""

from __future__ import annotations

from pathlib import Path

#: Every pod's (and the node's) IP: pods use the host's network.
POD_IP = "127.0.0.1"
#: The repository root: the working directory of a container without ``workingDir``.
REPO = Path(__file__).resolve().parents[3]
#: Put first on every container's ``PATH``, so ``python`` is the repository's.
VENV_BIN = REPO / ".venv" / "bin"
