"""The suggestion benchmark runs end to end on a tiny budget and writes its report.

This is the same code path as ``make bench-suggest``, with the ``smoke``
profile: two problems, a few trials, two seeds, small latency histories. It
catches a harness broken by a change of the registry or a peer's API long
before anyone spends an hour on the full run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("optuna")
pytest.importorskip("hyperopt")
pytest.importorskip("matplotlib")

from bench.suggest import report, run


def test_smoke_run_writes_tables_plots_and_keeps_other_sections(tmp_path: Path) -> None:
    docs = tmp_path / "docs" / "benchmarks.md"
    docs.parent.mkdir()
    docs.write_text("# Benchmarks\n\n## Another benchmark\n\nKept as it is.\n")
    img = tmp_path / "docs" / "img"
    results = tmp_path / "results.jsonl"
    argv = ["--profile", "smoke", "--results", str(results), "--docs", str(docs), "--img", str(img)]

    assert run.main(argv) == 0

    text = docs.read_text()
    assert "## Another benchmark\n\nKept as it is." in text
    assert text.count(report.BEGIN) == 1
    assert "### Goals" in text
    assert "### Quality" in text
    assert "| ks-random |" in text
    assert "### Multi-fidelity" in text
    assert "### Latency" in text
    for name in ("quality", "fidelity", "latency"):
        assert (img / f"bench-suggest-{name}.png").stat().st_size > 1000
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert {r["kind"] for r in records} == {"quality", "fidelity", "latency"}
    assert all(r["status"] == "ok" for r in records), [r for r in records if r["status"] != "ok"]
    quality = [r for r in records if r["kind"] == "quality"]
    assert all(len(r["values"]) == r["trials"] for r in quality)

    # A second run resumes: nothing is recomputed, and the block is replaced, not added.
    lines = len(results.read_text().splitlines())
    assert run.main([*argv, "--skip", "latency"]) == 0
    assert len(results.read_text().splitlines()) == lines
    assert docs.read_text().count(report.BEGIN) == 1
