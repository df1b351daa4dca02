"""The live view of a local run: a rich panel on a terminal, plain lines elsewhere.

On a terminal the panel shows the running trials, counts, the best trial so
far, elapsed time and what is left of the budget, redrawn after every tick,
with trial events scrolling above it. Piped (CI, tests) it prints one line
per event, and a summary line after each trial that finishes, which is what a
log wants.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kubesweep.api import Experiment, ExperimentPhase, ParameterValue
from kubesweep.cli.failures import HINT_LINES, explain, headline
from kubesweep.cli.local.processes import log_tail
from kubesweep.cli.local.runner import RunningTrial, Snapshot, trials_dir
from kubesweep.cli.local.store import LocalTrial, Store
from kubesweep.cli.output import fmt_duration, fmt_number, fmt_params
from kubesweep.cli.ranking import with_fidelity

#: Phases of a sweep that has ended.
_ENDED = (ExperimentPhase.SUCCEEDED, ExperimentPhase.FAILED)
#: How the runner ends a retry's message.
_RETRY = re.compile(r"\(retry \d+\)\s*$")


def summary_line(snapshot: Snapshot) -> str:
    """Counts, best so far, elapsed and remaining budget, in one line."""
    status = snapshot.status
    counts = status.trials
    budget = snapshot.experiment.spec.budget
    parts = [
        f"{counts.completed}/{budget.max_trials} done",
        f"{counts.running} running",
    ]
    if counts.pending:
        parts.append(f"{counts.pending} pending")
    if counts.failed or counts.metrics_unavailable:
        parts.append(f"{counts.failed + counts.metrics_unavailable} failed")
    if counts.early_stopped:
        parts.append(f"{counts.early_stopped} stopped")
    best = status.best_trial
    metric = snapshot.experiment.spec.objective.metric
    if snapshot.experiment.spec.is_multi_objective:
        size = status.pareto_front_size or 0
        parts.append(f"Pareto front {size} trial{'' if size == 1 else 's'}")
    else:
        parts.append(
            f"best {metric}={fmt_number(best.objective)} ({best.name})" if best else "no best yet"
        )
    parts.append(f"elapsed {fmt_duration(snapshot.elapsed)}")
    if status.phase not in _ENDED:  # an ended sweep has no budget left to speak of
        left = max(0, budget.max_trials - counts.created)
        remaining = f"{left} trial{'' if left == 1 else 's'} left"
        if snapshot.remaining_time is not None:
            remaining += f", {fmt_duration(snapshot.remaining_time)} of maxDuration"
        parts.append(remaining)
    return " · ".join(parts)


def finished_counts(snapshot: Snapshot) -> tuple[object, ...]:
    """What changes when a trial finishes (not when one starts) or the sweep ends.

    Piped, a summary line follows each such change: trial starts are event lines
    of their own, and a summary after each would double every event.
    """
    status = snapshot.status
    counts = status.trials
    best = status.best_trial
    return (
        status.phase,
        counts.completed,
        counts.failed + counts.metrics_unavailable,
        counts.early_stopped,
        None if best is None else (best.name, best.objective),
    )


def panel(
    snapshot: Snapshot,
    parameters_of: Callable[[RunningTrial], Mapping[str, ParameterValue]] | None = None,
) -> RenderableType:
    """The live panel: a table of running trials under the summary line.

    ``parameters_of`` gives what the PARAMETERS column shows of a trial (its
    parameters, by default; the progress display adds the fidelity).
    """
    metric = snapshot.experiment.spec.objective.metric
    table = Table(header_style="bold", expand=False, box=None)
    table.add_column("RUNNING")
    table.add_column("STEP", justify="right")
    table.add_column(metric.upper(), justify="right")
    table.add_column("TIME", justify="right")
    table.add_column("PARAMETERS")
    for trial in snapshot.running:
        table.add_row(
            trial.name,
            "-" if trial.step is None else str(trial.step),
            fmt_number(trial.objective),
            fmt_duration(trial.seconds),
            fmt_params(parameters_of(trial) if parameters_of else trial.parameters, 60),
        )
    head = Text(f"{snapshot.experiment.metadata.name}: {summary_line(snapshot)}", style="bold")
    return Group(head, table) if snapshot.running else head


class Progress:
    """The runner's :class:`~kubesweep.cli.local.runner.Observer` for the terminal."""

    def __init__(
        self,
        console: Console,
        *,
        live: bool | None = None,
        state: Path | None = None,
        experiment: Experiment | None = None,
    ) -> None:
        self.console = console
        self.live_enabled = console.is_terminal if live is None else live
        self._live: Live | None = None
        self._last_finished: tuple[object, ...] = ()
        self._spec = experiment.spec if experiment is not None else None
        self._state = StateReader(state) if state is not None else None
        self._fidelity: dict[str, float | None] = {}

    def __enter__(self) -> Progress:
        if self.live_enabled:
            self._live = Live(console=self.console, refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, error, traceback)
            self._live = None
        if self._state is not None:
            self._state.close()

    def note(self, message: str) -> None:
        """A remark, printed once."""
        self.console.print(f"[dim]note:[/dim] {message}", highlight=False)

    def trial_event(self, name: str, phase: str, message: str) -> None:
        """A trial event line: the first line of the message, which names the cause.

        A retry's message ends, after the output, with its ``(retry N)``; that is kept.
        """
        first = headline(message)
        retry = _RETRY.search(message)
        if retry and retry.group(0) not in first:
            first += f" {retry.group(0)}"
        if phase == "Started":
            first = self._started(name, first)
        elif phase == "MetricsUnavailable":
            first = self._unreported(name, first)
        self.console.print(Text.assemble(f"{name} ", (phase, "bold"), f" {first}" if first else ""))

    def _unreported(self, name: str, message: str) -> str:
        """Why the objective was not read, with a hint from the trial's output."""
        trial = self._state.trial(name) if self._state is not None else None
        if trial is None or self._spec is None or self._state is None:
            return message
        output = self._state.output(name, HINT_LINES)
        return headline(explain(trial.status.reason, message, self._spec, output, local=True))

    def _started(self, name: str, message: str) -> str:
        """The parameters with the fidelity, short, in place of the runner's ``dict`` of them.

        The runner's event names the parameters only; a multi-fidelity sweep runs the
        same ones at several fidelities, so the trial's fidelity is read from the state.
        """
        trial = self._state.trial(name) if self._state is not None else None
        if trial is None:
            return message
        self._fidelity[name] = trial.fidelity
        shown = with_fidelity(self._spec, trial.parameters, trial.fidelity)
        written = repr(dict(trial.parameters))
        if message.startswith(written):
            return fmt_params(shown, 160) + message[len(written) :]
        extra = {k: v for k, v in shown.items() if k not in trial.parameters}
        return f"{message} {fmt_params(extra)}" if extra else message

    def progress(self, snapshot: Snapshot) -> None:
        """Redraw the panel (terminal) or print the summary when it changed (pipe)."""
        if self._live is not None:
            self._live.update(panel(snapshot, self._with_fidelity))
            return
        finished = finished_counts(snapshot)
        if finished != self._last_finished and snapshot.status.trials.completed:
            self._last_finished = finished
            self.console.print(Text(summary_line(snapshot), style="dim"))

    def _with_fidelity(self, trial: RunningTrial) -> Mapping[str, ParameterValue]:
        return with_fidelity(self._spec, trial.parameters, self._fidelity.get(trial.name))


class StateReader:
    """What the runner's events leave out, read from its state file as they arrive.

    The file exists once the first trial starts; it is opened then (the runner
    may have replaced it for ``--fresh`` before).
    """

    def __init__(self, state: Path) -> None:
        self.path = state
        self._store: Store | None = None

    def trial(self, name: str) -> LocalTrial | None:
        """The recorded trial, if the file holds it."""
        if self._store is None:
            if not self.path.exists():
                return None
            self._store = Store(self.path)
        return self._store.trial(name)

    def output(self, name: str, lines: int) -> list[str]:
        """The last lines a trial printed (its log beside the state file)."""
        return log_tail(trials_dir(self.path) / name / "stdout.log", lines)

    def close(self) -> None:
        """Close the file."""
        if self._store is not None:
            self._store.close()
            self._store = None
