"""``kubesweep get --local`` lists the local runs of the current directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kubesweep.api import Experiment, ExperimentStatus
from kubesweep.cli.experiment_sources import LocalRuns, default_state
from kubesweep.cli.local.store import Store
from kubesweep.cli.main import main
from tests.cli.conftest import example


def record_run(experiment: Experiment, phase: str, path: Path | None = None) -> Path:
    state = path or default_state(experiment.metadata.name)
    store = Store(state)
    store.set_meta(
        experiment=experiment.metadata.name,
        manifest=experiment.model_dump_json(by_alias=True, exclude_none=True),
    )
    store.save_status(ExperimentStatus.model_validate({"phase": phase}))
    store.close()
    return state


def test_get_local_without_a_name_lists_every_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    record_run(example("random"), "Succeeded")
    record_run(example("grid"), "Running")
    result = CliRunner().invoke(main, ["get", "--local"])
    assert result.exit_code == 0, result.output
    assert "kubeconfig" not in result.output
    lines = result.output.splitlines()
    assert any("digits-grid" in line and "Running" in line for line in lines)
    assert any("digits-random" in line and "Succeeded" in line for line in lines)
    result = CliRunner().invoke(main, ["get", "--local", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert '"kind": "List"' in result.output


def test_get_local_with_no_runs_says_how_to_start_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["get", "--local"])
    assert result.exit_code == 0, result.output
    assert "no local runs in .kubesweep" in result.output
    assert "kubesweep run" in result.output


def test_a_state_file_of_another_name_is_found_by_its_experiment(tmp_path: Path) -> None:
    record_run(example("random"), "Succeeded", tmp_path / "mine.db")
    runs = LocalRuns(tmp_path)
    assert [e.metadata.name for e in runs.experiments()] == ["digits-random"]
    assert runs.experiment("digits-random").metadata.name == "digits-random"
