"""The intake: tokens refused or accepted, repeats dropped, writes coalesced and bounded."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from kubesweep.api import Objective
from kubesweep.api.status import MAX_CURVE_POINTS
from kubesweep.metrics.observation import Observation
from kubesweep.metrics.reduce import MetricStats, SeriesReducer
from kubesweep.metrics.tokens import authorization, trial_token
from kubesweep.metrics.wire import MAX_BATCH_BYTES, Batch, Summary, decode_batch
from kubesweep.operator import intake as intake_module
from kubesweep.operator.directory import Directory, TrialEntry
from kubesweep.operator.intake import Intake
from kubesweep.planning import TrialMetrics

KEY = b"secret-key"
PATH = "/v1/metrics/ns/exp-0"

#: ``(namespace, trial, status patch)`` as the intake wrote it.
Patch = tuple[str, str, dict[str, Any]]
Client = TestClient[web.Request, web.Application]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Setup(NamedTuple):
    """An intake over two indexed trials, the patches it wrote, and its clock."""

    intake: Intake
    patches: list[Patch]
    clock: Clock


@pytest.fixture
def setup() -> Setup:
    directory = Directory()
    directory.trials[("ns", "exp-0")] = TrialEntry(uid="uid-0", experiment="exp")
    directory.trials[("ns", "exp-1")] = TrialEntry(uid="uid-1", experiment="exp")
    directory.objectives[("ns", "exp")] = Objective(metric="loss", direction="minimize")
    patches: list[Patch] = []

    async def patch(namespace: str, name: str, body: dict[str, Any]) -> None:
        patches.append((namespace, name, body))

    clock = Clock()
    intake = Intake(directory, KEY, patch, flush_seconds=2.0, clock=clock)
    return Setup(intake, patches, clock)


def batch(
    trial: str = "exp-0",
    uid: str = "uid-0",
    seq: int = 1,
    values: Sequence[float] = (0.5, 0.3),
    *,
    final: bool = False,
    summary: Summary | None = None,
) -> bytes:
    observations = tuple(Observation("loss", v, step=i) for i, v in enumerate(values))
    batch_ = Batch(trial, "ns", uid, observations, seq=seq, boot="b1", final=final, summary=summary)
    return batch_.to_json()


@pytest.fixture
async def client(setup: Setup) -> AsyncIterator[Client]:
    intake, _, _ = setup
    async with TestClient(TestServer(intake.app())) as c:
        yield c


def indexed(intake: Intake, trial: str) -> TrialEntry:
    """The directory's entry for ``trial`` in ``ns``, which the test has indexed."""
    entry = intake.directory.trial("ns", trial)
    assert entry is not None
    return entry


def headers_for(uid: str = "uid-0", **extra: str) -> dict[str, str]:
    return {
        "Authorization": authorization(trial_token(KEY, uid)),
        "Content-Type": "application/json",
        **extra,
    }


@pytest.mark.parametrize(
    ("path", "body", "token", "status"),
    [
        ("/v1/metrics/ns/exp-0", batch(), trial_token(KEY, "uid-0"), 200),
        ("/ns/exp-0", batch(), trial_token(KEY, "uid-0"), 200),  # an intake URL without a path
        ("/v1/metrics/ns/exp-0", batch(), None, 401),
        ("/v1/metrics/ns/exp-0", batch(), trial_token(b"other-key", "uid-0"), 403),  # forged
        ("/v1/metrics/ns/exp-0", batch(), trial_token(KEY, "uid-1"), 403),  # another's token
        # a batch that names another trial than the one its token and path are for
        ("/v1/metrics/ns/exp-1", batch(uid="uid-0"), trial_token(KEY, "uid-1"), 403),
        ("/v1/metrics/ns/exp-1", batch(trial="exp-1", uid="uid-0"), trial_token(KEY, "uid-1"), 403),
        # unknown, or not indexed yet: the same answer as a forgery, nothing learnt
        ("/v1/metrics/ns/exp-9", batch(trial="exp-9", uid="uid-9"), trial_token(KEY, "uid-9"), 403),
        ("/v1/metrics/ns/exp-0", b"{not json", trial_token(KEY, "uid-0"), 400),
        ("/v1/metrics", batch(), trial_token(KEY, "uid-0"), 403),  # names no trial it knows
    ],
)
async def test_tokens_and_validation(
    client: Client, path: str, body: bytes, token: str | None, status: int
) -> None:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = authorization(token)
    response = await client.post(path, data=body, headers=headers)
    assert response.status == status


