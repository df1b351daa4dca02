"""The ``kubesweep`` command: run sweeps locally, follow and compare them on a cluster.

Exit codes: 0 success (for ``run``: the experiment Succeeded), 1 the
experiment Failed or a cluster call failed, 2 a bad manifest or usage (the
message names the field), 130 interrupted (state saved for ``--resume``).

Commands that read results (``describe``, ``trials``, ``best``, ``logs``,
``report``) work on a cluster by default and on a local run's state file with
``--state FILE`` (or ``--local`` for the default file of the experiment).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from kubesweep.api import Direction, Experiment, ManifestError, TrialPhase, load_experiments
from kubesweep.cli import display
from kubesweep.cli.experiment_sources import (
    LocalRuns,
    LocalSource,
    NotFoundError,
    Source,
    default_state,
)
from kubesweep.cli.failures import HINT_LINES
from kubesweep.cli.output import FORMATS, emit
from kubesweep.cli.ranking import (
    SORT_KEYS,
    best_records,
    is_known_sort_key,
    rank,
    sort_records,
)
from kubesweep.cli.sections import SectionedGroup

F = TypeVar("F", bound=Callable[..., Any])

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)
if not console.is_terminal and "COLUMNS" not in os.environ:
    console.width = 160  # piped into a log: do not squeeze tables into 80 columns


def fail(message: str, code: int = 1) -> None:
    """Print an error and exit."""
    errors.print(f"[red]error:[/red] {message}")
    sys.exit(code)


def load_manifest(path: str) -> Experiment:
    """The one Experiment of a manifest file; exit 2 with field-named problems otherwise."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror}", 2)
    try:
        experiments = load_experiments(text, source=path)
    except ManifestError as error:
        fail(f"{path} is not a valid Experiment:\n  " + "\n  ".join(error.problems), 2)
    if len(experiments) != 1:
        fail(f"{path} must hold exactly one Experiment, found {len(experiments)}", 2)
    return experiments[0]


@dataclass(frozen=True)
class Where:
    """Where a reader reads from: the values of :func:`cluster_options`."""

    kubeconfig: str | None
    context: str | None
    namespace: str | None
    state: Path | None
    local: bool


def cluster_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--kubeconfig``, ``--context``, ``-n``, ``--state`` and ``--local``: every reader's.

    The command receives them together as ``where``, for :func:`open_source`.
    """

    @functools.wraps(func)
    def wrapper(
        *args: Any,
        kubeconfig: str | None,
        context: str | None,
        namespace: str | None,
        state: Path | None,
        local: bool,
        **kwargs: Any,
    ) -> Any:
        where = Where(kubeconfig, context, namespace, state, local)
        return func(*args, where=where, **kwargs)

    options = [
        click.option(
            "--kubeconfig", envvar=None, help="Path of the kubeconfig (else $KUBECONFIG)."
        ),
        click.option("--context", help="The kubeconfig context to use."),
        click.option("-n", "--namespace", help="Namespace (else the context's)."),
        click.option(
            "--state",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Read a local run's state file instead of a cluster.",
        ),
        click.option(
            "--local",
            is_flag=True,
            help="Read the local runs of this directory (.kubesweep/EXP.db).",
        ),
    ]
    command: Callable[..., Any] = wrapper
    for option in reversed(options):
        command = option(command)
    return command


def open_source(
    where: Where, *, experiment: str | None = None, all_namespaces: bool = False
) -> Source:
    """A local state file or the cluster, as the options say."""
    state = where.state
    if state is None and where.local and experiment:
        state = default_state(experiment)
    try:
        if state is not None:
            return LocalSource(state)
        if where.local:
            return LocalRuns()
        from kubesweep.cli.cluster import ClusterSource
        from kubesweep.cli.kube import Kube

        kube = Kube.connect(where.kubeconfig, where.context, where.namespace)
        return ClusterSource(kube, where.namespace, all_namespaces)
    except Exception as error:  # not found, no kubeconfig, API errors: one line
        fail(str(error))
    raise AssertionError  # unreachable: fail exits


def guarded(func: F) -> F:
    """Turn not-found and API errors into one line and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from kubesweep.cli.kube import KubeError

        try:
            return func(*args, **kwargs)
        except (NotFoundError, KubeError) as error:
            fail(str(error))

    return wrapper  # type: ignore[return-value]


