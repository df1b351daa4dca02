"""The /bin/sh wrapper: output copied, exit code kept, signals forwarded, state recorded."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kubesweep.podcontract import exit_code, state_path, wrap_command

from .conftest import wait_for

SHELLS = [s for s in ("/bin/sh", shutil.which("dash"), shutil.which("busybox")) if s]


def _run(command: list[str], log: Path, shell: str = "/bin/sh") -> subprocess.CompletedProcess[str]:
    wrapped, args = wrap_command(command, [], str(log))
    wrapped = [shell, "sh", *wrapped[1:]] if shell.endswith("busybox") else [shell, *wrapped[1:]]
    return subprocess.run([*wrapped, *args], capture_output=True, text=True, check=False)


def test_shape_of_the_wrapped_command() -> None:
    command, args = wrap_command(["python", "train.py"], ["--lr=0.1"], "/kubesweep/stdout.log")
    assert command[:2] == ["/bin/sh", "-c"]
    assert args == ["/kubesweep/stdout.log", "python", "train.py", "--lr=0.1"]
    # Kubernetes expands $(VAR) and reduces $$ in command and args; the script has neither.
    assert "$(" not in command[2]
    assert "$$" not in command[2]


@pytest.mark.parametrize(
    ("command", "log"), [([], "/kubesweep/x.log"), (["python"], "relative.log")]
)
def test_refuses_what_it_cannot_wrap(command: list[str], log: str) -> None:
    with pytest.raises(ValueError, match=r"command|absolute"):
        wrap_command(command, [], log)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("code", [0, 3])
def test_output_is_copied_and_exit_code_kept(tmp_path: Path, shell: str, code: int) -> None:
    log = tmp_path / "stdout.log"
    trainer = (
        "import sys\nprint('loss=1')\nprint('to stderr', file=sys.stderr)\n"
        "print(' keep  spaces \\\\n and backslashes')\nsys.stdout.write('last=2')\n"
        f"sys.exit({code})"
    )
    result = _run([sys.executable, "-c", trainer], log, shell)
    expected = "loss=1\nto stderr\n keep  spaces \\n and backslashes\nlast=2\n"
    assert result.returncode == code
    assert result.stdout == expected
    assert log.read_text() == expected
    assert exit_code(Path(state_path(str(log))).read_text()) == code


def test_signals_reach_the_trainer(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    trainer = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('stopping', flush=True), sys.exit(5)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    wrapped, args = wrap_command([sys.executable, "-c", trainer], [], str(log))
    process = subprocess.Popen([*wrapped, *args], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    wait_for(lambda: Path(f"{log}.pid").exists(), what="the trainer's pid")
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 5
    assert "stopping" in log.read_text()
    assert exit_code(Path(state_path(str(log))).read_text()) == 5


def test_without_a_writable_volume_the_trainer_runs_directly(tmp_path: Path) -> None:
    log = tmp_path / "missing" / "stdout.log"
    result = _run([sys.executable, "-c", "print('hi'); raise SystemExit(4)"], log)
    assert (result.returncode, result.stdout) == (4, "hi\n")


@pytest.mark.parametrize(
    ("state", "code"), [("running\n", None), ("exited 0\n", 0), ("exited 137", 137), ("", None)]
)
def test_state_file(state: str, code: int | None) -> None:
    assert exit_code(state) == code
