"""Where a local run's trials run: a directory from which their program is found.

A container image starts its command in a directory that holds the program
(the examples' images copy ``examples/`` to ``/app`` and start there); a local
run starts it wherever the user stands, so ``python -m examples.trainers.x``
fails in every trial with ``No module named 'examples'`` when the run is
started anywhere but the repository root. Before the run, the primary
container's command is read: when it runs a Python module or a relative script
that the current directory does not hold, the manifest's directory and its
parents are searched for one that does, and the trials run there. When none
holds it, the run says so before it starts, and ``--workdir`` chooses.

Only Python programs are looked for; any other command runs in the current
directory as before.
"""

from __future__ import annotations

import importlib.machinery
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kubesweep.api import Experiment
from kubesweep.rendering.placeholders import primary_container_path

_PYTHON = re.compile(r"python[\d.]*$")
#: Python options that take a value, so the word after them is not the program.
_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "--check-hash-based-pycs"})

ProgramKind = Literal["module", "script"]


@dataclass(frozen=True)
class WorkdirChoice:
    """The directory the trials run in, and what the user is told about it (if anything)."""

    directory: Path
    note: str | None = None


def program_of(argv: Sequence[str]) -> tuple[ProgramKind, str] | None:
    """What a ``python`` command runs that depends on its directory: ``-m`` module or script.

    ``None`` for other commands, ``-c`` code and absolute script paths.
    """
    if not argv or not _PYTHON.match(Path(argv[0]).name):
        return None
    words = iter(argv[1:])
    for word in words:
        if word == "-m":
            module = next(words, None)
            return None if module is None else ("module", module)
        if word in {"-c", "-"}:
            return None
        if word in _OPTIONS_WITH_VALUE:
            next(words, None)
            continue
        if word.startswith("-"):
            continue
        return None if Path(word).is_absolute() else ("script", word)
    return None


def found_in(kind: ProgramKind, program: str, directory: Path) -> bool:
    """Whether ``directory`` holds the module (as a file or a package) or the script."""
    if kind == "script":
        return (directory / program).is_file()
    path = directory.joinpath(*program.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def installed(module: str, cwd: Path, search_path: Sequence[str] | None = None) -> bool:
    """Whether the module's top package is importable without the current directory.

    ``search_path`` is where the trial's Python looks (default: this one's ``sys.path``,
    as the trials run with this Python and its environment).
    """
    top = module.split(".", 1)[0]
    here = cwd.resolve()
    path = [p for p in (sys.path if search_path is None else search_path) if p]
    path = [p for p in path if Path(p).resolve() != here]
    return importlib.machinery.PathFinder.find_spec(top, path) is not None or (
        top in sys.builtin_module_names
    )


def command_of(experiment: Experiment) -> list[str]:
    """The primary container's command and args, as written in the template."""
    located = primary_container_path(experiment.spec)
    if located is None:
        return []
    _, container = located
    return [
        str(word) for word in [*(container.get("command") or []), *(container.get("args") or [])]
    ]


def choose_workdir(
    experiment: Experiment,
    manifest: Path,
    cwd: Path,
    search_path: Sequence[str] | None = None,
) -> WorkdirChoice:
    """``cwd``, unless the program is missing there and the manifest's directory tree has it."""
    program = program_of(command_of(experiment))
    if program is None:
        return WorkdirChoice(cwd)
    kind, name = program
    if found_in(kind, name, cwd) or (kind == "module" and installed(name, cwd, search_path)):
        return WorkdirChoice(cwd)
    what = f"python -m {name}" if kind == "module" else f"python {name}"
    start = manifest.resolve().parent
    for directory in (start, *start.parents):
        if found_in(kind, name, directory):
            return WorkdirChoice(
                directory,
                f"{what} is not found from {cwd}: trials run in {directory}, which holds it "
                "(--workdir chooses another directory)",
            )
    return WorkdirChoice(
        cwd,
        f"{what} is found neither from {cwd} nor beside the manifest; trials will fail "
        "unless it is importable: run from the directory that holds it, or pass --workdir DIR",
    )
