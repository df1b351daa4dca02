"""Operator settings from flags and environment variables: the finished-workload retention."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kubesweep.operator.config import config_from_args


def test_the_retention_is_a_duration_and_empty_keeps_workloads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert config_from_args([])[0].finished_workload_retention is None
    config, _ = config_from_args(["--finished-workload-retention=1h30m"])
    assert config.finished_workload_retention == timedelta(hours=1, minutes=30)
    assert config_from_args(["--finished-workload-retention=0s"])[
        0
    ].finished_workload_retention == timedelta(0)
    monkeypatch.setenv("KUBESWEEP_FINISHED_WORKLOAD_RETENTION", "10m")
    assert config_from_args([])[0].finished_workload_retention == timedelta(minutes=10)


def test_a_malformed_retention_is_refused_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        config_from_args(["--finished-workload-retention=ten minutes"])
    error = capsys.readouterr().err
    assert "--finished-workload-retention" in error
    assert "invalid duration 'ten minutes'" in error