output_option = click.option(
    "-o", "--output", type=click.Choice(FORMATS), default="table", show_default=True
)


#: The help's groups of commands: what runs here, what reads results, what changes a cluster.
SECTIONS = (
    ("Run on this machine", ("run", "validate")),
    (
        "Read results (a cluster; a local run with --local or --state)",
        ("get", "describe", "trials", "watch", "logs", "best", "report", "dashboard"),
    ),
    ("Change a cluster", ("create", "delete")),
)


@click.group(
    cls=SectionedGroup,
    sections=SECTIONS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="kubesweep")
def main() -> None:
    """Hyperparameter sweeps: run an Experiment locally, or follow one on a cluster."""


# -- run ------------------------------------------------------------------------


@main.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@click.option("--resume", is_flag=True, help="Continue the run recorded in the state file.")
@click.option("--fresh", is_flag=True, help="Discard the recorded run and start over.")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    help="State file (default .kubesweep/<experiment>.db).",
)
@click.option(
    "--workdir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Directory the trials run in (default: here, or the manifest's tree if it holds "
    "the trial's program).",
)
@click.option(
    "--checkpoints",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory standing for trialTemplate.checkpoints' claim (default: beside the "
    "state file, <state>.checkpoints).",
)
@click.option("--allow-cpu", is_flag=True, help="Run a GPU experiment on a machine without GPUs.")
@click.option("--parallel", type=click.IntRange(min=1), help="Override budget.parallelTrials.")
@click.option("--max-trials", type=click.IntRange(min=1), help="Override budget.maxTrials.")
@click.option("--no-live", is_flag=True, help="Plain lines instead of the live panel.")
def run(
    *,
    manifest: str,
    resume: bool,
    fresh: bool,
    state: Path | None,
    workdir: Path | None,
    checkpoints: Path | None,
    allow_cpu: bool,
    parallel: int | None,
    max_trials: int | None,
    no_live: bool,
) -> None:
    """Run MANIFEST's Experiment on this machine: trials are local processes."""
    from kubesweep.cli.local.progress import Progress
    from kubesweep.cli.local.runner import Interrupted, RunError, RunOptions, run_experiment
    from kubesweep.cli.local.workdir import choose_workdir

    experiment = load_manifest(manifest)
    if resume and fresh:
        fail("--resume and --fresh exclude each other", 2)
    path = state or default_state(experiment.metadata.name)
    if workdir is None:
        choice = choose_workdir(experiment, Path(manifest), Path.cwd())
        workdir = choice.directory
        if choice.note:
            console.print(Text.assemble(("note:", "dim"), f" {choice.note}"), soft_wrap=True)
    options = RunOptions(
        state=path,
        cwd=workdir.resolve(),
        resume=resume,
        fresh=fresh,
        allow_cpu=allow_cpu,
        parallel=parallel,
        max_trials=max_trials,
        checkpoints=None if checkpoints is None else checkpoints.resolve(),
    )
    try:
        live = False if no_live else None
        with Progress(console, live=live, state=path, experiment=experiment) as progress:
            status, trials = run_experiment(experiment, options, progress)
    except RunError as error:
        fail(str(error), error.code)
    except Interrupted:
        again = f"kubesweep run {manifest} --resume" + (f" --state {state}" if state else "")
        mark_interrupted(path, f"interrupted; continue with: {again}")
        errors.print(f"interrupted; state saved in {path}. Continue with: {again}")
        sys.exit(130)
    source = LocalSource(path)
    done = source.experiment(experiment.metadata.name)
    records = rank(source.trials(done), done.spec.objective.direction)
    title = f"{done.metadata.name}: trials ranked by {done.spec.objective.metric}"
    console.print(display.experiment_trials_table(done, records, title=title, ranked=True))
    if done.status is not None and done.status.pareto_front:
        from kubesweep.cli.front import front_table

        console.print(front_table(done, done.status))
    outputs = {
        r.name: source.log_lines(r.name, HINT_LINES)
        for r in records
        if r.phase is TrialPhase.METRICS_UNAVAILABLE
    }
    failures = display.failure_summary(done, records, outputs, local=True)
    if failures is not None:
        console.print(failures)
    console.print(display.end_line(status, first_line=failures is not None))
    del trials
    sys.exit(0 if status.phase.value == "Succeeded" else 1)


