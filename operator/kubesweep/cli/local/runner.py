"""The local executor: the operator's plans, carried out with processes and a SQLite file.

Each tick is one :class:`~kubesweep.planning.executor.Execution`, the same
observe, plan, act order the operator follows; the runner supplies its ports:
trials are rows of a SQLite file, workloads are processes, suggestions and
early-stopping answers come from the algorithms in-process.

Resuming. A trial that was running when the runner stopped (Ctrl-C, SIGTERM,
SIGKILL, a crash) is run again from the start under the same name, index and
parameters: its partial metrics are dropped, its attempt count grows, and no
new index is spent on it. Finished trials are never run again. A suggestion
that was received but not yet recorded is simply lost, which is harmless: its
index is still free and the algorithm is asked again.

Differences from the cluster, deliberately: an algorithm that returns nothing
while nothing runs ends the sweep as ``SearchSpaceExhausted`` (on a cluster it
would wait), because nothing local could ever change its answer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

from kubesweep.api import Experiment, ExperimentStatus, Trial, TrialPhase, TrialStatus
from kubesweep.api.suggestion_wire import (
    Assignment,
    StopReply,
    StopRequest,
    SuggestReply,
    SuggestRequest,
)
from kubesweep.cli.local.launch import (
    Launch,
    build_launch,
    describe_launch,
    local_trial,
    python_path_env,
)
from kubesweep.cli.local.processes import (
    TrialProcess,
    detect_gpus,
    free_port,
    kill_leftover,
    process_start_time,
    wait_all,
)
from kubesweep.cli.local.store import LocalTrial, Store
from kubesweep.planning import (
    NewTrial,
    Plan,
    StopOrder,
    SuggestionHealth,
    TrialView,
    gpus_per_pod,
    search_space,
    trial_view,
)
from kubesweep.planning.executor import (
    Event,
    Execution,
    ExecutionMemory,
    Observation,
    Policy,
    TrialFinished,
    TrialStopped,
)
from kubesweep.planning.trial_status import stopped_status
from kubesweep.rendering import RenderError, check_template

T = TypeVar("T")

#: Locally a completed process has written all its metrics: no grace to wait for them.
LOCAL_POLICY = Policy(metrics_grace=timedelta(0), exhaust_when_idle=True)


class RunError(Exception):
    """The run cannot start; the message says why. ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class Interrupted(Exception):  # noqa: N818 - an outcome, not a bug
    """The run was interrupted; its state is saved for ``--resume``."""


@dataclass(frozen=True)
class RunOptions:
    """How to run: where state lives, budget overrides, GPU policy."""

    state: Path
    cwd: Path
    resume: bool = False
    fresh: bool = False
    allow_cpu: bool = False
    parallel: int | None = None
    max_trials: int | None = None
    tick_seconds: float = 0.25
    #: Where ``trialTemplate.checkpoints`` lives locally; None: beside the state file.
    checkpoints: Path | None = None

    @property
    def checkpoint_root(self) -> Path:
        """The local directory standing for the checkpoint claim's mount path."""
        return self.checkpoints if self.checkpoints is not None else checkpoints_dir(self.state)


@dataclass(frozen=True)
class RunningTrial:
    """A running trial as the progress display shows it."""

    name: str
    parameters: dict[str, Any]
    step: int | None
    objective: float | None
    seconds: float


@dataclass(frozen=True)
class Snapshot:
    """What the progress display shows after a tick."""

    experiment: Experiment
    status: ExperimentStatus
    running: tuple[RunningTrial, ...]
    elapsed: timedelta
    remaining_time: timedelta | None


class Observer(Protocol):
    """Receives what the runner does (the progress display, or a test)."""

    def note(self, message: str) -> None:
        """A one-off remark (the image is not used, GPUs assigned, ...)."""

    def trial_event(self, name: str, phase: str, message: str) -> None:
        """A trial started, finished, was stopped or is re-run."""

    def progress(self, snapshot: Snapshot) -> None:
        """The state after a tick."""


