"""Where a local run's trials run: the examples work from any directory, or the run says why not."""

from __future__ import annotations

import sys
from pathlib import Path

from kubesweep.cli.local.workdir import choose_workdir, program_of
from tests.cli.conftest import EXAMPLES, ROOT, example
from tests.cli.local_helpers import finish, kubesweep, tiny_manifest, write_manifest


def test_the_program_of_a_command() -> None:
    assert program_of(["python", "-m", "examples.trainers.x", "--lr=1"]) == (
        "module",
        "examples.trainers.x",
    )
    assert program_of(["/usr/bin/python3.12", "-u", "-m", "pkg"]) == ("module", "pkg")
    assert program_of(["python3", "train.py", "--lr=1"]) == ("script", "train.py")
    assert program_of(["python", "/abs/train.py"]) is None
    assert program_of(["python", "-c", "print(1)"]) is None
    assert program_of(["bash", "-c", "train"]) is None
    assert program_of([]) is None


#: The trial's Python path without the repository root (pytest puts it there for ``tests``).
WITHOUT_ROOT = [p for p in sys.path if p and Path(p).resolve() != ROOT]


def test_the_examples_run_where_their_modules_are(tmp_path: Path) -> None:
    random = example("random")
    choice = choose_workdir(random, EXAMPLES / "random.yaml", tmp_path, WITHOUT_ROOT)
    assert choice.directory == ROOT
    assert choice.note is not None
    assert "examples.trainers.sklearn_digits" in choice.note
    assert str(ROOT) in choice.note
    same = choose_workdir(random, EXAMPLES / "random.yaml", ROOT, WITHOUT_ROOT)
    assert same.directory == ROOT
    assert same.note is None


def test_a_program_found_nowhere_is_named_before_the_run(tmp_path: Path) -> None:
    data = tiny_manifest("lost")
    container = data["spec"]["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
    container["command"] = ["python", "-m", "nowhere_to_be_found.train"]
    container["args"] = []
    path = write_manifest(tmp_path / "lost.yaml", data)
    from kubesweep.api import load_experiments

    choice = choose_workdir(load_experiments(path.read_text())[0], path, tmp_path, WITHOUT_ROOT)
    assert choice.directory == tmp_path
    assert choice.note is not None
    assert "nowhere_to_be_found" in choice.note
    assert "--workdir" in choice.note


def test_a_sweep_runs_from_another_directory(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "trainers").mkdir(parents=True)
    (project / "trainers" / "__init__.py").write_text("")
    (project / "trainers" / "tiny.py").write_text(
        "import sys\nprint(f'loss={float(sys.argv[1]) ** 2}')\n"
    )
    data = tiny_manifest("elsewhere", max_trials=2)
    container = data["spec"]["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
    container["command"] = ["python", "-m", "trainers.tiny"]
    container["args"] = ["${params.x}"]
    manifest = write_manifest(project / "sweep.yaml", data)
    away = tmp_path / "away"
    away.mkdir()
    code, out = finish(kubesweep("run", manifest, cwd=away))
    assert code == 0, out
    assert f"trials run in {project}" in out
    assert (away / ".kubesweep" / "elsewhere.db").exists()