def mark_interrupted(state: Path, message: str) -> None:
    """Record in the state file that the run stopped, so readers show nothing running."""
    from kubesweep.cli.local.store import Store

    store = Store(state)
    try:
        store.mark_interrupted(message)
    finally:
        store.close()


def checked_manifest(path: str) -> Experiment:
    """The manifest's Experiment after the checks of the API server and the suggestion service."""
    from kubesweep.cli.local.runner import spec_problems

    experiment = load_manifest(path)
    problems = spec_problems(experiment)
    if problems:
        fail(f"{path} is not a valid Experiment:\n  " + "\n  ".join(problems), 2)
    return experiment


@main.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
def validate(manifest: str) -> None:
    """Check MANIFEST as the API server and the suggestion service would."""
    experiment = checked_manifest(manifest)
    console.print(f"{manifest}: experiment {experiment.metadata.name} is valid")


# -- cluster changes -------------------------------------------------------------


def kube_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--kubeconfig``, ``--context`` and ``-n``: the commands that change a cluster."""
    options = [
        click.option("--kubeconfig", help="Path of the kubeconfig (else $KUBECONFIG)."),
        click.option("--context", help="The kubeconfig context to use."),
        click.option(
            "-n", "--namespace", help="Namespace (else the manifest's, or the context's)."
        ),
    ]
    command: Callable[..., Any] = func
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False))
@kube_options
@guarded
def create(
    *, manifest: str, kubeconfig: str | None, context: str | None, namespace: str | None
) -> None:
    """Create MANIFEST's Experiment on a cluster, after the checks validate makes."""
    from kubesweep.cli.cluster import create_experiment
    from kubesweep.cli.kube import Kube

    experiment = checked_manifest(manifest)
    own = experiment.metadata.namespace
    if namespace and own and own != namespace:
        fail(f"{manifest} is for namespace {own}, not {namespace}: drop -n or change it", 2)
    kube = Kube.connect(kubeconfig, context, namespace)
    created = create_experiment(kube, experiment, namespace or kube.namespace)
    where = created.metadata.namespace or namespace or kube.namespace
    console.print(f"experiment.kubesweep.io/{created.metadata.name} created in namespace {where}")


@main.command()
@click.argument("name")
@kube_options
@guarded
def delete(
    *, name: str, kubeconfig: str | None, context: str | None, namespace: str | None
) -> None:
    """Delete experiment NAME from a cluster, with its trials and their Jobs."""
    from kubesweep.cli.cluster import delete_experiment
    from kubesweep.cli.kube import Kube

    kube = Kube.connect(kubeconfig, context, namespace)
    where = namespace or kube.namespace
    delete_experiment(kube, where, name)
    console.print(f"experiment.kubesweep.io/{name} deleted from namespace {where}")


# -- readers --------------------------------------------------------------------


@main.command()
@click.argument("name", required=False)
@cluster_options
@click.option("-A", "--all-namespaces", is_flag=True, help="Experiments of every namespace.")
@output_option
@guarded
def get(
    *,
    name: str | None,
    where: Where,
    all_namespaces: bool,
    output: str,
) -> None:
    """List experiments with phase, best objective and progress."""
    source = open_source(where, experiment=name, all_namespaces=all_namespaces)
    found = [source.experiment(name)] if name else source.experiments()
    if isinstance(source, LocalRuns) and not found:
        errors.print(
            f"no local runs in {source.directory}/ (kubesweep run MANIFEST starts one here)"
        )
        return
    if output != "table":
        emit(console, display.list_wire(found), output)
        return
    console.print(display.experiments_table(found, show_namespace=all_namespaces))


@main.command()
@click.argument("name")
@cluster_options
@click.option("--tail", default=20, show_default=True, help="Log lines of each failed trial.")
@guarded
def describe(
    *,
    name: str,
    where: Where,
    tail: int,
) -> None:
    """Best trial, parameters, conditions and failures of experiment NAME."""
    source = open_source(where, experiment=name)
    experiment = source.experiment(name)
    records = source.trials(experiment)
    logs = {}
    for record in display.failed(records)[:3]:
        try:
            logs[record.name] = source.log(record.name, tail)
        except Exception as error:
            logs[record.name] = f"(log unavailable: {error})"
    local = isinstance(source, LocalSource)
    console.print(display.describe(experiment, records, logs, local=local))


