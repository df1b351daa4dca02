"""Restart safety and end reasons, against both executors of a plan.

The operator (:mod:`kubesweep.operator.reconciler`, here against an in-memory
API server and suggestion service) and ``kubesweep run``
(:mod:`kubesweep.cli.local.runner`, here with real trial processes and a state
file) carry plans out through one :class:`~kubesweep.planning.executor.Execution`.
Each test below runs against both, through a small :class:`World` each
adapter offers: a pass, a restart that forgets everything in memory, and what
was recorded.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from kubesweep.api import Experiment
from kubesweep.api.suggestion_wire import StopReply, StopRequest, SuggestReply, SuggestRequest
from kubesweep.cli.local.runner import Runner, RunOptions, open_state
from kubesweep.operator.reconciler import ExperimentState
from kubesweep.planning import Plan
from kubesweep.suggestion import registry
from tests.cli.conftest import ROOT
from tests.cli.local_helpers import tiny_manifest
from tests.operator.fakes import Driver, FakeBackend, make_runtime


class World(Protocol):
    """One executor of plans, with its surroundings under the test's control."""

    #: Passes a sweep of a few trials may need before it ends.
    patience: int

    async def step(self) -> Plan | None:
        """One pass (then the surroundings move on: Jobs finish, processes run)."""

    def settled(self, plan: Plan | None) -> bool:
        """Whether the experiment ended and nothing of it is still running."""

    def restart(self) -> None:
        """The executor dies and starts again, remembering nothing but what it recorded."""

    def trials(self) -> list[tuple[int, str]]:
        """Every recorded trial as (index, phase), by index."""

    def status(self) -> dict[str, Any]:
        """The experiment's recorded status, as the API shows it."""

    def parameters(self) -> list[dict[str, Any]]:
        """Every recorded trial's parameters, by index."""

    def request_seeds(self) -> list[int | None]:
        """The seed of every suggestion and stop request so far."""


