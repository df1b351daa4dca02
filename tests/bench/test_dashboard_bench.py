"""The dashboard benchmark's section of docs/benchmarks.md: what it says, and where it goes.

The measurement itself needs Chromium and minutes; its text is checked here
from a results record, and replacing the section keeps the rest of the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import dashboard

RESULTS = {
    "trials": 10000,
    "repeats": 2,
    "commit": "abc1234",
    "cpus": 2,
    "load_start": 1.5,
    "load_end": 2.5,
    "api_first_s": 5.8,
    "api_bytes": 5_800_000,
    "api_cached_s": 0.005,
    "api_after_write_s": [0.8, 0.9],
    "delta_bytes": [2100, 2500],
    "whole_bytes": [5_812_000, 5_812_400],
    "page_open_s": [0.7, 1.3],
    "update_s": [1.6, 2.4],
}


def test_the_section_says_the_command_the_commit_and_each_figure() -> None:
    text = dashboard.render(RESULTS)
    assert text.startswith(dashboard.BEGIN)
    assert text.endswith(dashboard.END)
    assert "`python -m bench.dashboard --trials 10000 --repeats 2` at abc1234" in text
    assert "| the page's JSON, first request (importance fitted) | 5.80 s, 5.8 MB |" in text
    assert "| the experiment page, from navigation to drawn | 0.70-1.30 s (median 1.00) |" in text
    assert "| a write shown in the open page | 1.60-2.40 s (median 2.00) |" in text
    assert "the delta (was: the whole JSON again) | 2.1 kB-2.5 kB (was 5.81 MB) |" in text


def test_the_section_is_replaced_and_the_rest_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Operator\n\nnumbers\n")
    monkeypatch.setattr(dashboard, "DOCS", docs)
    dashboard.write_docs(RESULTS)
    first = docs.read_text()
    assert first.startswith("# Benchmarks\n\n## Operator\n\nnumbers\n\n## Dashboard\n")
    docs.write_text(first + "\na note after the section\n")
    dashboard.write_docs({**RESULTS, "commit": "def5678"})
    second = docs.read_text()
    assert second.count(dashboard.BEGIN) == 1
    assert "def5678" in second
    assert "abc1234" not in second
    assert second.endswith("a note after the section\n")