@main.command()
@click.argument("name")
@cluster_options
@click.option(
    "--sort-by",
    default="objective",
    show_default=True,
    help=f"One of {', '.join(SORT_KEYS)}, or a metric or parameter name.",
)
@click.option("--desc", is_flag=True, help="Reverse the order.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Only the first N in that order (an experiment of 100,000 trials is no table).",
)
@output_option
@guarded
def trials(
    *,
    name: str,
    where: Where,
    sort_by: str,
    desc: bool,
    limit: int | None,
    output: str,
) -> None:
    """The trials of experiment NAME with their metrics, sorted."""
    source = open_source(where, experiment=name)
    experiment = source.experiment(name)
    records = source.trials(experiment)
    if records and not is_known_sort_key(sort_by, records):
        fail(f"--sort-by {sort_by}: not one of {', '.join(SORT_KEYS)}, a metric or a parameter", 2)
    ordered = sort_records(records, sort_by, experiment.spec.objective.direction, descending=desc)
    shown = ordered[:limit] if limit is not None else ordered
    if output != "table":
        emit(console, [r.to_dict() for r in shown], output)
        return
    ranked = sort_by == "objective" and not desc
    console.print(display.experiment_trials_table(experiment, shown, ranked=ranked))
    if len(shown) < len(ordered):
        errors.print(f"{len(shown)} of {len(ordered)} trials shown (--limit)")


@main.command()
@click.argument("name")
@cluster_options
@click.option("--interval", default=2.0, show_default=True, help="Seconds between refreshes.")
@guarded
def watch(
    *,
    name: str,
    where: Where,
    interval: float,
) -> None:
    """Follow experiment NAME until it ends; exit 0 if it Succeeded, 1 if it Failed."""
    from rich.live import Live

    source = open_source(where, experiment=name)
    last = ""
    with Live(console=console, refresh_per_second=2, auto_refresh=False) as live:
        while True:
            experiment = source.experiment(name)
            records = source.trials(experiment)
            if console.is_terminal:
                live.update(display.watch_panel(experiment, records), refresh=True)
            else:
                line = display.progress_line(experiment)
                if line != last:
                    console.print(line)
                    last = line
            status = experiment.status
            if status is not None and status.phase.value in ("Succeeded", "Failed"):
                break
            time.sleep(interval)
    assert status is not None
    console.print(display.end_line(status))
    sys.exit(0 if status.phase.value == "Succeeded" else 1)


@main.command()
@click.argument("trial")
@cluster_options
@click.option("--tail", type=int, help="Only the last N lines.")
@guarded
def logs(
    *,
    trial: str,
    where: Where,
    tail: int | None,
) -> None:
    """The output of TRIAL (its primary container, or its local process)."""
    experiment = trial.rsplit("-", 1)[0] if "-" in trial else None
    source = open_source(where, experiment=experiment)
    console.file.write(source.log(trial, tail))


def _best_of_several(experiment: Experiment, output: str, configmap: str | None) -> None:
    """``kubesweep best`` with several objectives: the Pareto front, not one trial."""
    from kubesweep.cli.front import front_result

    name = experiment.metadata.name
    if output == "env" or configmap:
        fail(
            f"experiment {name} has several objectives, so no one best trial: -o env and "
            "--to-configmap need one; read the Pareto front with -o yaml or -o json",
            2,
        )
        return
    result = front_result(experiment)
    if result is None:
        fail(f"experiment {name} has no trial on its Pareto front yet")
        return
    emit(console, result, output)


def _best_few(
    source: Any, experiment: Experiment, top: int, output: str, configmap: str | None
) -> None:
    """``kubesweep best --top N``: the N best succeeded trials, ranked like ``trials``."""
    name = experiment.metadata.name
    if output == "env" or configmap:
        fail("--top above 1 gives a list: read it with -o yaml or -o json", 2)
        return
    if experiment.spec.is_multi_objective:
        fail(
            f"experiment {name} has several objectives, so no ranking by one: "
            "`kubesweep best` without --top gives the Pareto front",
            2,
        )
        return
    ranked = best_records(source.trials(experiment), experiment.spec, top)
    if not ranked:
        fail(f"experiment {name} has no succeeded trial with its objective yet")
        return
    emit(console, [display.ranked_result(experiment, r) for r in ranked], output)


