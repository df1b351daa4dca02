"""Interrupting ``kubesweep run`` (Ctrl-C, then SIGKILL) and resuming loses and repeats nothing."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

from kubesweep.api import TrialPhase
from kubesweep.cli.local.store import Store
from tests.cli.local_helpers import finish, kubesweep, tiny_manifest, write_manifest


def trials_of(state: Path) -> list[tuple[int, TrialPhase, int]]:
    if not state.exists():
        return []
    store = Store(state)
    try:
        return [(t.index, t.status.phase, t.attempts) for t in store.trials()]
    finally:
        store.close()


def wait_until(state: Path, finished: int, running: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trials = trials_of(state)
        done = sum(phase.is_finished for _, phase, _ in trials)
        active = sum(phase is TrialPhase.RUNNING for _, phase, _ in trials)
        if done >= finished and active >= running:
            return
        time.sleep(0.2)
    raise TimeoutError(f"never {finished} finished and {running} running: {trials_of(state)}")


def marked_processes(marker: str) -> list[int]:
    """Pids of trial processes whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def test_interrupted_runs_resume_without_losing_or_repeating_a_trial(tmp_path: Path) -> None:
    marker = f"resume-{uuid.uuid4().hex[:8]}"
    manifest = tiny_manifest("resume", max_trials=6, parallel=2, steps=8, pause=0.5, marker=marker)
    path = write_manifest(tmp_path / "resume.yaml", manifest)
    state = tmp_path / "resume.db"

    # 1. Ctrl-C while two trials run: the runner stops them and exits 130.
    first = kubesweep("run", path, "--state", state)
    wait_until(state, finished=0, running=2)
    first.send_signal(signal.SIGINT)
    code, out = finish(first, timeout=60)
    assert code == 130, out
    assert "--resume" in out
    interrupted = {i for i, phase, _ in trials_of(state) if not phase.is_finished}
    assert interrupted
    assert not marked_processes(marker)

    # 2. Resume, then SIGKILL the runner while trials run: nothing can clean up.
    second = kubesweep("run", path, "--state", state, "--resume")
    wait_until(state, finished=2, running=2)
    second.kill()
    second.wait(30)
    killed = {i for i, phase, _ in trials_of(state) if phase is TrialPhase.RUNNING}
    assert killed

    # 3. Resume to the end.
    code, out = finish(kubesweep("run", path, "--state", state, "--resume"), timeout=180)
    assert code == 0, out
    trials = trials_of(state)
    assert [i for i, _, _ in trials] == [0, 1, 2, 3, 4, 5]
    assert all(phase is TrialPhase.SUCCEEDED for _, phase, _ in trials)
    attempts = {i: n for i, _, n in trials}
    for index in interrupted | killed:
        assert attempts[index] >= 2, attempts
    assert all(n >= 1 for n in attempts.values())
    assert not marked_processes(marker), "a trial process outlived its runner"


def test_after_ctrl_c_the_readers_show_no_trial_running(tmp_path: Path) -> None:
    manifest = tiny_manifest("halt", max_trials=4, parallel=2, steps=40, pause=0.25)
    path = write_manifest(tmp_path / "halt.yaml", manifest)
    state = tmp_path / "halt.db"
    run = kubesweep("run", path, "--state", state)
    wait_until(state, finished=0, running=2)
    run.send_signal(signal.SIGINT)
    code, out = finish(run, timeout=60)
    assert code == 130, out
    code, out = finish(kubesweep("trials", "halt", "--state", state))
    assert code == 0, out
    assert "Running" not in out
    assert "Pending" in out
    code, out = finish(kubesweep("get", "halt", "--state", state))
    assert "Running" not in out
    assert "Interrupted" in out
