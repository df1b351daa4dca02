"""The dashboard's Pareto front and lineage in Chromium, as a person sees them.

An experiment of two objectives (one maximised, one minimised, and a
constraint), whose later trials continue earlier ones' training: the front's
points on the plot carry the trials' own values and the spec's directions, a
click on one keeps that trial alone in the table, the lineage plot links each
trial to its parent, and a parent link in the table and on a trial's page goes
to the parent. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kubesweep.api import ExperimentStatus, MetricSummary, TrialPhase, TrialStatus
from kubesweep.cli.local.store import LocalTrial, Store
from tests.cli.conftest import T0
from tests.cli.test_report_front import experiment

pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
pytest.importorskip("aiohttp", reason="the dashboard needs aiohttp (kubesweep[cli])")

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from tests.cli.browser import Dashboard, chromium, drawn, shot, wait

#: (latency_ms maximised, accuracy minimised, memory at most 10, parent)
TRIALS = {
    0: (10.0, 0.5, 1.0, None),  # front: the highest feasible latency
    1: (5.0, 0.1, 1.0, None),  # front: the lowest accuracy
    2: (5.0, 0.6, 1.0, 0),  # dominated by both; continues 0
    3: (20.0, 0.0, 50.0, 0),  # would dominate every trial, but breaks memory <= 10
    4: (7.0, 0.3, 1.0, 2),  # front: between the two; continues 2, which continues 0
}
FRONT = {"tradeoff-0", "tradeoff-1", "tradeoff-4"}


def _trial(index: int) -> LocalTrial:
    latency, accuracy, memory, parent = TRIALS[index]
    metrics = {"latency_ms": latency, "accuracy": accuracy, "memory": memory}
    return LocalTrial(
        index=index,
        name=f"tradeoff-{index}",
        parameters={"x": index / 10},
        status=TrialStatus(
            phase=TrialPhase.SUCCEEDED,
            reason="Completed",
            start_time=T0,
            completion_time=T0 + timedelta(seconds=30),
            objective=latency,
            metrics=[MetricSummary(name=n, latest=v, min=v, max=v) for n, v in metrics.items()],
        ),
        attempts=1,
        parent=None if parent is None else f"tradeoff-{parent}",
        perturbation=None if parent is None else "x*1.2",
    )


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    spec = experiment()
    store = Store(tmp_path / "tradeoff.db")
    store.set_meta(
        experiment="tradeoff", manifest=spec.model_dump_json(by_alias=True, exclude_none=True)
    )
    for index in TRIALS:
        store.add_trial(_trial(index))
    counts = {"created": 5, "succeeded": 5, "completed": 5}
    store.save_status(
        ExperimentStatus.model_validate(
            {"phase": "Running", "startTime": T0.isoformat(), "trials": counts}
        )
    )
    served = Dashboard(tmp_path)
    yield served
    served.stop()
    store.close()


#: A uPlot scatter's points (name, group, x, y and pixel position), its legend and errors.
SCATTER = """
const plot = document.getElementById(arguments[0]);
if (!plot || plot.dataset.rendered !== "true" || !plot.uplot) return null;
const u = plot.uplot;
return {error: plot.dataset.error || null, marks: +plot.dataset.marks,
  legend: u.series.map((s) => s.label),
  points: plot.points.map((p) => ({name: p.name, group: p.group, x: p.x, y: p.y,
    left: u.valToPos(p.x, "x"), top: u.valToPos(p.y, "y")})),
  width: u.over.getBoundingClientRect().width, height: u.over.getBoundingClientRect().height};