@main.command()
@click.argument("name")
@cluster_options
@click.option("-o", "--output", type=click.Choice(["yaml", "json", "env"]), default="yaml")
@click.option("--to-configmap", "configmap", help="Also store the parameters in this ConfigMap.")
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="The N best trials, best first, as a list (reads every trial; yaml or json).",
)
@guarded
def best(
    *,
    name: str,
    where: Where,
    output: str,
    configmap: str | None,
    top: int,
) -> None:
    """The winning parameters of experiment NAME, ready to paste or to mount."""
    source = open_source(where, experiment=name)
    experiment = source.experiment(name)
    if top > 1:
        _best_few(source, experiment, top, output, configmap)
        return
    if experiment.spec.is_multi_objective:
        _best_of_several(experiment, output, configmap)
        return
    result = display.best_result(experiment)
    if result is None:
        fail(f"experiment {name} has no best trial yet")
        return
    if output == "env":
        console.file.write(display.best_env(experiment, result))
    else:
        emit(console, result, output)
    if configmap:
        from kubesweep.cli.cluster import ClusterSource

        if not isinstance(source, ClusterSource):
            fail("--to-configmap needs a cluster (not --state)", 2)
            return
        body = display.best_configmap(experiment, result, configmap, source.namespace)
        display.apply_configmap(source.kube, body)
        errors.print(f"configmap/{configmap} written in namespace {source.namespace}")


@main.command()
@click.argument("name")
@cluster_options
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HTML file to write (default <experiment>-report.html).",
)
@guarded
def report(
    *,
    name: str,
    where: Where,
    out: Path | None,
) -> None:
    """Write a self-contained HTML report of experiment NAME (plots, importance, Pareto)."""
    from kubesweep.cli.report.html import write_report

    source = open_source(where, experiment=name)
    experiment = source.experiment(name)
    records = source.trials(experiment)
    path = out or Path(f"{name}-report.html")
    write_report(experiment, records, path)
    console.print(f"wrote {path} ({len(records)} trials)")


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".kubesweep"),
    show_default=True,
    help="Folder of the local runs' state files.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8686, show_default=True, type=click.IntRange(0, 65535))
@click.option("--prefix", default="/", show_default=True, help="URL prefix behind a proxy.")
@click.option(
    "--cluster",
    is_flag=True,
    help="Follow the Experiments of a cluster's namespace (through the kubeconfig) instead.",
)
@click.option("--kubeconfig", help="With --cluster: path of the kubeconfig (else $KUBECONFIG).")
@click.option("--context", help="With --cluster: the kubeconfig context to use.")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="With --cluster: a namespace to follow, repeatable (else the context's).",
)
@click.option(
    "-A", "--all-namespaces", is_flag=True, help="With --cluster: follow every namespace."
)
def dashboard(
    *,
    directory: Path,
    host: str,
    port: int,
    prefix: str,
    cluster: bool,
    kubeconfig: str | None,
    context: str | None,
    namespaces: tuple[str, ...],
    all_namespaces: bool,
) -> None:
    """Serve a read-only web UI that follows sweeps live, local or on a cluster."""
    try:
        from kubesweep.cli.dashboard.feeds import Feed
        from kubesweep.cli.dashboard.server import normal_prefix, serve
    except ImportError as error:
        fail(f"the dashboard needs aiohttp ({error}): pip install 'kubesweep[cli]'", 2)
        return
    source: Path | Feed = directory
    if cluster:
        from kubesweep.cli.dashboard.cluster_feed import ClusterFeed
        from kubesweep.cli.kube import Kube, KubeError

        try:
            kube = Kube.connect(kubeconfig, context, namespaces[0] if namespaces else None)
        except KubeError as error:
            fail(str(error), 2)
            return
        source = ClusterFeed(kube, namespaces, all_namespaces=all_namespaces)
        errors.print(f"following {source.describe()} of {kube.config.server}")
    errors.print(
        f"kubesweep dashboard on http://{host}:{port}{normal_prefix(prefix)} (Ctrl-C stops)"
    )
    from aiohttp import ClientError

    from kubesweep.cli.kube import KubeError

    try:
        serve(source, host, port, prefix)
    except (KubeError, ClientError, OSError) as error:  # a port taken, a cluster out of reach
        fail(f"cannot serve the dashboard: {error}")


def direction_of(experiment: Experiment) -> Direction:
    """The objective's direction."""
    return experiment.spec.objective.direction


if __name__ == "__main__":  # pragma: no cover
    main()
