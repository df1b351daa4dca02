"""Report data (pure), the HTML page, and the page rendered in headless Chromium."""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import math
import os
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesweep.api import Direction, Experiment, ExperimentStatus, TrialPhase
from kubesweep.cli.ranking import TrialRecord
from kubesweep.cli.report.data import (
    dominates,
    history,
    pareto,
    pareto_front,
    report_data,
)
from kubesweep.cli.report.html import (
    VENDOR,
    asset,
    embed_json,
    plot_ids,
    render_html,
    write_report,
)
from kubesweep.cli.report.importance import importance
from kubesweep.cli.report.sample import drawn_records, fitted_records, thin_pareto
from tests.cli.conftest import ROOT, T0, record

ARTIFACTS = ROOT / "artifacts"


def synthetic(experiment: Experiment, count: int = 12) -> list[TrialRecord]:
    """Trials of the random example where the objective depends mostly on eta0."""
    rng = random.Random(3)
    out = []
    for index in range(count):
        eta0 = 10 ** rng.uniform(-3, 0)
        alpha = 10 ** rng.uniform(-6, -2)
        penalty = rng.choice(["l2", "l1", "elasticnet"])
        loss = abs(math.log10(eta0) + 1) + 0.01 * rng.random()
        phase = TrialPhase.EARLY_STOPPED if index % 5 == 4 else TrialPhase.SUCCEEDED
        if index == 7:
            phase = TrialPhase.FAILED
        curve = tuple(
            (step, loss + 1.0 / step)
            for step in range(1, 6 if phase.value != "EarlyStopped" else 3)
        )
        out.append(
            TrialRecord(
                name=f"digits-random-{index}",
                index=index,
                phase=phase,
                parameters={"alpha": alpha, "eta0": eta0, "penalty": penalty},
                objective=None if phase is TrialPhase.FAILED else loss,
                metrics={}
                if phase is TrialPhase.FAILED
                else {"val_loss": loss, "accuracy": 1 - loss / 4},
                start_time=T0,
                completion_time=T0,
                curve=() if phase is TrialPhase.FAILED else curve,
            )
        )
    return out


def test_history_best_so_far_follows_succeeded_trials_only() -> None:
    records = [
        record(0, 0.5),
        record(1, 0.1, TrialPhase.EARLY_STOPPED),
        record(2, 0.3),
        record(3, 0.4),
    ]
    data = history(records, Direction.MINIMIZE)
    assert [p["x"] for p in data["points"]] == [0, 1, 2, 3]
    assert data["best"] == [[0, 0.5], [2, 0.3], [3, 0.3]]


def test_pareto_front_minimising_every_coordinate() -> None:
    points = [[1.0, 5.0], [2.0, 2.0], [3.0, 3.0], [5.0, 1.0], [2.0, 2.0]]
    assert pareto_front(points) == [True, True, False, True, True]


@given(
    st.lists(
        st.lists(st.integers(0, 6).map(float), min_size=3, max_size=3), min_size=0, max_size=40
    )
)
def test_pareto_front_is_the_set_no_other_point_dominates(points: list[list[float]]) -> None:
    expected = [not any(dominates(q, p) for q in points if q is not p) for p in points]
    assert pareto_front(points) == expected


def test_one_objective_has_no_pareto_plot_and_no_guessed_direction(
    random_experiment: Experiment,
) -> None:
    # val_loss and accuracy are recorded, but the spec optimises val_loss alone
    assert pareto(synthetic(random_experiment), random_experiment) is None


def test_importance_finds_the_parameter_that_matters(random_experiment: Experiment) -> None:
    records = [r for r in synthetic(random_experiment, 30) if r.objective is not None]
    shares = importance(
        random_experiment.spec.parameters,
        [r.parameters for r in records],
        [float(r.objective) for r in records if r.objective is not None],
    )
    assert math.isclose(sum(shares.values()), 1.0)
    assert max(shares, key=lambda k: shares[k]) == "eta0"
    assert importance(random_experiment.spec.parameters, [{}] * 2, [1.0, 2.0]) == {}


