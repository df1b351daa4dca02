"""Load on the suggestion service: ``python -m bench.service.run``.

What the service's operators ask of its edge, answered on this machine:

1. Throughput and tail latency with 50 concurrent clients, for a cheap
   algorithm (``random``) and a costly one (``bayesian``): requests per second
   answered 200, their p50 and p99, and how many were refused (503, 504).
2. Memory under 16 concurrent bodies of the maximum size: the peak resident
   memory of the service's processes (server and workers together), and how
   many of the 16 were admitted (the rest are refused with 503 before their
   body is read, which is what keeps the peak bounded).

The service runs as in production (``kubesweep-suggestion``: worker
processes, default limits), on loopback, with the reply cache off so that
every request computes, and with ``--max-queue`` raised to admit all 50
clients (with the default of 32, some are refused at once instead of queued).
Every process of the service has a hard address-space cap, so a regression
cannot exhaust the shared machine. Every phase is bounded in time; the whole
run takes about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.machine import cpu_model

#: Address space of each service process (server and each worker).
CAP_BYTES = 3 << 30
#: The service's default body size limit and byte budget (not overridden below).
MAX_BODY_BYTES = 64 * 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]

SPACE: dict[str, Any] = {
    "parameters": [
        {"name": "lr", "type": "float", "min": 1e-5, "max": 0.1, "log": True},
        {"name": "layers", "type": "int", "min": 1, "max": 8},
        {"name": "dropout", "type": "float", "min": 0.0, "max": 0.5, "step": 0.1},
        {"name": "optimizer", "type": "categorical", "values": ["adam", "sgd", "rmsprop"]},
    ]
}


def trials(count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` completed trials at random points of :data:`SPACE`, with a toy loss."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        lr = 10 ** rng.uniform(-5, -1)
        layers = rng.randint(1, 8)
        dropout = rng.randint(0, 5) / 10
        optimizer = rng.choice(["adam", "sgd", "rmsprop"])
        loss = abs(lr - 0.003) * 100 + abs(layers - 4) / 8 + dropout + (optimizer == "sgd")
        out.append(
            {
                "name": f"t-{i}",
                "parameters": {
                    "lr": lr,
                    "layers": layers,
                    "dropout": dropout,
                    "optimizer": optimizer,
                },
                "state": "completed",
                "value": loss,
                "intermediate": [{"step": s, "value": loss + 1 / s} for s in range(1, 6)],
            }
        )
    return out


def suggest_body(algorithm: str, history: list[dict[str, Any]], seed: int) -> bytes:
    """A ``/v1/suggest`` body asking one assignment."""
    body = {
        "space": SPACE,
        "algorithm": {"name": algorithm, "seed": seed},
        "trials": history,
        "count": 1,
    }
    return json.dumps(body).encode()


def max_size_body() -> bytes:
    """A valid ``random`` request just under the body size limit (about 100,000 trials)."""
    history = trials(1000, 0)
    count = MAX_BODY_BYTES // len(json.dumps(history[0]))
    while True:
        repeated = [dict(history[i % len(history)], name=f"t-{i}") for i in range(count)]
        body = suggest_body("random", repeated, 1)
        if len(body) <= MAX_BODY_BYTES:
            return body
        count = int(count * MAX_BODY_BYTES / len(body) * 0.999)


# --- the service --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def service(workers: int, *options: str, cap_bytes: int = CAP_BYTES) -> Iterator[tuple[str, int]]:
    """The service in a child process capped at ``cap_bytes``; its base URL and process id.

    Deployed as the chart does (process workers) but with the reply cache off, on a free
    loopback port; ``options`` are more of its flags.
    """
    port = free_port()
    argv = [
        "--host=127.0.0.1",
        f"--port={port}",
        f"--workers={workers}",
        "--executor=process",
        "--cache-entries=0",
        "--log-level=WARNING",
        *options,
    ]
    code = (
        f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({cap_bytes}, {cap_bytes}))\n"
        f"from kubesweep.suggestion.service import main; main({argv!r})"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    try:
        yield f"http://127.0.0.1:{port}", child.pid
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=30)


async def wait_ready(session: aiohttp.ClientSession, url: str, timeout: float = 120.0) -> None:
    """Wait until ``/readyz`` answers 200 (every worker has imported the algorithms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{url}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the service was not ready within {timeout:g}s")


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its children (the worker processes)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


# --- the phases ---------------------------------------------------------------------------


@dataclass
class Load:
    """What one load phase saw."""

    algorithm: str
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        ok = sorted(self.latencies)
        return {
            "algorithm": self.algorithm,
            "clients": self.clients,
            "seconds": round(self.seconds, 1),
            "answered": len(ok),
            "rps": round(len(ok) / self.seconds, 1),
            "p50_ms": round(1000 * statistics.median(ok), 1) if ok else None,
            "p99_ms": round(1000 * ok[min(len(ok) - 1, int(0.99 * len(ok)))], 1) if ok else None,
            "statuses": dict(sorted(self.statuses.items())),
        }


async def load(
    session: aiohttp.ClientSession, url: str, algorithm: str, args: argparse.Namespace
) -> Load:
    """``args.clients`` clients sending requests back to back for ``args.seconds``."""
    clients, seconds = args.clients, args.seconds
    result = Load(algorithm, clients, seconds)
    base = trials(args.history, 1)
    stop_at = time.monotonic() + seconds
    headers = {"Content-Type": "application/json"}

    async def client(number: int) -> None:
        sent = 0
        while time.monotonic() < stop_at:
            body = suggest_body(algorithm, base, seed=number * 100_000 + sent)
            sent += 1
            started = time.perf_counter()
            try:
                async with session.post(
                    f"{url}/v1/suggest", data=body, headers=headers
                ) as response:
                    await response.read()
                    result.statuses[str(response.status)] += 1
                    if response.status == 200:
                        result.latencies.append(time.perf_counter() - started)
            except aiohttp.ClientError as error:
                result.statuses[type(error).__name__] += 1

    started = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    # Requests in flight at the end are counted: the phase lasts until the last answer.
    result.seconds = time.monotonic() - started
    return result


async def big_bodies(
    session: aiohttp.ClientSession, url: str, pid: int, concurrent: int
) -> dict[str, Any]:
    """``concurrent`` maximum-size bodies at once; the service's peak resident memory."""
    body = max_size_body()
    idle = tree_rss(pid)
    peak = idle
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(pid))
            await asyncio.sleep(0.02)

    async def send() -> str:
        """The status, or the client error when the service answered before the upload
        ended and closed the connection (a refusal of a body it would not read)."""
        headers = {"Content-Type": "application/json"}
        try:
            async with session.post(f"{url}/v1/suggest", data=body, headers=headers) as response:
                await response.read()
                return str(response.status)
        except aiohttp.ClientError as error:
            return type(error).__name__

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    statuses = await asyncio.gather(*(send() for _ in range(concurrent)))
    elapsed = time.monotonic() - started
    done.set()
    await sampler
    return {
        "bodies": concurrent,
        "body_mib": round(len(body) / 2**20, 1),
        "trials_per_body": body.count(b'"state"'),
        "statuses": dict(sorted(Counter(statuses).items())),
        "idle_rss_mib": round(idle / 2**20),
        "peak_rss_mib": round(peak / 2**20),
        "seconds": round(elapsed, 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=0)
    results: dict[str, Any] = {}
    with service(args.workers, f"--max-queue={args.max_queue}") as (url, pid):
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await wait_ready(session, url)
            results["load"] = [
                (await load(session, url, name, args)).summary() for name in ("random", "bayesian")
            ]
            results["memory"] = await big_bodies(session, url, pid, args.bodies)
    return results


def git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.service.run", description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each load phase")
    parser.add_argument("--history", type=int, default=100, help="completed trials per request")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--bodies", type=int, default=16)
    parser.add_argument("--out", type=Path, help="also write the results here (JSON)")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    results = asyncio.run(main_async(args))
    results["machine"] = {
        "commit": git_commit(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": round(load_before, 1),
        "load_average_after": round(os.getloadavg()[0], 1),
        "args": vars(args) | {"out": str(args.out) if args.out else None},
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
