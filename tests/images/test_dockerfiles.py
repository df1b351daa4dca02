"""The images are buildable where a container engine exists; here, check what can be checked.

Each Dockerfile is multi-stage from a pinned base, runs as a non-root user, carries
OCI labels, and starts a console script that this distribution really installs.
The collector runs in every trial pod, so its image installs kubesweep without
dependencies and the collector must import none of the heavy ones.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

IMAGES = Path(__file__).resolve().parents[2] / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
SERVICE_IMAGES = {
    "operator": "kubesweep-operator",
    "suggestion": "kubesweep-suggestion",
    "collector": "kubesweep-collector",
    "dashboard": "kubesweep",
}
HEAVY = ("numpy", "scipy", "sklearn", "pandas", "torch", "pydantic", "kopf", "aiohttp")


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = path.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def _final_stage(path: Path) -> list[tuple[str, str]]:
    steps = _instructions(path)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_every_image_has_a_dockerfile() -> None:
    assert {p.parent.name for p in DOCKERFILES} >= {*SERVICE_IMAGES, "trainer-sklearn"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_multi_stage_pinned_non_root_labelled(dockerfile: Path) -> None:
    steps = _instructions(dockerfile)
    assert sum(op == "FROM" for op, _ in steps) >= 2, "multi-stage build"
    bases = [arg for op, arg in steps if op == "ARG" and arg.startswith("PYTHON_IMAGE=")]
    assert bases, "the base image is a pinned ARG"
    assert re.fullmatch(r"PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+", bases[0]), bases[0]
    final = _final_stage(dockerfile)
    users = [arg for op, arg in final if op == "USER"]
    assert users, "the final stage sets a user"
    assert users[-1].split(":")[0] not in ("0", "root")
    build_tools = re.compile(r"apt-get|gcc|build-essential")
    assert not any(op == "RUN" and build_tools.search(arg) for op, arg in final)
    labels = " ".join(arg for op, arg in final if op == "LABEL")
    for key in ("title", "description", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


@pytest.mark.parametrize(("image", "script"), sorted(SERVICE_IMAGES.items()))
def test_entry_point_is_an_installed_console_script(image: str, script: str) -> None:
    final = _final_stage(IMAGES / image / "Dockerfile")
    entry = [json.loads(arg) for op, arg in final if op == "ENTRYPOINT"]
    assert entry == [[script]]
    scripts = {ep.name: ep for ep in entry_points(group="console_scripts")}
    assert script in scripts, f"{script} is not installed by the kubesweep distribution"
    module, _, function = scripts[script].value.partition(":")
    assert callable(getattr(importlib.import_module(module), function))


def test_collector_image_installs_no_dependencies() -> None:
    runs = [arg for op, arg in _instructions(IMAGES / "collector" / "Dockerfile") if op == "RUN"]
    installs = [arg for arg in runs if "pip install" in arg]
    assert installs
    assert all("--no-deps" in arg for arg in installs)


def test_collector_imports_nothing_heavy() -> None:
    probe = (
        "import sys, kubesweep.collector.main, kubesweep.collector.client\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"
