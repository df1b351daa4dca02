"""kubesweep installed as users install it: a wheel built from an sdist, in fresh venvs.

``python -m build`` makes the sdist, then the wheel from the sdist, with the
newest build backend the project allows, as a release would. Each extra the
docs name is installed into a virtual environment of its own, outside the
source tree, and every console script runs there, so an extra that misses a
module one of its commands imports, or a file the sdist forgets, fails here
rather than on a user's machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Protocol

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Installing and running one environment's commands; pip may download on a cold cache.
INSTALL_TIMEOUT = 900
RUN_TIMEOUT = 180

pytestmark = pytest.mark.slow

#: A sweep small enough for a few seconds on two cores; its trainer is an inline program.
MANIFEST = """\
apiVersion: kubesweep.io/v1alpha1
kind: Experiment
metadata: {name: installed}
spec:
  objective: {metric: loss, direction: minimize}
  algorithm: {name: random, seed: 1}
  parameters:
    - {name: x, type: float, min: 0.0, max: 1.0}
  budget: {maxTrials: 2, parallelTrials: 1}
  trialTemplate:
    primaryContainer: trainer
    metrics: {source: stdout}
    job:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: trainer
              image: unused-locally
              command: [python, -c, "import sys; print(f'loss={float(sys.argv[1]) ** 2}')"]
              args: ["${params.x}"]
"""


def run(
    command: list[str], cwd: Path, timeout: float = RUN_TIMEOUT, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run with an environment that cannot see the source tree."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    clean.update(env)
    return subprocess.run(
        command, cwd=cwd, env=clean, capture_output=True, text=True, timeout=timeout, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel built from it."""
    out = tmp_path_factory.mktemp("dist")
    ok(run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], out, INSTALL_TIMEOUT))
    return out


class Install(Protocol):
    """The ``install`` fixture: the bin/ of a venv holding the wheel with ``extra``."""

    def __call__(self, extra: str, deps: bool = True) -> Path: ...


@pytest.fixture(scope="session")
def install(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Install:
    """``install(extra, deps)``: a fresh venv holding the wheel with ``extra``; its bin/."""
    made: dict[tuple[str, bool], Path] = {}

    def make(extra: str, deps: bool = True) -> Path:
        if (extra, deps) not in made:
            home = tmp_path_factory.mktemp(f"venv-{extra or 'bare'}")
            venv.EnvBuilder(with_pip=True).create(home)
            wheel = next(dist.glob("kubesweep-*.whl"))
            target = f"{wheel}[{extra}]" if extra else str(wheel)
            pip = [str(home / "bin" / "python"), "-m", "pip", "install", "-q"]
            ok(run([*pip, *([] if deps else ["--no-deps"]), target], home, INSTALL_TIMEOUT))
            made[(extra, deps)] = home / "bin"
        return made[(extra, deps)]

    return make


def test_the_sdist_carries_what_the_wheel_is_built_from(dist: Path) -> None:
    import tarfile
    import zipfile

    sdist = next(dist.glob("kubesweep-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        names = {Path(*Path(n).parts[1:]).as_posix() for n in archive.getnames()}
    assert {"pyproject.toml", "README.md", "operator/kubesweep/__init__.py"} <= names
    assert "suggestion/kubesweep/suggestion/service.py" in names
    wheel = next(dist.glob("kubesweep-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
    assert files.count("kubesweep/py.typed") == 1
    assert "kubesweep/suggestion/service.py" in files
    assert "kubesweep/collector/main.py" in files


def test_the_cli_extra_runs_validate_run_and_report(install: Install, tmp_path: Path) -> None:
    bin_ = install("cli")
    manifest = tmp_path / "sweep.yaml"
    manifest.write_text(MANIFEST)
    assert "installed" in ok(run([str(bin_ / "kubesweep"), "validate", str(manifest)], tmp_path))
    state = tmp_path / "state.db"
    ok(
        run(
            [str(bin_ / "kubesweep"), "run", str(manifest), "--state", str(state), "--no-live"],
            tmp_path,
        )
    )
    report = tmp_path / "report.html"
    ok(
        run(
            [
                str(bin_ / "kubesweep"),
                "report",
                "installed",
                "--state",
                str(state),
                "-o",
                str(report),
            ],
            tmp_path,
        )
    )
    assert "<html" in report.read_text()[:500].lower()


@pytest.mark.parametrize(
    ("extra", "script"),
    [("operator", "kubesweep-operator"), ("suggestion", "kubesweep-suggestion")],
)
def test_each_service_extra_starts_its_command(
    install: Install, tmp_path: Path, extra: str, script: str
) -> None:
    bin_ = install(extra)
    assert "usage" in ok(run([str(bin_ / script), "--help"], tmp_path)).lower()


def test_the_collector_needs_no_dependency_at_all(install: Install, tmp_path: Path) -> None:
    """The collector image installs the wheel with ``--no-deps``: the standard library only."""
    bin_ = install("", deps=False)
    log = tmp_path / "stdout.log"
    log.write_text("step=1 loss=0.5\nstep=2 loss=0.25\n")
    (tmp_path / "stdout.log.state").write_text("exited 0\n")
    message = tmp_path / "termination-log"
    result = run(
        [str(bin_ / "kubesweep-collector")],
        tmp_path,
        KUBESWEEP_COLLECTOR_CONFIG=json.dumps({"source": "stdout", "metrics": ["loss"]}),
        KUBESWEEP_STDOUT_LOG=str(log),
        KUBESWEEP_TERMINATION_LOG=str(message),
        KUBESWEEP_PUSH_PORT="0",
        KUBESWEEP_EXIT_ON_DONE="true",
    )
    ok(result)
    summary = json.loads(message.read_text())
    assert summary["observed"] == 2
    assert summary["metrics"][0] == {
        "name": "loss",
        "latest": 0.25,
        "min": 0.25,
        "max": 0.5,
        "step": 2,
        "count": 2,
    }