async def test_the_token_is_checked_before_the_body_is_read(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unauthenticated caller costs no parsing: its body is never read."""
    parsed: list[bytes | str] = []

    def spy(body: bytes | str) -> Batch:
        parsed.append(body)
        return decode_batch(body)

    monkeypatch.setattr(intake_module, "decode_batch", spy)
    forged = {"Authorization": authorization(trial_token(b"x", "uid-0"))}
    response = await client.post(PATH, data=batch(), headers=forged)
    assert response.status == 403
    assert parsed == []


async def test_a_batch_must_be_json_and_of_bounded_size(client: Client) -> None:
    path = "/v1/metrics/ns/exp-0"
    plain = await client.post(
        path, data=batch(), headers=headers_for(**{"Content-Type": "text/plain"})
    )
    assert plain.status == 415
    huge = b"[" + b"0," * (MAX_BATCH_BYTES // 2) + b"0]"
    large = await client.post(path, data=huge, headers=headers_for())
    assert large.status == 413


async def test_batches_without_a_boot_or_with_steps_beyond_int64_are_refused(
    client: Client,
) -> None:
    path = "/v1/metrics/ns/exp-0"
    no_boot = json.loads(batch())
    del no_boot["boot"]
    response = await client.post(path, data=json.dumps(no_boot), headers=headers_for())
    assert response.status == 400
    assert "boot" in (await response.json())["error"]
    big = json.loads(batch())
    big["observations"][0]["step"] = 2**70
    response = await client.post(path, data=json.dumps(big), headers=headers_for())
    assert response.status == 400
    assert "step" in (await response.json())["error"]


async def test_the_previous_key_is_accepted_while_keys_rotate(setup: Setup) -> None:
    intake, _, _ = setup
    rotated = Intake(intake.directory, b"new-key", intake.patch, previous_keys=(KEY,))
    async with TestClient(TestServer(rotated.app())) as c:
        for key in (b"new-key", KEY):
            headers = headers_for(Authorization=authorization(trial_token(key, "uid-0")))
            response = await c.post("/v1/metrics/ns/exp-0", data=batch(), headers=headers)
            assert response.status == 200


async def test_seen_boots_are_bounded(setup: Setup) -> None:
    intake, _, _ = setup
    entry = indexed(intake, "exp-0")
    for boot in range(50):
        observation = (Observation("loss", 1.0, step=boot),)
        await intake.accept(
            Batch("exp-0", "ns", "uid-0", observation, seq=1, boot=str(boot)), entry
        )
    assert list(intake.accumulators[("ns", "exp-0")].seen) == [str(b) for b in range(42, 50)]


async def test_writes_are_coalesced_per_trial(client: Client, setup: Setup) -> None:
    intake, patches, clock = setup
    headers = headers_for()
    for seq in range(1, 6):
        response = await client.post(
            PATH, data=batch(seq=seq, values=(1.0 / seq,)), headers=headers
        )
        assert response.status == 200
    # first flush writes; an immediate second does not
    assert await intake.flush_due() == 1
    assert await intake.flush_due() == 0
    await client.post(PATH, data=batch(seq=6, values=(0.1,)), headers=headers)
    assert await intake.flush_due() == 0  # within the interval
    clock.now += 2.0
    assert await intake.flush_due() == 1
    assert len(patches) == 2
    _, name, status = patches[-1]
    assert name == "exp-0"
    assert status["objective"] == 0.1  # min, the direction's default
    assert status["metrics"][0]["count"] == 6


async def test_repeated_batches_apply_once(client: Client, setup: Setup) -> None:
    intake, patches, _ = setup
    headers = headers_for()
    for _ in range(3):
        await client.post(PATH, data=batch(seq=1), headers=headers)
    await intake.flush_due()
    assert patches[-1][2]["metrics"][0]["count"] == 2


async def test_final_batch_is_left_to_the_pass_then_flushed(client: Client, setup: Setup) -> None:
    intake, patches, clock = setup
    headers = headers_for()
    summary = Summary(metrics=(MetricStats("loss", 0.2, 0.1, 0.9, 9, 10),))
    response = await client.post(
        PATH, data=batch(seq=1, values=(0.5,), final=True, summary=summary), headers=headers
    )
    assert response.status == 200
    assert await intake.flush_due() == 0  # held for the pass that sees the Job complete
    taken = intake.take("ns", "exp-0")
    assert taken is not None
    assert taken.objective == 0.1  # the summary saw more than the pushes
    clock.now += 10
    assert await intake.flush_due() == 0  # the pass took them: nothing left to write
    assert patches == []


async def test_final_batch_is_flushed_if_no_pass_takes_it(client: Client, setup: Setup) -> None:
    intake, patches, clock = setup
    headers = headers_for()
    await client.post(PATH, data=batch(seq=1, final=True), headers=headers)
    clock.now += 10
    assert await intake.flush_due() == 1
    assert patches[0][2]["objective"] == 0.3


async def test_curve_stays_bounded(setup: Setup) -> None:
    intake, patches, _ = setup
    entry = indexed(intake, "exp-0")
    values = tuple(1.0 / (i + 1) for i in range(1000))
    observations = tuple(Observation("loss", v, step=i) for i, v in enumerate(values))
    await intake.accept(Batch("exp-0", "ns", "uid-0", observations, seq=1, boot="b"), entry)
    await intake.flush("ns", "exp-0", force=True)
    curve = patches[-1][2]["curve"]
    assert len(curve) <= MAX_CURVE_POINTS
    assert curve[0]["step"] == 0
    assert curve[-1]["step"] == 999  # first and last (the best, here) survive


async def test_termination_message_fallback(setup: Setup) -> None:
    intake, _, _ = setup
    summary = Summary(metrics=(MetricStats("loss", 0.4, 0.25, 0.9, 3, 4),))
    metrics = await intake.adopt_summary("ns", "exp-1", summary)
    assert metrics is not None
    assert metrics.objective == 0.25  # written by the pass with the trial's final phase


async def test_the_summary_replaces_what_replays_and_losses_made_of_the_pushes(
    setup: Setup,
) -> None:
    """After a restart, pushes are replayed (counted twice) or lost; the summary is exact."""
    intake, _, _ = setup
    entry = indexed(intake, "exp-0")
    steps = [Observation("loss", v, step=i) for i, v in enumerate((0.9, 0.7, 0.8, 0.6, 0.65))]
    # Steps 0-2 arrive, then a replay of step 2 from a new collector boot; 3-4 are lost.
    await intake.accept(Batch("exp-0", "ns", "uid-0", tuple(steps[:3]), seq=1, boot="a"), entry)
    await intake.accept(Batch("exp-0", "ns", "uid-0", (steps[2],), seq=1, boot="b"), entry)
    pushed = intake.take("ns", "exp-0")
    assert pushed is not None
    assert not pushed.complete
    assert pushed.metrics[0].count == 4  # the replay was counted twice
    assert [p.step for p in pushed.curve] == [0, 1, 2]  # but never as a second point

    summary = Summary(
        metrics=(MetricStats("loss", 0.65, 0.6, 0.9, 4, 5),),
        curve_metric="loss",
        curve=tuple((o.step or 0, o.value) for o in steps),
        observed=5,
    )
    final = await intake.adopt_summary("ns", "exp-0", summary)
    assert final is not None
    assert final.complete
    assert final.objective == 0.6  # min over all five steps, not over the three pushed
    assert final.metrics[0].count == 5
    assert [(p.step, p.value) for p in final.curve] == [(o.step, o.value) for o in steps]

    late = Batch("exp-0", "ns", "uid-0", (Observation("loss", 0.01, step=9),), seq=2, boot="a")
    assert await intake.accept(late, entry)  # taken, but the summary already counted it all
    assert intake.take("ns", "exp-0") == final


async def test_a_finished_trial_takes_no_more_batches(setup: Setup) -> None:
    intake, patches, clock = setup
    intake.directory.trials[("ns", "exp-0")] = TrialEntry(
        uid="uid-0", experiment="exp", finished=True
    )
    entry = indexed(intake, "exp-0")
    observations = (Observation("loss", 0.01, step=1),)
    batch_ = Batch("exp-0", "ns", "uid-0", observations, seq=1, boot="b")
    assert not await intake.accept(batch_, entry)
    clock.now += 10
    assert await intake.flush_due() == 0
    assert patches == []


def test_the_previous_key_comes_from_its_own_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kubesweep.operator.config import config_from_args

    previous = tmp_path / "previous"
    previous.write_text("old-key\n")
    config, _ = config_from_args([f"--previous-token-key-file={previous}"])
    assert config.previous_token_key == b"old-key"
    with pytest.raises(SystemExit):
        config_from_args([f"--previous-token-key-file={tmp_path / 'absent'}"])
    assert "--previous-token-key-file" in capsys.readouterr().err


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    values=st.lists(finite, min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=6),
    replays=st.lists(st.integers(min_value=0, max_value=6), max_size=4),
    lost=st.sets(st.integers(min_value=0, max_value=6), max_size=3),
)
def test_whatever_arrives_the_final_metrics_are_the_collectors_account(
    values: list[float], cuts: list[int], replays: list[int], lost: set[int]
) -> None:
    """Batches lost, replayed under another boot or in order: the summary decides, exactly."""
    observations = [Observation("loss", v, step=i) for i, v in enumerate(values)]
    bounds = sorted({0, len(observations), *(c for c in cuts if c < len(observations))})
    batches = [
        Batch("exp-0", "ns", "uid-0", tuple(observations[a:b]), seq=i + 1, boot="first")
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]
    arriving = [b for i, b in enumerate(batches) if i not in lost]
    arriving += [
        dataclasses.replace(batches[r], boot="second") for r in replays if r < len(batches)
    ]
    reducer = SeriesReducer(priority=["loss"], best={"loss": "min"})
    reducer.extend(observations)
    summary = Summary.of(reducer, "loss")

    async def run() -> TrialMetrics | None:
        directory = Directory()
        directory.trials[("ns", "exp-0")] = TrialEntry(uid="uid-0", experiment="exp")
        directory.objectives[("ns", "exp")] = Objective(metric="loss", direction="minimize")

        async def patch(namespace: str, name: str, body: dict[str, Any]) -> None:
            del namespace, name, body

        intake = Intake(directory, KEY, patch)
        entry = directory.trial("ns", "exp-0")
        assert entry is not None
        for batch_ in arriving:
            await intake.accept(batch_, entry)
        pushed = intake.take("ns", "exp-0")
        steps = [p.step for p in pushed.curve] if pushed else []
        assert steps == sorted(set(steps))  # sorted, unique, whatever was replayed
        return await intake.adopt_summary("ns", "exp-0", summary)

    final = asyncio.run(run())
    assert final is not None
    assert final.complete
    assert final.objective == min(values)
    assert final.metrics[0].count == len(values)
    assert final.metrics[0].latest == values[-1]
    steps = [p.step for p in final.curve]
    assert steps == sorted(set(steps))