class AlgorithmBackend(FakeBackend):
    """The suggestion service's answers computed by the algorithms themselves."""

    async def call(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((endpoint, body))
        if endpoint == "stop":
            return registry.stop(StopRequest.model_validate(body)).to_wire()
        return registry.suggest(SuggestRequest.model_validate(body)).to_wire()


class ClusterWorld:
    """The operator's passes against an in-memory API server; Jobs finish after each pass."""

    patience = 40

    def __init__(
        self,
        budget: dict[str, Any],
        *,
        easy_target: bool = False,
        failing: bool = False,
        space: int | None = None,
        seed: int | None = None,
        algorithms: bool = False,
        **_: Any,
    ) -> None:
        spec: dict[str, Any] = {"algorithm": {"name": "random", "seed": seed}}
        if easy_target:
            spec["objective"] = {"target": 0.0015}  # the first trial's loss is 0.001
        self.driver = Driver(budget, **spec)
        if algorithms:
            self.driver.backend = AlgorithmBackend()
            self.driver.rt = make_runtime(self.driver.kube, self.driver.backend)
        self.driver.backend.limit = space
        self.failing = failing

    async def step(self) -> Plan | None:
        plan = await self.driver.step()
        kube = self.driver.kube
        kube.finish_jobs(
            self.driver.now,
            lambda trial: trial["spec"]["parameters"]["lr"],
            fail=set(kube.jobs) if self.failing else set(),
        )
        return plan

    def settled(self, plan: Plan | None) -> bool:
        return plan is not None and plan.end is not None and not plan.stop

    def restart(self) -> None:
        self.driver.rt = make_runtime(self.driver.kube, self.driver.backend)
        self.driver.state = ExperimentState()

    def trials(self) -> list[tuple[int, str]]:
        found = [
            (t["spec"]["index"], (t.get("status") or {}).get("phase", "Pending"))
            for t in self.driver.kube.trials.values()
        ]
        return sorted(found)

    def status(self) -> dict[str, Any]:
        return self.driver.kube.experiment_status

    def parameters(self) -> list[dict[str, Any]]:
        trials = sorted(self.driver.kube.trials.values(), key=lambda t: t["spec"]["index"])
        return [t["spec"]["parameters"] for t in trials]

    def request_seeds(self) -> list[int | None]:
        return [body["algorithm"].get("seed") for _, body in self.driver.backend.calls]


class LocalWorld:
    """``kubesweep run``'s ticks, with trial processes that run for a moment."""

    patience = 1500

    def __init__(
        self,
        budget: dict[str, Any],
        *,
        tmp_path: Path,
        easy_target: bool = False,
        failing: bool = False,
        space: int | None = None,
        seed: int | None = None,
        algorithms: bool = False,
        name: str = "shared",
    ) -> None:
        manifest = tiny_manifest(
            name,
            max_trials=budget["maxTrials"],
            parallel=budget["parallelTrials"],
            steps=1,
            pause=0.0,
            fail_above=-1.0 if failing else 2.0,
            max_failed=budget.get("maxFailedTrials"),
        )
        spec = manifest["spec"]
        spec["algorithm"]["seed"] = seed
        if easy_target:
            spec["objective"]["target"] = 1.5  # every trial's loss is at most 1.49
        if space is not None:
            spec["algorithm"] = {"name": "grid"}
            values = [f"{0.1 * (k + 1):.1f}" for k in range(space)]
            spec["parameters"] = [{"name": "x", "type": "categorical", "values": values}]
        self.experiment = Experiment.model_validate(manifest)
        self.options = RunOptions(state=tmp_path / f"{name}.db", cwd=ROOT, tick_seconds=0.0)
        self.store, _ = open_state(self.experiment, self.options)
        self.seeds: list[int | None] = []
        self.runner = self._watched(Runner(self.experiment, self.store, self.options))

    def _watched(self, runner: Runner) -> Runner:
        """``runner`` with the seed of each of its requests recorded."""
        suggest, ask_to_stop = runner.suggest, runner.ask_to_stop

        async def suggesting(request: SuggestRequest) -> SuggestReply:
            self.seeds.append(request.algorithm.seed)
            return await suggest(request)

        async def asking(request: StopRequest) -> StopReply:
            self.seeds.append(request.algorithm.seed)
            return await ask_to_stop(request)

        runner.suggest = suggesting  # type: ignore[method-assign]
        runner.ask_to_stop = asking  # type: ignore[method-assign]
        return runner

    async def step(self) -> Plan | None:
        plan = self.runner.tick()
        time.sleep(0.02)
        return plan

    def settled(self, plan: Plan | None) -> bool:
        running = self.runner.procs or self.runner._stopping_alive()
        return plan is not None and plan.end is not None and not running

    def restart(self) -> None:
        self.runner._interrupt()
        self.runner = self._watched(Runner(self.experiment, self.store, self.options))
        self.runner.resume()

    def trials(self) -> list[tuple[int, str]]:
        return sorted((t.index, t.status.phase.value) for t in self.store.trials())

    def status(self) -> dict[str, Any]:
        status = self.store.status()
        return {} if status is None else status.to_wire()

    def parameters(self) -> list[dict[str, Any]]:
        return [dict(t.parameters) for t in sorted(self.store.trials(), key=lambda t: t.index)]

    def request_seeds(self) -> list[int | None]:
        return list(self.seeds)

    def close(self) -> None:
        self.runner._interrupt()
        self.store.close()


MakeWorld = Callable[..., World]


@pytest.fixture(params=["cluster", "local"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A factory of worlds of one kind; local ones are closed after the test."""
    made: list[LocalWorld] = []

    def make(budget: dict[str, Any], **options: Any) -> World:
        if request.param == "cluster":
            return ClusterWorld(budget, **options)
        name = "shared" if not made else f"shared-{len(made)}"
        local = LocalWorld(budget, tmp_path=tmp_path, name=name, **options)
        made.append(local)
        return local

    yield make
    for local in made:
        local.close()


async def run_until_end(world: World) -> Plan:
    for _ in range(world.patience):
        plan = await world.step()
        if world.settled(plan):
            assert plan is not None
            return plan
    raise AssertionError(f"no end after {world.patience} passes: {world.status()}")


async def test_max_trials_ends_the_sweep_with_every_trial_succeeded(world: MakeWorld) -> None:
    sweep = world({"maxTrials": 4, "parallelTrials": 2})
    plan = await run_until_end(sweep)
    assert plan.end is not None
    assert plan.end.reason.value == "MaxTrialsReached"
    assert sweep.trials() == [(i, "Succeeded") for i in range(4)]
    assert sweep.status()["phase"] == "Succeeded"
    assert sweep.status()["trials"]["succeeded"] == 4


async def test_failing_trials_end_the_sweep_as_failed(world: MakeWorld) -> None:
    sweep = world({"maxTrials": 10, "parallelTrials": 2, "maxFailedTrials": 1}, failing=True)
    plan = await run_until_end(sweep)
    assert plan.end is not None
    assert plan.end.reason.value == "MaxFailedTrialsReached"
    assert sweep.status()["phase"] == "Failed"
    assert sweep.status()["trials"]["failed"] > 1
    assert len(sweep.trials()) < 10


async def test_a_reached_target_ends_the_sweep_early(world: MakeWorld) -> None:
    sweep = world({"maxTrials": 10, "parallelTrials": 2}, easy_target=True)
    plan = await run_until_end(sweep)
    assert plan.end is not None
    assert plan.end.reason.value == "TargetReached"
    assert sweep.status()["phase"] == "Succeeded"
    assert len(sweep.trials()) < 10


async def test_an_exhausted_space_ends_the_sweep(world: MakeWorld) -> None:
    sweep = world({"maxTrials": 10, "parallelTrials": 2}, space=3)
    plan = await run_until_end(sweep)
    assert plan.end is not None
    assert plan.end.reason.value == "SearchSpaceExhausted"
    assert [i for i, _ in sweep.trials()] == [0, 1, 2]


async def test_restarts_at_any_pass_neither_lose_nor_repeat_a_trial(world: MakeWorld) -> None:
    rng = random.Random(11)
    sweep = world({"maxTrials": 6, "parallelTrials": 3})
    for _ in range(sweep.patience):
        if rng.random() < 0.15:
            sweep.restart()
        plan = await sweep.step()
        if sweep.settled(plan):
            break
    else:
        pytest.fail(f"the sweep did not end: {sweep.status()}")
    assert sweep.trials() == [(i, "Succeeded") for i in range(6)]
    assert sweep.status()["trials"]["succeeded"] == 6


async def test_an_unseeded_experiment_draws_its_seed_once_and_keeps_it(world: MakeWorld) -> None:
    sweep = world({"maxTrials": 5, "parallelTrials": 2}, algorithms=True)
    await sweep.step()
    seed = sweep.status().get("seed")
    assert isinstance(seed, int)
    assert 0 <= seed < 2**31
    rng = random.Random(3)
    for _ in range(sweep.patience):
        if rng.random() < 0.2:
            sweep.restart()
        plan = await sweep.step()
        if sweep.settled(plan):
            break
    else:
        pytest.fail(f"the sweep did not end: {sweep.status()}")
    assert sweep.status()["seed"] == seed
    assert sweep.request_seeds()
    assert set(sweep.request_seeds()) == {seed}


async def test_a_given_seed_is_the_one_recorded_and_sent(world: MakeWorld) -> None:
    sweep = world({"maxTrials": 2, "parallelTrials": 2}, seed=1234, algorithms=True)
    await run_until_end(sweep)
    assert sweep.status()["seed"] == 1234
    assert set(sweep.request_seeds()) == {1234}


async def test_unseeded_experiments_differ_and_each_repeats_from_its_recorded_seed(
    world: MakeWorld,
) -> None:
    budget = {"maxTrials": 3, "parallelTrials": 1}  # one at a time: a history in one order
    first = world(budget, algorithms=True)
    await run_until_end(first)
    second = world(budget, algorithms=True)
    await run_until_end(second)
    assert first.status()["seed"] != second.status()["seed"]
    assert first.parameters() != second.parameters()
    again = world(budget, seed=first.status()["seed"], algorithms=True)
    await run_until_end(again)
    assert again.parameters() == first.parameters()
