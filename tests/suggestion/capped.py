"""Run code that could exhaust memory in a child process with a hard memory cap.

The machine the tests run on is shared: a regression that lets one request
allocate without bound must fail the test, not wake the kernel's OOM killer
(which may pick an unrelated process). The child sets ``RLIMIT_AS`` as its
first statement, before it imports anything, so an allocation past the cap
raises ``MemoryError`` there; a wall-clock timeout ends it if it computes
instead of allocating.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Address space for a child that imports numpy, scipy and scikit-learn and
#: computes a little: generous for that, far below what a runaway would take.
DEFAULT_CAP_BYTES = 3 << 30

_ROOT = Path(__file__).resolve().parents[2]


def _capped(code: str, cap_bytes: int) -> list[str]:
    """The command that runs ``code`` under the cap."""
    limit = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({cap_bytes}, {cap_bytes}))"
    return [sys.executable, "-c", f"{limit}\n{code}"]


def _environment() -> dict[str, str]:
    """The parent's environment with one BLAS thread: each thread's buffers count."""
    single = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")
    return {**os.environ, **single}


def run_capped(
    code: str, *, stdin: str = "", cap_bytes: int = DEFAULT_CAP_BYTES, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` under the cap, ``stdin`` as its input; its output and exit status."""
    try:
        return subprocess.run(
            _capped(code, cap_bytes),
            cwd=_ROOT,
            env=_environment(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(
            f"the capped child did not finish within {timeout:g}s: it computed without bound"
        ) from error


_SERVE = """
import asyncio, os
from aiohttp import web
from kubesweep.suggestion.auth import Authenticator, Review
from kubesweep.suggestion.service import Settings, create_app

CALLER = "system:serviceaccount:kubesweep:kubesweep-operator"
TOKEN = os.environ.get("KUBESWEEP_TEST_CALLER_TOKEN")

async def review(token, audience):
    return Review(token == TOKEN, CALLER)

async def main():
    settings = Settings(executor="thread", workers=2, cache_entries=0, metrics_port=0)
    authenticator = Authenticator(review, frozenset({CALLER})) if TOKEN else None
    runner = web.AppRunner(create_app(settings, authenticator=authenticator))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@contextmanager
def capped_service(
    *, cap_bytes: int = DEFAULT_CAP_BYTES, start_timeout: float = 60.0, token: str | None = None
) -> Iterator[str]:
    """The suggestion service (thread workers) in a capped child on a loopback port;
    its base URL. A request that allocates past the cap fails in the child, not here.
    With ``token``, only requests bearing it may compute (as the operator's would)."""
    env = _environment()
    if token is not None:
        env["KUBESWEEP_TEST_CALLER_TOKEN"] = token
    child = subprocess.Popen(
        _capped(_SERVE, cap_bytes), cwd=_ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            if not selector.select(start_timeout):
                raise AssertionError(
                    f"the capped service did not print its port within {start_timeout:g}s"
                )
        port = int(child.stdout.readline())
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, start_timeout)
        yield url
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


def _wait_ready(url: str, timeout: float) -> None:
    """Wait until ``GET /readyz`` answers 200: the port is open before the workers are."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as reply:
                if reply.status == 200:
                    return
                last = f"HTTP {reply.status}"
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except OSError as error:
            last = str(error)
        time.sleep(0.1)
    raise AssertionError(f"the capped service at {url} was not ready within {timeout:g}s ({last})")
