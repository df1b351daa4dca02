"""An independent policy checker on the chart's output: every finding is justified.

checkov judges ``helm template`` output over each scenario in ``charts/kubesweep/ci``.
Each check that still fails must be listed, with its reason, in the table of
``docs/platform.md`` ("Policy checks"); a listed check that no longer fails must
leave the table. checkov is not a project dependency (its own dependencies are
many): the test runs with ``$KUBESWEEP_CHECKOV``, ``checkov`` on PATH or in the
virtual environment, and skips, saying how to get it, without one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SCENARIOS, template

DOCS = Path(__file__).resolve().parents[2] / "docs" / "platform.md"
_ROW = re.compile(r"^\| `(CKV2?_K8S_\d+)` \|", re.MULTILINE)


def _checkov() -> str | None:
    configured = os.environ.get("KUBESWEEP_CHECKOV")
    if configured:
        return configured
    beside = Path(sys.executable).parent / "checkov"
    return shutil.which("checkov") or (str(beside) if beside.is_file() else None)


def justified() -> set[str]:
    """The check ids docs/platform.md gives a reason for."""
    return set(_ROW.findall(DOCS.read_text()))


def _run(checkov: str, folder: Path) -> set[tuple[str, str]]:
    """The failed checks in ``folder``: (check id, resource)."""
    result = subprocess.run(
        [checkov, "-d", str(folder), "--framework", "kubernetes", "--output", "json",
         "--quiet", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert result.stdout, f"checkov said nothing on stdout: {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    return {
        (check["check_id"], check["resource"])
        for one in reports
        for check in one.get("results", {}).get("failed_checks", [])
    }


def test_the_justification_table_is_found() -> None:
    assert justified(), "docs/platform.md lost its table of policy checks"


def test_every_remaining_finding_is_justified(helm: str, tmp_path: Path) -> None:
    checkov = _checkov()
    if checkov is None:
        pytest.skip("no checkov: install it into a throwaway venv and set KUBESWEEP_CHECKOV")
    failed: set[tuple[str, str, str]] = set()
    for values in SCENARIOS:
        # One folder per scenario: checkov's graph checks (a pod's NetworkPolicy)
        # would otherwise count one scenario's objects for another's.
        folder = tmp_path / values.stem
        folder.mkdir()
        (folder / "rendered.yaml").write_text(template(helm, "-f", str(values)))
        failed |= {(check, values.name, resource) for check, resource in _run(checkov, folder)}
    ids = {check_id for check_id, _, _ in failed}
    unexplained = sorted(f for f in failed if f[0] not in justified())
    assert not unexplained, f"justify these in docs/platform.md or fix the chart: {unexplained}"
    assert justified() <= ids, f"no longer found, drop from the table: {justified() - ids}"
