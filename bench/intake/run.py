"""How many collector batches per second the operator's intake takes, against bare HTTP.

The intake runs in a process of its own on loopback, as in the operator: authentication
(an HMAC per batch), decoding, merging into per-trial accumulators, and the
coalesced status writes (to a patcher that only counts, so the API server is not
what is measured). The peer is the same aiohttp server whose handler only reads
the body and answers 200: what HTTP alone costs on this machine, measured in the
same run. ``clients`` concurrent senders post batches of ``observations``
observations each for ``trials`` trials for ``seconds`` seconds; the figures are
batches per second, the p50 and p99 of the reply time, and the ratio to the
peer. The load comes from another process, so client and server do not share
an event loop. Bounded in count, time and memory; nothing leaves loopback.

    python -m bench.intake.run [--clients 50] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
from aiohttp import web

from bench.machine import cpu_model
from kubesweep.api import Objective
from kubesweep.metrics.observation import Observation
from kubesweep.metrics.tokens import authorization, trial_token
from kubesweep.metrics.wire import Batch
from kubesweep.operator.directory import Directory, TrialEntry
from kubesweep.operator.intake import Intake

KEY = b"bench-key"


def intake_app(trials: int) -> tuple[web.Application, Intake, list[int]]:
    directory = Directory()
    for i in range(trials):
        directory.trials[("bench", f"t-{i}")] = TrialEntry(uid=f"uid-{i}", experiment="exp")
    directory.objectives[("bench", "exp")] = Objective(metric="loss", direction="minimize")
    writes = [0]

    async def patch(namespace: str, name: str, body: dict[str, Any]) -> None:
        del namespace, name, body
        writes[0] += 1

    intake = Intake(directory, KEY, patch, flush_seconds=2.0)
    return intake.app(), intake, writes


def bare_app() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"applied": True})

    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/v1/metrics/{namespace}/{trial}", handle)
    return app


async def load(
    url: str, trials: int, clients: int, observations: int, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def client(index: int, session: aiohttp.ClientSession) -> None:
        seq = 0
        while time.monotonic() < deadline:
            trial = (index + seq * clients) % trials
            seq += 1
            points = tuple(
                Observation("loss", 1.0 / (seq + k + 1), step=seq * observations + k)
                for k in range(observations)
            )
            body = Batch(f"t-{trial}", "bench", f"uid-{trial}", points, seq=seq, boot=f"b{index}")
            headers = {
                "Authorization": authorization(trial_token(KEY, f"uid-{trial}")),
                "Content-Type": "application/json",
            }
            started = time.perf_counter()
            async with session.post(
                f"{url}/v1/metrics/bench/t-{trial}", data=body.to_json(), headers=headers
            ) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"intake answered {response.status}")
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.monotonic()
        await asyncio.gather(*(client(i, session) for i in range(clients)))
        elapsed = time.monotonic() - began
    ordered = sorted(latencies)
    return {
        "batches_per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
    }


def serve(kind: str, trials: int, conn: Connection) -> None:
    """The server process: one event loop serving ``kind`` until told to stop."""

    async def body() -> None:
        intake: Intake | None = None
        writes = [0]
        if kind == "intake":
            app, intake, writes = intake_app(trials)
            intake.start()
        else:
            app = bare_app()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        conn.send(runner.addresses[0][1])  # (host, port) of the one site
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        if intake is not None:
            await intake.stop()
        await runner.cleanup()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        conn.send((writes[0], rss))

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # bounded on a shared machine
    asyncio.run(body())


def measure(kind: str, args: argparse.Namespace) -> tuple[dict[str, float], int, float]:
    """Serve ``kind`` in a process of its own, load it from this one; figures, writes, RSS."""
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(kind, args.trials, theirs))
    server.start()
    try:
        if not ours.poll(30):
            raise TimeoutError(f"the {kind} server did not say its port within 30 s")
        url = f"http://127.0.0.1:{ours.recv()}"
        figures = asyncio.run(load(url, args.trials, args.clients, args.observations, args.seconds))
        ours.send("stop")
        if not ours.poll(30):
            raise TimeoutError(f"the {kind} server did not stop within 30 s")
        writes, rss = ours.recv()
    finally:
        server.join(30)
        if server.is_alive():
            server.kill()
    return figures, writes, rss


def median_round(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median throughput: one real run, not a blend of several."""
    return sorted(runs, key=lambda r: r["batches_per_second"])[len(runs) // 2]


def report(args: argparse.Namespace) -> None:
    bares: list[dict[str, float]] = []
    intakes: list[dict[str, float]] = []
    writes, rss = 0, 0.0
    for _ in range(args.rounds):  # alternated, so a busy moment of the machine hits both
        bares.append(measure("bare", args)[0])
        figures, writes, rss = measure("intake", args)
        intakes.append(figures)
    bare, ours = median_round(bares), median_round(intakes)
    print(
        f"machine: {cpu_model()}; {args.clients} clients, {args.trials} trials, "
        f"{args.observations} observations per batch, {args.seconds:.0f} s each, "
        f"median of {args.rounds} alternated rounds"
    )
    print("| server | batches/s | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for name, figures in (("bare aiohttp (peer)", bare), ("kubesweep intake", ours)):
        print(
            f"| {name} | {figures['batches_per_second']:.0f} | {figures['p50_ms']:.1f} "
            f"| {figures['p99_ms']:.1f} |"
        )
    ratio = ours["batches_per_second"] / bare["batches_per_second"]
    print(f"intake / peer: {ratio:.2f}; status writes: {writes}; intake peak RSS {rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--observations", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # bounded on a shared machine
    report(args)


if __name__ == "__main__":
    main()
