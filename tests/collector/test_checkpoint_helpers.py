"""``kubesweep.checkpoint_dir`` and ``kubesweep.resume_from``: what a trainer reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesweep.collector import client


def test_the_trainer_finds_its_directory_created_and_its_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "mnist" / "mnist-4"
    monkeypatch.setenv("KUBESWEEP_CHECKPOINT_DIR", str(own))
    monkeypatch.setenv("KUBESWEEP_RESUME_FROM", str(tmp_path / "mnist" / "mnist-1"))
    assert client.checkpoint_dir() == str(own)
    assert own.is_dir()
    assert client.resume_from() == str(tmp_path / "mnist" / "mnist-1")


def test_without_checkpoints_or_a_parent_both_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBESWEEP_CHECKPOINT_DIR", raising=False)
    monkeypatch.delenv("KUBESWEEP_RESUME_FROM", raising=False)
    assert client.checkpoint_dir() is None
    assert client.resume_from() is None


def test_an_object_store_prefix_is_returned_and_nothing_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBESWEEP_CHECKPOINT_DIR", "s3://bucket/sweeps/mnist/mnist-4")
    assert client.checkpoint_dir() == "s3://bucket/sweeps/mnist/mnist-4"
    assert list(tmp_path.iterdir()) == []


def test_the_helpers_are_exposed_lazily_on_the_package() -> None:
    import kubesweep

    assert kubesweep.checkpoint_dir is client.checkpoint_dir
    assert kubesweep.resume_from is client.resume_from