def apply_overrides(
    experiment: Experiment, max_trials: int | None, parallel: int | None
) -> tuple[Experiment, list[str]]:
    """The experiment with ``--max-trials``/``--parallel`` applied, and notes about them.

    ``parallelTrials`` is lowered to ``maxTrials`` when an override makes it larger,
    as the API would refuse the combination.
    """
    budget = experiment.spec.budget
    notes = []
    new_max = budget.max_trials if max_trials is None else max_trials
    new_parallel = budget.parallel_trials if parallel is None else parallel
    if new_parallel > new_max:
        notes.append(f"parallelTrials lowered from {new_parallel} to maxTrials={new_max}")
        new_parallel = new_max
    if (new_max, new_parallel) == (budget.max_trials, budget.parallel_trials):
        return experiment, notes
    data = experiment.to_wire()
    data["spec"]["budget"]["maxTrials"] = new_max
    data["spec"]["budget"]["parallelTrials"] = new_parallel
    return Experiment.model_validate(data), notes


def spec_problems(experiment: Experiment) -> list[str]:
    """What the suggestion service and the renderer would refuse, each naming its field."""
    from kubesweep.suggestion import registry

    spec = experiment.spec
    space = search_space(spec)
    found = [f"spec.{p}" for p in registry.validate(space, spec.algorithm, spec.early_stopping)]
    found += [f"spec.{p}" for p in check_template(spec)]
    return found


