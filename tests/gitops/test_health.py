"""GitOps tools judge an Experiment by its status: Argo CD through a Lua health check,
Flux through kstatus. Both are evaluated here on the same sample objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import LuaRuntime  # type: ignore[import-untyped]  # lupa ships no type hints

HEALTH = Path(__file__).resolve().parents[2] / "docs/gitops/argocd/kubesweep.io/Experiment"
CASES = yaml.safe_load((HEALTH / "health_test.yaml").read_text())["tests"]


def _to_lua(lua: LuaRuntime, value: Any) -> Any:
    if isinstance(value, dict):
        return lua.table_from({k: _to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, list):
        return lua.table_from([_to_lua(lua, v) for v in value])
    return value


def argocd_health(obj: dict[str, Any]) -> dict[str, str]:
    """Run the health script as Argo CD does: ``obj`` global, a table returned."""
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = _to_lua(lua, obj)
    script = (HEALTH / "health.lua").read_text()
    result = lua.execute(script)
    return {"status": result["status"], "message": result["message"]}


@pytest.mark.parametrize("case", CASES, ids=lambda c: Path(c["inputPath"]).stem)
def test_argocd_health(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((HEALTH / case["inputPath"]).read_text())
    assert argocd_health(obj) == case["healthStatus"]


def kstatus(obj: dict[str, Any]) -> str:
    """kstatus's generic rules, as Flux applies them to custom resources."""
    status = obj.get("status") or {}
    generation = obj["metadata"].get("generation")
    observed = status.get("observedGeneration")
    if observed is not None and generation is not None and observed != generation:
        return "InProgress"
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    if conditions.get("Reconciling", {}).get("status") == "True":
        return "InProgress"
    if conditions.get("Stalled", {}).get("status") == "True":
        return "Failed"
    return "Current"


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("spec_changed", "InProgress"),
        ("running", "InProgress"),
        ("succeeded", "Current"),
        ("failed", "Failed"),
        ("stalled", "Failed"),
    ],
)
def test_kstatus(sample: str, expected: str) -> None:
    obj = yaml.safe_load((HEALTH / "testdata" / f"{sample}.yaml").read_text())
    assert kstatus(obj) == expected
