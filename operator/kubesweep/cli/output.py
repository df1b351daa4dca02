"""Output like kubectl's: ``-o table`` (the default), ``-o yaml``, ``-o json``.

Formatting helpers are pure (values in, strings or rich tables out) so tests
can pin them; only :func:`emit` writes to the console.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from kubesweep.api import ParameterValue, TrialPhase
from kubesweep.cli.ranking import TrialRecord

FORMATS = ("table", "yaml", "json")

_PHASE_STYLE = {
    TrialPhase.SUCCEEDED: "green",
    TrialPhase.FAILED: "red",
    TrialPhase.METRICS_UNAVAILABLE: "red",
    TrialPhase.EARLY_STOPPED: "yellow",
    TrialPhase.RUNNING: "cyan",
    TrialPhase.PENDING: "dim",
}


def fmt_number(value: float | None, digits: int = 6) -> str:
    """A metric value: ``-`` when absent, else ``digits`` significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def fmt_value(value: ParameterValue | None) -> str:
    """A parameter value, short: floats to 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_fidelity(value: float | None) -> str:
    """A fidelity: a whole number without its ``.0``."""
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else fmt_value(value)


def fmt_params(parameters: Mapping[str, ParameterValue], limit: int = 80) -> str:
    """``a=1 b=0.01`` cut to ``limit`` characters."""
    text = " ".join(f"{k}={fmt_value(v)}" for k, v in parameters.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt_duration(value: timedelta | float | None) -> str:
    """``1h2m``, ``3m4s`` or ``5s``, like kubectl's ages."""
    if value is None:
        return "-"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``moment`` was."""
    if moment is None:
        return "-"
    now = now or datetime.now(UTC)
    return fmt_duration(now - moment)


def phase_text(phase: TrialPhase | str) -> str:
    """A phase with its colour markup."""
    try:
        style = _PHASE_STYLE[TrialPhase(phase)]
    except ValueError:
        return str(phase)
    return f"[{style}]{TrialPhase(phase).value}[/{style}]"


def trials_table(
    records: Sequence[TrialRecord],
    *,
    objective: str,
    metrics: Sequence[str] = (),
    parameters: Sequence[str] = (),
    fidelity: str | None = None,
    title: str | None = None,
    ranked: bool = False,
    lineage: bool = False,
) -> Table:
    """A table of trials: rank, name, phase, objective, metrics, parameters, duration.

    ``fidelity`` names the fidelity parameter of a multi-fidelity sweep, shown after
    the parameters; ``lineage`` adds each trial's parent (the trial it continued).
    """
    table = Table(title=title, header_style="bold")
    if ranked:
        table.add_column("#", justify="right")
    table.add_column("TRIAL")
    table.add_column("PHASE")
    table.add_column(objective.upper(), justify="right")
    for metric in metrics:
        table.add_column(metric.upper(), justify="right")
    for parameter in parameters:
        table.add_column(parameter, justify="right")
    if fidelity is not None:
        table.add_column(fidelity, justify="right")
    if lineage:
        table.add_column("PARENT")
    table.add_column("DURATION", justify="right")
    for position, record in enumerate(records, start=1):
        row = [str(position)] if ranked else []
        row += [record.name, phase_text(record.phase), fmt_number(record.objective)]
        row += [fmt_number(record.metrics.get(m)) for m in metrics]
        row += [fmt_value(record.parameters.get(p)) for p in parameters]
        if fidelity is not None:
            row.append(fmt_fidelity(record.fidelity))
        if lineage:
            row.append(record.parent or "-")
        row.append(fmt_duration(record.duration))
        table.add_row(*row)
    return table


def to_plain(value: Any) -> Any:
    """``value`` with datetimes as RFC 3339 text and tuples as lists, for YAML/JSON."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def render_data(data: Any, fmt: str) -> str:
    """``data`` as YAML or JSON text."""
    plain = to_plain(data)
    if fmt == "json":
        return json.dumps(plain, indent=2, sort_keys=False) + "\n"
    if fmt == "yaml":
        return str(yaml.safe_dump(plain, sort_keys=False, default_flow_style=False))
    raise ValueError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")


def emit(console: Console, data: Any, fmt: str) -> None:
    """Print ``data`` as YAML or JSON, without rich markup or wrapping."""
    console.file.write(render_data(data, fmt))
    console.file.flush()