"""


#: For each trial with a parent, whether the lineage canvas is inked halfway to the parent.
LINKS = """
const plot = document.getElementById(arguments[0]);
const u = plot.uplot, byName = new Map(plot.points.map((p) => [p.name, p]));
const out = {};
for (const p of plot.points) {
  if (!p.parent) continue;
  const q = byName.get(p.parent);
  const x = (u.valToPos(p.x, "x", true) + u.valToPos(q.x, "x", true)) / 2;
  const y = (u.valToPos(p.y, "y", true) + u.valToPos(q.y, "y", true)) / 2;
  const d = u.ctx.getImageData(Math.round(x) - 1, Math.round(y) - 1, 3, 3).data;
  let inked = false;
  for (let i = 0; i < d.length; i += 4) inked ||= d[i + 3] > 0 && d[i] < 200 && d[i + 1] < 200;
  out[p.name] = inked;
}
return out;
"""


def _scatter(driver: Any, plot: str) -> Any:
    return wait(driver, lambda d: d.execute_script(SCATTER, plot), f"{plot} drawn")


def _rows(driver: Any) -> list[str]:
    names = driver.execute_script(
        'return [...document.querySelectorAll("#trials tr[data-name]")].map((r) => r.dataset.name)'
    )
    return [str(n) for n in names]


def test_the_front_and_the_lineage_in_the_browser(dashboard: Dashboard) -> None:
    with chromium() as browser:
        browser.get(dashboard.url + "experiments/tradeoff")
        wait(browser, drawn, "the experiment page drawn")

        # The front: each point at its trial's own values, the front marked, the directions
        # of the spec on the axes' names.
        front = _scatter(browser, "plot-pareto-1")
        assert front["error"] is None
        by_name = {p["name"]: p for p in front["points"]}
        for index, (latency, accuracy, _, _) in TRIALS.items():
            point = by_name[f"tradeoff-{index}"]
            assert (point["x"], point["y"]) == (latency, accuracy)
        assert {n for n, p in by_name.items() if p["group"] == "front"} == FRONT
        assert by_name["tradeoff-3"]["group"] == "infeasible"
        assert front["legend"][:4] == [
            "latency_ms (maximize)",
            "Pareto front",
            "dominated",
            "infeasible",
        ]
        plot = browser.find_element(By.ID, "plot-pareto-1")
        assert plot.get_attribute("data-x-label") == "latency_ms (maximize)"
        assert plot.get_attribute("data-y-label") == "accuracy (minimize)"

        # Hover names the trial with its values; a click keeps it alone in the table.
        point = by_name["tradeoff-4"]
        area = browser.find_element(By.CSS_SELECTOR, "#plot-pareto-1 .u-over")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", area)
        offset = (
            round(point["left"] - front["width"] / 2),
            round(point["top"] - front["height"] / 2),
        )
        ActionChains(browser).move_to_element_with_offset(area, *offset).perform()
        wait(
            browser,
            lambda d: (
                d.find_element(By.ID, "plot-pareto-1").get_attribute("data-hover") == "tradeoff-4"
            ),
            "the hovered front point named",
        )
        tip = browser.find_element(By.CSS_SELECTOR, "#plot-pareto-1 .plot-tip").text
        assert tip == "tradeoff-4 (Pareto front): latency_ms=7, accuracy=0.3"
        ActionChains(browser).move_to_element_with_offset(area, *offset).click().perform()
        wait(browser, lambda d: _rows(d) == ["tradeoff-4"], "the clicked trial alone")
        shot(browser, "cli-dashboard-front.png")

        # The lineage: a point per trial, a link per trial with a parent.
        lineage = _scatter(browser, "plot-lineage")
        assert lineage["error"] is None
        assert lineage["marks"] == len(TRIALS) + 3
        # Each link is drawn: the canvas is inked halfway between a trial and its parent
        # (a pixel of the 3 by 3 around that point).
        inked = browser.execute_script(LINKS, "plot-lineage")
        assert inked == {"tradeoff-2": True, "tradeoff-3": True, "tradeoff-4": True}
        browser.execute_script('document.getElementById("plot-lineage").scrollIntoView()')
        shot(browser, "cli-dashboard-lineage.png")

        # The table's parent link goes to the parent's page, which names who continues it.
        link = browser.find_element(
            By.CSS_SELECTOR, '#trials tr[data-name="tradeoff-4"] td.parent a'
        )
        assert link.text == "tradeoff-2"
        link.click()
        wait(browser, lambda d: d.current_url.endswith("/trials/tradeoff-2"), "the parent's page")
        wait(browser, drawn, "the parent's page drawn")
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("tradeoff-2")
        children = browser.find_element(By.ID, "children").text
        assert children == "Continued by: tradeoff-4"
        lineage_text = browser.find_element(By.ID, "lineage").text
        assert lineage_text == "Continues: tradeoff-0 → tradeoff-2 (x*1.2)"
        # And the trial page's own parent link goes one step up.
        browser.find_element(By.ID, "parent").click()
        wait(browser, lambda d: d.current_url.endswith("/trials/tradeoff-0"), "the grandparent")
        wait(browser, drawn, "the grandparent's page drawn")
        assert browser.find_elements(By.ID, "parent") == []
        assert browser.find_element(By.ID, "children").text == (
            "Continued by: tradeoff-2, tradeoff-3"
        )
        shot(browser, "cli-dashboard-trial-lineage.png")
