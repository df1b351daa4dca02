"""The report as one self-contained HTML file: data, script and style inline.

Nothing is fetched when the file is opened (no CDN, no fonts), so it can be
mailed, attached to a ticket or opened offline. The data is embedded as JSON in
a ``<script type="application/json">`` block with ``<`` escaped, so no trial
name or parameter value can break out of it; the drawing script is
:file:`report.js` beside this module, and the plotting library it uses for the
interactive plots, uPlot, is inlined from :file:`vendor/` (it is small: 51 kB).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from kubesweep.api import Experiment
from kubesweep.cli.ranking import TrialRecord
from kubesweep.cli.report.data import report_data

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1400px;color:#111827;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#6b7280}.grid2{display:flex;flex-wrap:wrap;gap:16px}
.plot{border:1px solid #e5e7eb;border-radius:6px;padding:8px;overflow-x:auto;background:#fff}
.plot h3{font-size:13px;margin:0 0 4px;color:#374151}
.chart .axis{stroke:#9ca3af}
.chart .tick{font-size:10px;fill:#6b7280}.chart .label{font-size:11px;fill:#374151}
.chart .pc-line{fill:none;stroke-width:1.5;opacity:.7}.chart .pc-line.dimmed{opacity:.08}
.chart .pc-line:hover{stroke-width:3;opacity:1}
.chart .brush{fill:#2563eb;fill-opacity:.15;stroke:#2563eb;cursor:ns-resize}
.chart .bar{fill:#2563eb}
.chart .not-set{fill:#9ca3af}.chart .not-set-label{font-style:italic}
.plot-tip{position:absolute;display:none;pointer-events:none;background:#111827;color:#fff;
font-size:12px;padding:2px 6px;border-radius:4px;white-space:nowrap;z-index:10}
.plot-toggle{font-size:12px;color:#374151;display:block;margin:0 0 4px}
.u-legend{font-size:12px}
.curve-legend{font-size:12px;color:#374151;margin:0 0 4px}.curve-key{margin-right:14px}
.curve-key::before{content:"";display:inline-block;width:22px;height:0;margin-right:4px;
vertical-align:middle;border-top:2px solid #374151}
.curve-key-dot::before{width:8px;height:8px;border:0;border-radius:50%;background:#374151}
.curve-key-stopped::before{border-top-style:dashed}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;border-bottom:1px solid #eee;
text-align:left}.empty{color:#6b7280;font-style:italic}
"""


#: uPlot (its minified script, style and licence), vendored beside this module: the plotting
#: library of the interactive plots, inlined into every report and served by the dashboard.
VENDOR = ("vendor/uPlot.iife.min.js", "vendor/uPlot.min.css")


def asset(name: str) -> str:
    """A file of this package: the drawing script, or a vendored one (``vendor/...``)."""
    return resources.files("kubesweep.cli.report").joinpath(name).read_text(encoding="utf-8")


def _script() -> str:
    return asset("report.js")


def embed_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element."""
    text = json.dumps(data, allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sanitize(value: Any) -> Any:
    """NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sanitize(v) for v in value]
    return value


def plot_ids(data: dict[str, Any]) -> list[str]:
    """The id of every plot container the page holds (the browser test checks each)."""
    ids = ["plot-history", "plot-parallel", "plot-importance", "plot-curves"]
    ids += [f"plot-slice-{i}" for i in range(len(data["slices"]))]
    if data["pareto"]:
        ids += [f"plot-pareto-{k}" for k in range(1, len(data["pareto"]["metrics"]))]
    if has_lineage(data):
        ids.append("plot-lineage")
    return ids


def has_lineage(data: dict[str, Any]) -> bool:
    """Whether a trial continues another's training (promotions, pbt): a lineage plot then."""
    return any("parent" in point for point in data["history"]["points"])


LINEAGE_TITLE = "Lineage: each trial linked to the trial whose training it continues"


def _drawn_note(data: dict[str, Any]) -> str:
    """A line saying the per-trial plots draw a sample, when they do."""
    drawn = data.get("drawn")
    if not drawn or drawn["of"] <= drawn["trials"]:
        return ""
    return (
        f'<p class="meta" id="drawn">The plots below draw {drawn["trials"]} of the '
        f"{drawn['of']} trials: the best and an even sample of the others (the history "
        "above draws every trial; <code>kubesweep trials</code> lists them all).</p>"
    )