def test_importance_of_many_trials_fits_a_seeded_sample(
    random_experiment: Experiment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubesweep.cli.report import importance as module

    records = [r for r in synthetic(random_experiment, 120) if r.objective is not None]
    rows = [r.parameters for r in records]
    objectives = [float(r.objective) for r in records if r.objective is not None]
    parameters = random_experiment.spec.parameters
    monkeypatch.setattr(module, "MAX_ROWS", 40)
    sampled = importance(parameters, rows, objectives)
    assert sampled == importance(parameters, rows, objectives)  # the same sample every time
    assert max(sampled, key=lambda k: sampled[k]) == "eta0"
    monkeypatch.setattr(module, "MAX_ROWS", len(rows))
    assert importance(parameters, rows, objectives) != sampled  # a sample, not every row


def test_report_data_has_every_section(random_experiment: Experiment) -> None:
    data = report_data(random_experiment, synthetic(random_experiment), now=T0)
    assert [s["name"] for s in data["slices"]] == ["alpha", "eta0", "penalty"]
    assert data["slices"][2]["kind"] == "categorical"
    assert any(c["stopped"] for c in data["curves"]["series"])
    assert data["importance"]
    assert len(data["parallel"]["rows"]) == 11
    assert data["pareto"] is None  # one objective
    json.dumps(data)  # JSON-ready


def test_large_experiments_draw_the_best_and_an_even_sample_of_the_rest() -> None:
    records = [record(i, objective=float((i * 7919) % 3000)) for i in range(3000)]
    drawn = drawn_records(records, Direction.MINIMIZE, limit=1000)
    assert 500 < len(drawn) == len({r.name for r in drawn}) <= 1000
    assert [r.index for r in drawn] == sorted(r.index for r in drawn)
    objectives = {r.objective for r in drawn}
    assert set(map(float, range(200))) <= objectives  # the 200 best
    assert 2999.0 in objectives  # and the worst
    # One more trial (not among the best) leaves the others drawn as they were.
    more = drawn_records([*records, record(3000, objective=2500.5)], Direction.MINIMIZE, 1000)
    assert {r.name for r in drawn} - {r.name for r in more} == set()
    assert drawn_records(records[:50], Direction.MINIMIZE, limit=1000) == records[:50]
    fitted = fitted_records(records, limit=2000)
    assert len(fitted) == 2000
    assert (fitted[0], fitted[-1]) == (records[0], records[-1])
    assert fitted_records(records[:10]) == records[:10]


def test_a_pareto_front_is_drawn_whole_and_its_dominated_points_thinned() -> None:
    points = [{"name": str(i), "values": [i, -i], "front": i % 100 == 0} for i in range(3000)]
    thinned = thin_pareto({"metrics": ["a", "b"], "points": points}, limit=500)
    assert thinned is not None
    kept = thinned["points"]
    assert len(kept) == 500
    assert [p for p in points if p["front"]] == [p for p in kept if p["front"]]


def test_a_large_report_draws_a_sample_per_trial_and_says_so(
    random_experiment: Experiment,
) -> None:
    records = synthetic(random_experiment, 3000)
    data = report_data(random_experiment, records, now=T0)
    drawn = data["drawn"]
    assert drawn["of"] == 3000
    assert 500 < drawn["trials"] <= 1000
    assert len(data["history"]["points"]) == 2999  # every trial with an objective
    assert len(data["parallel"]["rows"]) < drawn["trials"]  # the drawn ones that finished
    assert len(data["curves"]["series"]) <= drawn["trials"]
    assert 'id="drawn"' in render_html(data)
    small = report_data(random_experiment, records[:12], now=T0)
    assert small["drawn"] == {"trials": 12, "of": 12}
    assert 'id="drawn"' not in render_html(small)


def test_html_embeds_data_safely_and_names_every_plot(random_experiment: Experiment) -> None:
    records = synthetic(random_experiment)
    records[0] = TrialRecord(**{**records[0].__dict__, "name": "</script><b>x"})
    data = report_data(random_experiment, records, now=T0)
    page = render_html(data)
    assert "</script><b>" not in page.split('id="report-data">')[1].split("</script>")[0]
    assert "\\u003c/script\\u003e" in embed_json({"a": "</script>"})
    for plot in plot_ids(data):
        assert f'id="{plot}"' in page
    # uPlot is inlined as shipped, its banner naming where it comes from; nothing else links out.
    ours = page.replace(asset(VENDOR[0]), "").replace(asset(VENDOR[1]), "")
    assert asset(VENDOR[0]) in page
    assert "http://" not in ours.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in ours
    assert not re.search(r"(src|href)=|url\(", page)


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def run_chromium(binary: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def test_every_plot_renders_in_headless_chromium(
    random_experiment: Experiment, tmp_path: Path
) -> None:
    binary = chromium()
    if binary is None:
        pytest.skip(
            "chromium not found (apt-get install -y chromium); the report is untested in a browser"
        )
    status = ExperimentStatus.model_validate(
        {"phase": "Succeeded", "message": "all 12 trials finished"}
    )
    experiment = random_experiment.model_copy(update={"status": status})
    path = tmp_path / "report.html"
    data = write_report(experiment, synthetic(random_experiment), path, now=T0)
    dom = run_chromium(binary, path.as_uri(), "--dump-dom", "--virtual-time-budget=5000")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-plots-done="true"' in dom.stdout, "the report script did not finish"
    for plot in plot_ids(data):
        match = re.search(rf'<div class="plot" id="{plot}"([^>]*)>', dom.stdout)
        assert match, f"{plot} missing"
        attributes = match.group(1)
        assert "data-error" not in attributes, f"{plot} failed: {attributes}"
        assert 'data-rendered="true"' in attributes, f"{plot} did not render"
        marks = int(re.search(r'data-marks="(\d+)"', attributes).group(1))  # type: ignore[union-attr]
        assert marks > 0, f"{plot} drew nothing"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "cli-report.png"
    result = run_chromium(binary, path.as_uri(), f"--screenshot={shot}", "--window-size=1400,3200")
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 10_000
    os.replace(path, ARTIFACTS / "cli-report.html")


def single_step(experiment: Experiment) -> list[TrialRecord]:
    """Twelve trials of the TPE example: nine reported one value, some without momentum."""
    rng = random.Random(8)
    out = []
    for index in range(12):
        solver = "sgd" if index % 3 else "adam"
        parameters: dict[str, object] = {
            "lr": 10 ** rng.uniform(-4, -1),
            "hidden": rng.choice(range(16, 129, 16)),
            "solver": solver,
        }
        if solver == "sgd":
            parameters["momentum"] = rng.uniform(0.5, 0.99)
        loss = 0.02 + rng.random()
        steps = 5 if index < 3 else 1
        phase = TrialPhase.EARLY_STOPPED if index == 1 else TrialPhase.SUCCEEDED
        out.append(
            TrialRecord(
                name=f"digits-tpe-{index}",
                index=index,
                phase=phase,
                parameters=parameters,  # type: ignore[arg-type]
                objective=loss,
                metrics={"val_loss": loss, "accuracy": 1 - loss / 2},
                start_time=T0,
                completion_time=T0,
                curve=tuple((step, loss + 0.1 / (step + 1)) for step in range(steps)),
            )
        )
    return out


def test_report_data_marks_conditional_axes_and_keeps_loss_axes_above_zero() -> None:
    from tests.cli.conftest import example

    experiment = example("tpe")
    data = report_data(experiment, single_step(experiment), now=T0)
    optional = {d["name"]: d["optional"] for d in data["parallel"]["dimensions"]}
    assert optional == {"lr": False, "hidden": False, "solver": False, "momentum": True}
    assert data["history"]["y"]["min"] >= 0
    assert data["history"]["phases"] == ["Succeeded", "EarlyStopped"]
    assert len(data["curves"]["series"]) == 12
    hidden = next(s for s in data["slices"] if s["name"] == "hidden")
    assert all(float(label).is_integer() for _, label in hidden["x"]["ticks"])


def _labels(dom: str, plot: str) -> list[str]:
    section = dom.split(f'id="{plot}"')[1].split('<div class="plot"', maxsplit=1)[0]
    return re.findall(r'class="tick"[^>]*>([^<]*)</text>', section)


def _round(label: str) -> bool:
    """A tick label of at most three significant digits (``0.25``, ``120``, ``1e-05``)."""
    mantissa = label.lstrip("-").split("e")[0].replace(".", "").strip("0")
    return len(mantissa) <= 3


def test_the_report_draws_round_ticks_legends_single_values_and_unset_parameters(
    tmp_path: Path,
) -> None:
    from tests.cli.conftest import example

    binary = chromium()
    if binary is None:
        pytest.skip("chromium not found (apt-get install -y chromium)")
    experiment = example("tpe")
    path = tmp_path / "report.html"
    write_report(experiment, single_step(experiment), path, now=T0)
    dom = run_chromium(binary, path.as_uri(), "--dump-dom", "--virtual-time-budget=5000")
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    assert 'data-error="' not in page
    # The history, the slices and the curves are uPlot's canvases: their tick labels are
    # recorded on the plot, their legends are HTML. A categorical slice's labels are its values.
    for plot in ("plot-history", "plot-slice-0", "plot-slice-1", "plot-slice-3", "plot-curves"):
        section = page.split(f'id="{plot}"')[1].split('<div class="plot"')[0]
        for axis in ("x", "y"):
            found = re.search(rf'data-{axis}-ticks="([^"]*)"', section)
            assert found, (plot, axis)
            labels = json.loads(html.unescape(found[1]))
            assert labels, (plot, axis)
            assert all(_round(label) for label in labels), (plot, axis, labels)
            if plot == "plot-history":
                assert not any(label.startswith("-") for label in labels)
    solver = page.split('id="plot-slice-2"')[1].split('<div class="plot"')[0]
    found = re.search(r'data-x-ticks="([^"]*)"', solver)
    assert found
    assert json.loads(html.unescape(found[1])) == ["adam", "sgd"]
    history = page.split('id="plot-history"')[1].split('<div class="plot"')[0]
    legend = re.findall(r'class="u-label"[^>]*>([^<]*)<', history)
    assert legend == ["trial", "Succeeded", "EarlyStopped", "best so far"]
    curves = page.split('id="plot-curves"')[1].split('<div class="plot"')[0]
    # A curve per trial (nine of one value, drawn as dots), one early stop marked with a cross.
    assert 'data-marks="13"' in curves
    keys = re.findall(r'class="curve-key curve-key-(\w+)">([^<]*)<', curves)
    assert keys == [
        ("line", "ran to its end (one colour per trial)"),
        ("dot", "one value reported"),
        ("stopped", "stopped early"),
    ]
    parallel = page.split('id="plot-parallel"')[1].split('<div class="plot"')[0]
    assert ">not set</text>" in parallel
    assert 'width="100%"' in parallel


def test_the_vendored_plotting_library_is_as_published_with_its_licence() -> None:
    folder = Path(__file__).resolve().parents[2] / "operator/kubesweep/cli/report/vendor"
    readme = (folder / "README.md").read_text()
    found = re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.MULTILINE)
    recorded = {name.removeprefix("package/dist/"): digest for digest, name in found}
    assert set(recorded) == {Path(name).name for name in VENDOR}
    for name, digest in recorded.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert "MIT License" in (folder / "uPlot.LICENSE").read_text()


def test_the_report_draws_the_lineage_of_promoted_trials(
    random_experiment: Experiment, tmp_path: Path
) -> None:
    """Trials that continue others' training get a lineage plot: a point per trial and a
    link per parent; without parents there is none."""
    binary = chromium()
    if binary is None:
        pytest.skip("chromium not found (apt-get install -y chromium)")
    plain = synthetic(random_experiment)
    assert "plot-lineage" not in plot_ids(report_data(random_experiment, plain, T0))
    parents = {3: "digits-random-0", 5: "digits-random-3", 6: "digits-random-3"}
    records = [dataclasses.replace(r, parent=parents.get(r.index)) for r in plain]
    path = tmp_path / "report.html"
    data = write_report(random_experiment, records, path, now=T0)
    assert "plot-lineage" in plot_ids(data)
    dom = run_chromium(binary, path.as_uri(), "--dump-dom", "--virtual-time-budget=5000")
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'<div class="plot" id="plot-lineage"([^>]*)>', dom.stdout)
    assert match, "the lineage plot is missing"
    assert "data-error" not in match.group(1), match.group(1)
    drawn = len(data["history"]["points"])  # the failed trial has no objective: not drawn
    assert f'data-marks="{drawn + len(parents)}"' in match.group(1), match.group(1)
