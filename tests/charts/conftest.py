"""Render the chart with the helm binary the project builds (or one on PATH).

helm is found as ``$KUBESWEEP_HELM``, else ``helm`` on PATH, else the build of
``e2e/cluster/build.sh`` in ``$KUBESWEEP_CACHE`` (default ``~/.cache/kubesweep``).
Without any, the rendering tests skip and say how to get one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "kubesweep"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
# helm built from source renders for Kubernetes v1.20 unless told the version.
KUBE_VERSION = "v1.37.2"

Render = Callable[..., list[dict[str, Any]]]


def helm_binary() -> str | None:
    """The helm to render with, or None."""
    configured = os.environ.get("KUBESWEEP_HELM")
    if configured:
        return configured
    on_path = shutil.which("helm")
    if on_path:
        return on_path
    cache = Path(os.environ.get("KUBESWEEP_CACHE", Path.home() / ".cache" / "kubesweep"))
    built = cache / "bin" / "current" / "helm"
    return str(built) if built.is_file() else None


@pytest.fixture(scope="session")
def helm() -> str:
    found = helm_binary()
    if found is None:
        pytest.skip("no helm: set KUBESWEEP_HELM, put helm on PATH, or run `make cluster-build`")
    return found


def template(helm: str, *args: str, release: str = "ks", namespace: str = "kubesweep") -> str:
    """``helm template`` output (raises with helm's message when it fails)."""
    result = subprocess.run(
        [
            helm,
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"helm template {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


@pytest.fixture(scope="session")
def render(helm: str) -> Render:
    """``render(*helm_args)``: the rendered objects, empty documents dropped."""

    def run(*args: str, **kwargs: str) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(template(helm, *args, **kwargs)) if d]

    return run
