"""The dashboard in a real browser: headless Chromium driven through chromedriver by selenium.

What a person sees is asserted: a running experiment's progress advancing while
its state file is written, with no reload; the history plot's points where the
trials' objectives put them; a filter narrowing the trial table. Screenshots go to
``artifacts/`` beside the report's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesweep.api import Experiment
from tests.cli.conftest import example
from tests.cli.dashboard_runs import LiveRun, loss_of, parameters_of

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install selenium)"
)
pytest.importorskip("aiohttp", reason="the dashboard needs aiohttp (kubesweep[cli])")

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from tests.cli.browser import (  # noqa: E402
    Dashboard,
    chromium,
    progress,
    shot,
    urls_outside,
    wait,
)


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def experiment() -> Experiment:
    return example("random")


def _fmt4(value: float) -> str:
    """A value as the report's script prints it in a tooltip (4 significant digits)."""
    text = f"{value:.4g}"
    return text if "e" not in text else f"{value:.2e}"


#: The history plot as uPlot draws it: each phase's points (trial index, objective) with
#: their pixel positions, the legend's labels, and the plot area's size.
HISTORY = """
const plot = document.getElementById("plot-history");
if (!plot || plot.dataset.rendered !== "true" || !plot.uplot) return null;
const u = plot.uplot;
const points = [];
u.series.forEach((s, i) => {
  if (i === 0 || s.label === "best so far") return;
  u.data[i].forEach((y, j) => {
    if (y !== null) points.push([s.label, u.data[0][j], y,
      u.valToPos(u.data[0][j], "x"), u.valToPos(y, "y")]);
  });
});
const box = u.over.getBoundingClientRect();
return {error: plot.dataset.error || null, points: points, legend: u.series.map((s) => s.label),
  width: box.width, height: box.height, log: u.scales.y.distr === 3};
"""


#: The offset from the parallel coordinates' centre, in screen pixels, of a value on an axis.
BRUSH = """
const plot = document.getElementById("plot-parallel");
const svg = plot.querySelector("svg");
const [x, y] = plot.axisPosition(arguments[0], arguments[1]);
const pt = svg.createSVGPoint();
pt.x = x; pt.y = y;
const at = pt.matrixTransform(svg.getScreenCTM());
const box = svg.getBoundingClientRect();
return [Math.round(at.x - box.left - box.width / 2), Math.round(at.y - box.top - box.height / 2)];
"""


#: Whether the curve's canvas is inked halfway between its first two points (3 by 3 pixels).
CURVE_INKED = """
const plot = document.getElementById("plot-curves");
const u = plot.uplot, [p, q] = plot.points;
const x = (u.valToPos(p.x, "x", true) + u.valToPos(q.x, "x", true)) / 2;
const y = (u.valToPos(p.y, "y", true) + u.valToPos(q.y, "y", true)) / 2;
const d = u.ctx.getImageData(Math.round(x) - 1, Math.round(y) - 1, 3, 3).data;
for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] < 200) return true;
return false;
"""


def _history(driver: Any) -> Any:
    return wait(driver, lambda d: d.execute_script(HISTORY), "the history plot drawn")


def _at(driver: Any, drawn: Any, x: float, y: float) -> ActionChains:
    """Actions with the pointer at pixel (x, y) of the history plot's area."""
    area = driver.find_element(By.CSS_SELECTOR, "#plot-history .u-over")
    # The pointer acts where the plot is on screen: it is brought there first (the table's
    # filters lie far below it).
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", area)
    offset = (round(x - drawn["width"] / 2), round(y - drawn["height"] / 2))
    return ActionChains(driver).move_to_element_with_offset(area, *offset)


def _visible_rows(driver: Any) -> list[str]:
    names = driver.execute_script(
        'return [...document.querySelectorAll("#trials tr[data-name]")]'
        ".filter((r) => r.offsetParent !== null).map((r) => r.dataset.name)"
    )
    return [str(n) for n in names]