def _plot(id_: str, title: str) -> str:
    return f'<div class="plot" id="{id_}"><h3>{html.escape(title)}</h3></div>'


def render_html(data: dict[str, Any]) -> str:
    """The page for report data from :func:`~kubesweep.cli.report.data.report_data`."""
    data = _sanitize(data)
    esc = html.escape
    summary = data["summary"]
    metric = data["objective"]["metric"]
    best = summary["best"]
    best_html = (
        f"<p><b>Best trial</b> {esc(best['name'])}: {esc(metric)} = {best['objective']:.6g} "
        + esc(", ".join(f"{k}={v}" for k, v in best["parameters"].items()))
        + "</p>"
        if best
        else (
            f"<p><b>Pareto front</b> {esc(summary['front'])}</p>"
            if summary.get("front")
            else "<p>No best trial yet.</p>"
        )
    )
    steps = best.get("lineage", []) if best else []
    if len(steps) > 1:
        best_html += (
            "<p><b>Lineage</b> "
            + " &rarr; ".join(
                esc(s["name"]) + (f" ({esc(s['perturbation'])})" if s.get("perturbation") else "")
                for s in steps
            )
            + "</p>"
        )
    rows = "".join(
        f"<tr><td>{i}</td><td>{esc(t['name'])}</td><td>{esc(t['phase'])}</td>"
        f"<td>{'-' if t['objective'] is None else format(t['objective'], '.6g')}</td>"
        f"<td>{esc(', '.join(f'{k}={v}' for k, v in t['parameters'].items()))}</td></tr>"
        for i, t in enumerate(summary["top"], start=1)
    )
    slices = "".join(
        _plot(f"plot-slice-{i}", f"{s['name']}{' (log)' if s.get('log') else ''}")
        for i, s in enumerate(data["slices"])
    )
    pareto = ""
    if data["pareto"]:
        names = data["pareto"]["metrics"]
        pareto = (
            "<h2>Pareto front</h2><p class='meta'>Red: trials no other trial beats on every "
            "objective, in the directions the spec gives them.</p>"
            '<div class="grid2">'
            + "".join(
                _plot(f"plot-pareto-{k}", f"{names[0]} vs {names[k]}") for k in range(1, len(names))
            )
            + "</div>"
        )
    lineage_html = ""
    if has_lineage(data):
        lineage_html = f"<h2>Lineage</h2>{_plot('plot-lineage', LINEAGE_TITLE)}"
    counts = ", ".join(f"{n} {p}" for p, n in summary["counts"].items() if n)
    title = f"kubesweep report: {data['experiment']}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{asset(VENDOR[1])}</style><style>{STYLE}</style></head>
<body>
<h1>{esc(title)}</h1>
<p class="meta">{esc(data["objectives"])}
 with {esc(data["algorithm"])} · {esc(summary["phase"])} · {summary["trials"]} trials
 ({esc(counts)}) · generated {esc(data["generated"])}</p>
<p class="meta">{esc(summary["message"])}</p>
{best_html}
<h2>Optimisation history</h2>
<div class="grid2">{_plot("plot-history", f"{metric} per trial, and the best so far (green)")}
{_plot("plot-importance", "Parameter importance (random-forest fANOVA, main effects)")}</div>
{_drawn_note(data)}
<h2>Parallel coordinates</h2>
{_plot("plot-parallel", "Each line a trial; colour: better objective is bluer")}
<h2>Slices</h2><div class="grid2">{slices}</div>
<h2>Intermediate values</h2>
{_plot("plot-curves", f"{metric} per step; dashed with a red cross: stopped early")}
{pareto}
{lineage_html}
<h2>Top trials</h2><table><tr><th>#</th><th>trial</th><th>phase</th><th>{esc(metric)}</th>
<th>parameters</th></tr>{rows}</table>
<script type="application/json" id="report-data">{embed_json(data)}</script>
<script>{asset(VENDOR[0])}</script>
<script>{_script()}</script>
</body></html>
"""


def write_report(
    experiment: Experiment,
    records: Sequence[TrialRecord],
    path: Path,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write the report of ``experiment`` to ``path``; returns the data it shows."""
    data = report_data(experiment, records, now)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(data), encoding="utf-8")
    return data
