"""docs/algorithms.md is generated from the algorithms' own docstrings and settings."""

from __future__ import annotations

from pathlib import Path

from kubesweep.api import AlgorithmName
from kubesweep.suggestion import catalog

PAGE = Path(__file__).resolve().parents[2] / "docs" / "algorithms.md"


def test_page_is_up_to_date() -> None:
    assert PAGE.read_text() == catalog.render(), "run `make crds` and commit docs/algorithms.md"


def test_every_algorithm_is_listed_with_its_settings() -> None:
    text = catalog.render()
    for name in AlgorithmName:
        assert f"## `{name}`" in text
    assert "| `initialTrials` |" in text
    assert "| `minTrials` |" in text