def test_a_running_experiment_in_the_browser(
    browser: Any, tmp_path: Path, experiment: Experiment
) -> None:
    run = LiveRun(tmp_path / "digits-random.db", experiment)
    dashboard = Dashboard(tmp_path)
    try:
        for index in range(3):
            run.run(index)
        run.start(3)

        # The experiments page: the run's line with its progress.
        browser.get(dashboard.url)
        wait(
            browser,
            lambda d: d.find_elements(By.CSS_SELECTOR, "#experiments tr[data-name]"),
            "the experiments table",
        )
        row = browser.find_element(By.CSS_SELECTOR, '#experiments tr[data-name="digits-random"]')
        assert "Running" in row.text
        assert "3 / 8" in row.text
        shot(browser, "cli-dashboard-experiments.png")

        # The experiment page follows the run without a reload.
        browser.get(dashboard.url + "experiments/digits-random")
        wait(
            browser,
            lambda d: d.execute_script("return document.body.dataset.drawn"),
            "the experiment page drawn",
        )
        assert progress(browser) == "3 / 8"
        browser.execute_script("window.notReloaded = true")
        run.finish(3)
        wait(browser, lambda d: progress(d) == "4 / 8", "progress 4 / 8 without reload")
        run.run(4)
        run.start(5)
        wait(browser, lambda d: progress(d) == "5 / 8", "progress 5 / 8 without reload")
        wait(
            browser,
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#trials tr[data-name]")) == 6,
            "six trials in the table",
        )
        assert browser.execute_script("return window.notReloaded") is True
        assert int(browser.execute_script("return document.body.dataset.updates")) >= 3
        # Each change came as a delta applied to the JSON loaded once, not the whole JSON again.
        sizes = browser.execute_script(
            "const d = document.body.dataset;"
            "return [+d.snapshots, +d.deltaBytes, +d.snapshotBytes, +d.seq]"
        )
        assert sizes[0] == 1
        assert 0 < sizes[1] < sizes[2]
        assert sizes[3] >= 2  # 4 / 8 and 5 / 8 were seen: two versions at least
        assert "/sweeps/" in dashboard.url
        assert urls_outside(browser, dashboard.url) == []  # links, assets, fetches, events

        # The history plot: one point per finished trial, each where its objective puts it.
        # Read in one script: a later update redraws the plot and its elements.
        drawn = _history(browser)
        assert drawn["error"] is None
        assert drawn["legend"] == ["trial", "Succeeded", "best so far"]
        expected = {f"digits-random-{i}": loss_of(i) for i in range(5)}
        assert {(x, y) for _, x, y, _, _ in drawn["points"]} == {(i, loss_of(i)) for i in range(5)}
        by_height = sorted(drawn["points"], key=lambda p: -p[4])  # lowest on screen first
        assert [p[1] for p in by_height] == sorted(range(5), key=loss_of)
        # The table's values are exact.
        cells = browser.execute_script(
            'return Object.fromEntries([...document.querySelectorAll("#trials tr[data-name]")]'
            ".map((r) => [r.dataset.name, r.dataset.objective]))"
        )
        for name, loss in expected.items():
            assert float(str(cells[name])) == loss
        shot(browser, "cli-dashboard-experiment.png")

        # A filter narrows the table: a parameter value, then a phase.
        box = browser.find_element(By.ID, "filter-text")
        box.send_keys("elasticnet")
        wanted = [
            f"digits-random-{i}" for i in range(6) if parameters_of(i)["penalty"] == "elasticnet"
        ]
        wait(browser, lambda d: _visible_rows(d) == wanted, "rows of elasticnet trials")
        assert browser.find_element(By.ID, "shown").text == f"{len(wanted)} of 6 trials shown"
        box.clear()
        box.send_keys(" ")
        box.clear()
        Select(browser.find_element(By.ID, "filter-phase")).select_by_value("Running")
        wait(browser, lambda d: _visible_rows(d) == ["digits-random-5"], "the running trial only")
        # A filter survives the next update.
        run.finish(5)
        wait(browser, lambda d: progress(d) == "6 / 8", "progress 6 / 8")
        wait(browser, lambda d: _visible_rows(d) == [], "no running trial left")
        shot(browser, "cli-dashboard-filtered.png")

        # Hovering a point names its trial; a click on it shows that trial alone.
        Select(browser.find_element(By.ID, "filter-phase")).select_by_value("")
        wait(browser, lambda d: len(_visible_rows(d)) == 6, "every trial shown again")
        drawn = _history(browser)
        (point,) = [p for p in drawn["points"] if p[1] == 2]
        _at(browser, drawn, point[3], point[4]).perform()
        wait(
            browser,
            lambda d: (
                d.find_element(By.ID, "plot-history").get_attribute("data-hover")
                == "digits-random-2"
            ),
            "the hovered point named",
        )
        tip = browser.find_element(By.CSS_SELECTOR, "#plot-history .plot-tip").text
        assert tip == f"digits-random-2 (Succeeded): val_loss={_fmt4(loss_of(2))}"
        _at(browser, drawn, point[3], point[4]).click().perform()
        wait(browser, lambda d: _visible_rows(d) == ["digits-random-2"], "the clicked trial")
        assert (
            browser.find_element(By.ID, "filter-text").get_attribute("value") == "digits-random-2"
        )
        box = browser.find_element(By.ID, "filter-text")
        box.clear()
        box.send_keys(" ")
        box.clear()
        wait(browser, lambda d: len(_visible_rows(d)) == 6, "every trial shown after the click")

        # A drag over trials 1 to 3 zooms there and keeps those trials alone in the table.
        xs = {p[1]: p[3] for p in drawn["points"]}
        middle = drawn["height"] / 2
        (
            _at(browser, drawn, xs[1] - 6, middle)
            .click_and_hold()
            .move_by_offset(round(xs[3] - xs[1] + 12), 5)
            .release()
            .perform()
        )
        wanted = ["digits-random-1", "digits-random-2", "digits-random-3"]
        wait(browser, lambda d: _visible_rows(d) == wanted, "the trials selected by the drag")
        assert "selected in the plot" in browser.find_element(By.ID, "shown").text
        zoomed = browser.execute_script(
            'const u = document.getElementById("plot-history").uplot;'
            "return [u.scales.x.min, u.scales.x.max]"
        )
        assert 0 < zoomed[0] < 1
        assert 3 < zoomed[1] < 4
        shot(browser, "cli-dashboard-selected.png")
        ActionChains(browser).double_click(
            browser.find_element(By.CSS_SELECTOR, "#plot-history .u-over")
        ).perform()
        wait(browser, lambda d: len(_visible_rows(d)) == 6, "every trial after a double-click")

        # A brush on the parallel coordinates' penalty axis around "elasticnet" keeps those
        # trials alone in the table and dims the other lines; a double-click clears it.
        svg = browser.find_element(By.CSS_SELECTOR, "#plot-parallel svg")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", svg)
        offsets = browser.execute_script(BRUSH, "penalty", "elasticnet")
        (
            ActionChains(browser)
            .move_to_element_with_offset(svg, offsets[0], offsets[1] - 12)
            .click_and_hold()
            .move_by_offset(0, 24)
            .release()
            .perform()
        )
        wanted = [
            f"digits-random-{i}" for i in range(6) if parameters_of(i)["penalty"] == "elasticnet"
        ]
        wait(browser, lambda d: _visible_rows(d) == wanted, "the elasticnet trials brushed")
        dimmed = browser.execute_script(
            'return document.querySelectorAll("#plot-parallel .pc-line.dimmed").length'
        )
        assert dimmed == 6 - len(wanted)
        shot(browser, "cli-dashboard-parallel-brush.png")
        ActionChains(browser).double_click(svg).perform()
        wait(browser, lambda d: len(_visible_rows(d)) == 6, "every trial after the brush cleared")

        # A log scale: the same points, on a logarithmic axis.
        browser.find_element(By.CSS_SELECTOR, "#plot-history .log-toggle").click()
        logged = wait(
            browser, lambda d: (h := d.execute_script(HISTORY)) and h["log"] and h, "a log scale"
        )
        assert {(x, y) for _, x, y, _, _ in logged["points"]} == {(i, loss_of(i)) for i in range(6)}
        shot(browser, "cli-dashboard-log-scale.png")

        # A trial's page: parameters, metrics, the reason it ended, its curve.
        browser.get(dashboard.url + "experiments/digits-random/trials/digits-random-2")
        wait(
            browser,
            lambda d: d.execute_script("return document.body.dataset.drawn"),
            "the trial page drawn",
        )
        text = browser.find_element(By.ID, "main").text
        assert "Completed" in browser.find_element(By.ID, "ended").text
        assert "elasticnet" in text
        assert str(loss_of(2)) in text.replace("\n", " ")
        assert browser.find_elements(By.ID, "plot-history") == []  # the trial's plot only
        assert len(browser.find_elements(By.ID, "plot-curves")) == 1
        curve = browser.find_element(By.ID, "plot-curves")
        assert curve.get_attribute("data-rendered") == "true"
        assert int(str(curve.get_attribute("data-marks"))) >= 1
        assert browser.execute_script(CURVE_INKED) is True
        assert "No log reachable" in text
        shot(browser, "cli-dashboard-trial.png")
    finally:
        dashboard.stop()
        run.close()


def test_the_page_applies_a_patch_as_the_server_means_it(
    browser: Any, tmp_path: Path, experiment: Experiment
) -> None:
    """The page's ``applyPatch`` rebuilds what the server's ``diff`` was given, in every case
    the Python ``apply`` is tested on."""
    from kubesweep.cli.dashboard.deltas import diff
    from tests.cli.test_dashboard_deltas import CASES, OLD

    run = LiveRun(tmp_path / "digits-random.db", experiment)
    dashboard = Dashboard(tmp_path)
    try:
        run.run(0)
        browser.get(dashboard.url + "experiments/digits-random")
        wait(browser, lambda d: d.execute_script("return document.body.dataset.drawn"), "drawn")
        cases = {**CASES, "a list grew": {**OLD, "grew": [1, 2]}}
        olds = {**dict.fromkeys(CASES, OLD), "a list grew": {**OLD, "grew": [1]}}
        for name, new in cases.items():
            rebuilt = browser.execute_script(
                "return window.kubesweepApplyPatch(arguments[0], arguments[1])",
                olds[name],
                diff(olds[name], new),
            )
            assert rebuilt == new, name
    finally:
        dashboard.stop()
        run.close()