def gpus_per_trial(experiment: Experiment) -> int:
    """GPUs one trial asks for (limits, else requests, of its pod template)."""
    return int(-(-gpus_per_pod({"spec": experiment.spec.trial_template.job}) // 1))


@contextlib.contextmanager
def state_lock(path: Path) -> Iterator[None]:
    """Hold ``<state>.lock`` so two runners never drive the same state file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"another kubesweep run is using {path}") from None
        yield


def open_state(experiment: Experiment, options: RunOptions) -> tuple[Store, bool]:
    """The state file for this run, created or resumed; ``True`` when resuming."""
    path = options.state
    if path.exists() and options.fresh:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{path}{suffix}")
        shutil.rmtree(trials_dir(path), ignore_errors=True)
        # The run's own checkpoint directory goes with it; one the user named stays,
        # as a claim on a cluster does.
        shutil.rmtree(checkpoints_dir(path), ignore_errors=True)
    store = Store(path)
    recorded = store.experiment_name
    if recorded is None:
        store.set_meta(
            experiment=experiment.metadata.name,
            manifest=experiment.model_dump_json(by_alias=True, exclude_none=True),
        )
        return store, False
    if recorded != experiment.metadata.name:
        store.close()
        raise RunError(f"{path} holds experiment {recorded}, not {experiment.metadata.name}")
    if not options.resume:
        store.close()
        raise RunError(
            f"{path} already holds a run of {recorded}; continue it with --resume, "
            "or start over with --fresh"
        )
    old = Experiment.model_validate(store.manifest)
    for name in ("objective", "algorithm", "parameters", "fidelity"):
        if getattr(old.spec, name) != getattr(experiment.spec, name):
            store.close()
            raise RunError(
                f"spec.{name} differs from the run in {path}; it is immutable once trials "
                "exist (budget may change): start over with --fresh"
            )
    store.set_meta(manifest=experiment.model_dump_json(by_alias=True, exclude_none=True))
    return store, True


def trials_dir(state: Path) -> Path:
    """Where trial logs and metrics files live, beside the state file."""
    return state.parent / f"{state.name}.trials"


def checkpoints_dir(state: Path) -> Path:
    """Where the trials' checkpoints live by default, beside the state file."""
    return state.parent / f"{state.name}.checkpoints"


class _Quiet:
    def note(self, message: str) -> None:
        pass

    def trial_event(self, name: str, phase: str, message: str) -> None:
        pass

    def progress(self, snapshot: Snapshot) -> None:
        pass


@dataclass
class Runner:
    """Runs one experiment to its end (or until interrupted)."""

    experiment: Experiment
    store: Store
    options: RunOptions
    observer: Observer = field(default_factory=_Quiet)
    devices: list[str] = field(default_factory=list)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __post_init__(self) -> None:
        self.spec = self.experiment.spec
        self.name = self.experiment.metadata.name
        self.procs: dict[str, TrialProcess] = {}
        self.stopping: list[TrialProcess] = []
        self.retries: dict[str, int] = {}
        self.free_gpus = list(self.devices)
        self.waiting_gpu: set[str] = set()
        self.memory = ExecutionMemory(health=SuggestionHealth(exhausted=self.store.exhausted))
        self.previous = self.store.status()
        self.described = False
        self.gpus_needed = gpus_per_trial(self.experiment)
        self.base_env = python_path_env(os.environ, sys.executable)
        if self.gpus_needed and not self.devices:
            self.base_env["CUDA_VISIBLE_DEVICES"] = ""
            self.base_env["KUBESWEEP_ALLOW_CPU"] = "1"
        self.now = self.clock()
        self._observed: dict[str, LocalTrial] = {}
        # The spec cannot change during a run: its template is checked once, as the
        # operator checks it once per pass, not again for every trial launched.
        self.template_problems = check_template(self.spec)

    # -- the loop ----------------------------------------------------------------

    def run(self) -> ExperimentStatus:
        """Tick until the experiment ends; raises :class:`Interrupted` on Ctrl-C/SIGTERM."""
        previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            self.resume()
            while True:
                plan = self.tick()
                if plan.end is not None and not self.procs and not self._stopping_alive():
                    return plan.status
                time.sleep(self.options.tick_seconds)
        except KeyboardInterrupt:
            self._interrupt()
            raise Interrupted(str(self.options.state)) from None
        finally:
            signal.signal(signal.SIGTERM, previous_handler)

    def resume(self) -> None:
        """Mark the trials an earlier runner left unfinished to run again; end its processes."""
        for trial in self.store.resume_unfinished():
            if kill_leftover(trial.pid, trial.pid_start):
                self.observer.note(f"stopped a leftover process of {trial.name}")
            self.observer.trial_event(trial.name, "Resumed", "runs again from the start")

    def tick(self) -> Plan:
        """One pass of the shared executor with this runner's ports."""
        self.now = self.clock()
        final = run_synchronously(
            Execution(
                name=self.name,
                spec=self.spec,
                now=self.now,
                ports=self,
                memory=self.memory,
                previous=self.previous,
                policy=LOCAL_POLICY,
            ).run()
        )
        if self.memory.health.exhausted != self.store.exhausted:
            self.store.set_exhausted(self.memory.health.exhausted)
        self.observer.progress(self._snapshot(final.status, self.now))
        return final

    # -- ports: observe ------------------------------------------------------------

    async def observe(self) -> list[Observation]:
        """Every trial; running ones as their process shows them."""
        seen = [self._observe(trial) for trial in self.store.trials()]
        for proc in list(self.stopping):
            if proc.poll():
                self.stopping.remove(proc)
                self._release(proc)
        return seen

    def _observe(self, trial: LocalTrial) -> Observation:
        self._observed[trial.name] = trial
        proc = self.procs.get(trial.name)
        if proc is not None and not trial.finished:
            exited = proc.poll()
            if exited and proc.exit_code != 0 and self._retry(trial, proc):
                return Observation(self._view(trial, trial.status))
            return Observation(
                self._view(trial, trial.status),
                derive=True,
                job=proc.workload(),
                metrics=proc.metrics(),
                pods=proc.pods(),
            )
        if trial.name in self.waiting_gpu:
            waiting = trial.status.model_copy(
                update={"reason": "WaitingForGPU", "message": "waiting for a free GPU"}
            )
            return Observation(self._view(trial, waiting))
        return Observation(self._view(trial, trial.status))

    async def write_trial_status(self, view: TrialView, status: TrialStatus) -> TrialView:
        """Record the status; a finished trial's process is closed and its GPUs freed."""
        trial = self._observed.get(view.name) or self.store.trial(view.name)
        if trial is None:
            return replace(view, status=status)
        self.store.update_trial(replace(trial, status=status))
        if status.phase.is_finished:
            proc = self.procs.pop(trial.name, None)
            if proc is not None:
                self._release(proc)
        return self._view(trial, status)

    def _retry(self, trial: LocalTrial, proc: TrialProcess) -> bool:
        used = self.retries.get(trial.name, 0)
        if used >= self.spec.trial_template.retries:
            return False
        self.retries[trial.name] = used + 1
        self.observer.trial_event(
            trial.name, "Retrying", f"{proc.failure_message(2)} (retry {used + 1})"
        )
        del self.procs[trial.name]
        self._release(proc)
        self._launch(trial, self.clock())
        return True

    def _view(self, trial: LocalTrial, status: TrialStatus) -> TrialView:
        return trial_view(trial, status, has_job=trial.name in self.procs)

    # -- ports: act ----------------------------------------------------------------

    async def stop_trial(self, order: StopOrder, current: TrialStatus | None) -> TrialStatus | None:
        """Record the trial as stopped, then stop its process."""
        trial = self.store.trial(order.name)
        if trial is None or trial.finished:
            return None
        previous = current if current is not None else trial.status
        status = stopped_status(previous, order.reason, order.message, self.now)
        self.store.update_trial(replace(trial, status=status))
        proc = self.procs.pop(order.name, None)
        if proc is not None:
            proc.stop()
            self.stopping.append(proc)
        self.waiting_gpu.discard(order.name)
        return status

    async def ask_to_stop(self, request: StopRequest) -> StopReply:
        """The early-stopping rule's answer, computed in-process."""
        from kubesweep.suggestion import registry

        return registry.stop(request)

    async def suggest(self, request: SuggestRequest) -> SuggestReply:
        """The algorithm's assignments, computed in-process."""
        from kubesweep.suggestion import registry

        return registry.suggest(request)

    async def create_trial(self, new: NewTrial, assignment: Assignment) -> TrialView | None:
        """Record the trial (its index is free unless an earlier run recorded it)."""
        trial = LocalTrial(
            index=new.index,
            name=new.name,
            parameters=assignment.parameters,
            fidelity=assignment.fidelity,
            tags=assignment.tags,
            parent=assignment.parent,
            perturbation=assignment.perturbation,
        )
        if not self.store.add_trial(trial):
            return None
        return self._view(trial, trial.status)

    async def start_workload(self, view: TrialView) -> TrialView | None:
        """Start the trial's process, unless it runs, is finished or waits for a GPU."""
        trial = self.store.trial(view.name)
        if view.name in self.procs or trial is None or trial.finished:
            return None
        if not self._launch(trial, self.now):
            return None
        current = self.store.trial(view.name) or trial
        return self._view(current, current.status)

    async def remove_workload(self, view: TrialView) -> TrialView | None:  # noqa: ARG002
        """Nothing to remove: a local trial's process is gone once it finished."""
        return None

    async def write_experiment_status(self, plan: Plan) -> None:
        """Save the status when it changed; it is also the next tick's previous status."""
        if plan.status_changed:
            self.store.save_status(plan.status)
            self.previous = plan.status

    def emit(self, event: Event) -> None:
        """Tell the progress display about trials that finished or were stopped."""
        match event:
            case TrialFinished(view=view):
                status = view.status
                detail = (
                    f"objective {status.objective:.6g}"
                    if status.phase is TrialPhase.SUCCEEDED and status.objective is not None
                    else status.message or status.reason or ""
                )
                self.observer.trial_event(view.name, status.phase.value, detail)
            case TrialStopped(order=order):
                self.observer.trial_event(order.name, "EarlyStopped", order.message or order.reason)
            case _:
                pass

    def _launch(self, trial: LocalTrial, now: datetime) -> bool:
        gpus: list[str] = []
        if self.gpus_needed and self.devices:
            if len(self.free_gpus) < self.gpus_needed:
                self.waiting_gpu.add(trial.name)
                return False
            gpus, self.free_gpus = (
                self.free_gpus[: self.gpus_needed],
                self.free_gpus[self.gpus_needed :],
            )
        self.waiting_gpu.discard(trial.name)
        directory = trials_dir(self.options.state) / trial.name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        push = free_port()
        obj = local_trial(
            self.experiment,
            trial.index,
            trial.name,
            parameters=dict(trial.parameters),
            fidelity=trial.fidelity,
            tags=dict(trial.tags),
            parent=trial.parent,
            perturbation=trial.perturbation,
        )
        try:
            launch = self._build_launch(obj, directory, push.port)
        except ValueError as error:
            push.stop()
            self.free_gpus.extend(gpus)
            status = TrialStatus(
                phase=TrialPhase.FAILED,
                reason="InvalidTemplate",
                message=str(error)[:4096],
                completion_time=now,
            )
            self.store.update_trial(replace(trial, status=status))
            self.observer.trial_event(trial.name, "Failed", str(error))
            return False
        if not self.described:
            self.described = True
            self.observer.note(describe_launch(launch, self.options.cwd))
            if launch.skipped_env:
                self.observer.note(
                    "env entries without a literal value are not available locally: "
                    + ", ".join(launch.skipped_env)
                )
        proc = TrialProcess(
            trial.name,
            launch,
            self.spec.objective,
            self.options.cwd,
            push,
            gpus=tuple(gpus),
        )
        proc.start()
        self.procs[trial.name] = proc
        pid = proc.pid
        self.store.update_trial(
            replace(
                trial,
                attempts=trial.attempts + 1,
                pid=pid,
                pid_start=None if pid is None else process_start_time(pid),
            )
        )
        where = f" on GPU {','.join(gpus)}" if gpus else ""
        self.observer.trial_event(trial.name, "Started", f"{dict(trial.parameters)}{where}")
        return True

    def _build_launch(self, trial: Trial, directory: Path, push_port: int) -> Launch:
        """The trial's process; raises ``RenderError`` for the template's problems."""
        if self.template_problems:
            raise RenderError("; ".join(self.template_problems))
        return build_launch(
            self.experiment,
            trial,
            directory,
            push_port=push_port,
            base_env=self.base_env,
            template_checked=True,
            checkpoint_root=self.options.checkpoint_root.resolve(),
        )

    def _release(self, proc: TrialProcess) -> None:
        proc.close()
        self.free_gpus.extend(g for g in proc.gpus if g not in self.free_gpus)

    def _stopping_alive(self) -> bool:
        return any(not proc.poll() for proc in self.stopping)

    def _interrupt(self) -> None:
        everything = [*self.procs.values(), *self.stopping]
        for proc in everything:
            proc.stop()
        wait_all(everything, timeout=5.0)
        self.procs.clear()
        self.stopping.clear()

    # -- display -----------------------------------------------------------------

    def _snapshot(self, status: ExperimentStatus, now: datetime) -> Snapshot:
        running = []
        for name, proc in self.procs.items():
            metrics = proc.metrics()
            trial = self.store.trial(name)
            running.append(
                RunningTrial(
                    name=name,
                    parameters=dict(trial.parameters) if trial else {},
                    step=proc.latest_step(),
                    objective=metrics.objective,
                    seconds=(now - proc.started).total_seconds(),
                )
            )
        start = status.start_time or now
        deadline = self.spec.budget.duration
        remaining = None if deadline is None else max(timedelta(0), start + deadline - now)
        return Snapshot(self.experiment, status, tuple(running), now - start, remaining)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_synchronously(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never suspends, without an event loop.

    Every port of the runner is a plain blocking call behind an ``async`` signature
    (the executor is shared with the operator, whose ports do suspend), so one
    ``send`` runs the whole pass. Ctrl-C and SIGTERM reach the runner as they did
    before: no loop installs handlers of its own or turns them into cancellation.
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("a port of the local runner suspended; it has no event loop")


def run_experiment(
    experiment: Experiment, options: RunOptions, observer: Observer | None = None
) -> tuple[ExperimentStatus, list[LocalTrial]]:
    """Validate, open the state, check GPUs, run; the final status and every trial.

    Raises :class:`RunError` (exit 2) for what must be fixed before running and
    :class:`Interrupted` when stopped early.
    """
    observer = observer or _Quiet()
    experiment, notes = apply_overrides(experiment, options.max_trials, options.parallel)
    for note in notes:
        observer.note(note)
    problems = spec_problems(experiment)
    if problems:
        raise RunError("\n".join(problems))
    if experiment.spec.trial_template.job is None:
        raise RunError(
            "spec.trialTemplate: kubesweep run runs trials whose template is a Job "
            "(trialTemplate.job), one local process each; a JobSet or custom-resource trial "
            "runs on a cluster (kubesweep create)"
        )
    needed = gpus_per_trial(experiment)
    devices = detect_gpus() if needed else []
    if needed and len(devices) < needed:
        if not options.allow_cpu:
            have = f"{len(devices)} GPU(s)" if devices else "no GPU (nvidia-smi -L finds none)"
            raise RunError(
                f"each trial of {experiment.metadata.name} asks for {needed} GPU(s) "
                f"(nvidia.com/gpu in trialTemplate), and this machine has {have}; run it on a "
                "cluster, or pass --allow-cpu to run the trials without a GPU"
            )
        observer.note(
            f"no GPU for trials asking for {needed}: running them on the CPU "
            "(CUDA_VISIBLE_DEVICES is empty, KUBESWEEP_ALLOW_CPU=1)"
        )
        devices = []
    elif needed:
        observer.note(f"GPUs {', '.join(devices)}: {needed} per trial, each trial its own")
    with state_lock(options.state):
        store, resumed = open_state(experiment, options)
        try:
            if resumed:
                observer.note(f"resuming from {options.state}")
            runner = Runner(experiment, store, options, observer, devices)
            status = runner.run()
            return status, store.trials()
        finally:
            store.close()
