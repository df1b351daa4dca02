"""Worker processes that can be stopped: a job past its deadline loses its process.

``concurrent.futures.ProcessPoolExecutor`` cannot cancel a job once it runs,
and does not say which process runs it, so a computation that never ends (a
Gaussian-process fit on settings nobody anticipated) holds its worker until the
pod is restarted. Here each worker is one spawned process serving one job at a
time over a pipe. :meth:`ProcessWorkers.run` waits for a free worker and for
its answer within a deadline; past it, that worker's process is killed and a
fresh one takes its place, and the other workers never notice.

A process that dies while computing (killed for memory, most likely) is
replaced the same way and reported as :class:`WorkerLostError`.

The pipe is read and written in threads (one per worker), so the event loop
never blocks on a large body or reply.

Affinity: a job may name a key (the service passes the experiment UID), and
every job of one key then goes to the same worker, its *home*, waiting for it
when it is busy, because each process holds its own histories
(:mod:`kubesweep.suggestion.history`) and a request built on one must reach the
process that holds it. A key's first job picks the free worker with the fewest
homes; a replaced worker's keys pick again (their histories are gone with it,
and their next request is told so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

#: Seconds a killed worker is given to exit before it is left to the OS.
_REAP_SECONDS = 5.0
#: Keys whose home is remembered; the least recently used are forgotten beyond it.
_MAX_HOMES = 4096


class WorkerLostError(Exception):
    """The worker process computing a job died before answering."""


class DeadlineExceededError(Exception):
    """No answer by the deadline (the worker, if one was computing, was replaced)."""


def _serve(connection: Connection, initializer: Callable[[], None] | None) -> None:
    """A worker's life: prepare, then answer one job at a time until the pipe closes."""
    if initializer is not None:
        initializer()
    while True:
        try:
            function, args = connection.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[bool, Any] = (True, function(*args))
        except Exception as error:  # returned to the caller, raised there
            answer = (False, error)
        try:
            connection.send(answer)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            connection.send((False, RuntimeError(f"unpicklable answer: {error!r}")))


def _ready() -> bool:
    """A job that answers as soon as a worker has prepared itself."""
    return True


class _Worker:
    """One process and the parent's end of its pipe.

    The pipe is closed only once no thread uses it (``lock``): closing a
    descriptor another thread reads from would let the next pipe opened reuse
    its number, and the old reader steal the new worker's answers.
    """

    def __init__(self, process: BaseProcess, connection: Connection) -> None:
        self.process = process
        self.connection = connection
        self.lock = threading.Lock()

    def exchange(self, message: tuple[Callable[..., Any], tuple[Any, ...]]) -> tuple[bool, Any]:
        """Send a job and wait for its answer (in a thread: both may take a while)."""
        with self.lock:
            try:
                self.connection.send(message)
                answer: tuple[bool, Any] = self.connection.recv()
            except (EOFError, OSError) as error:
                raise WorkerLostError(f"worker process {self.process.pid} ended") from error
        return answer

    def kill(self) -> None:
        """End the process now; a thread waiting on its pipe then reads the end of it."""
        with contextlib.suppress(Exception):
            self.process.kill()

    def reap(self) -> None:
        """Wait for the killed process to end, then close the pipe once nobody reads it."""
        self.process.join(_REAP_SECONDS)
        with self.lock:
            self.connection.close()


class ProcessWorkers:
    """``count`` worker processes; :meth:`run` hands a job to a free one.

    ``initializer`` runs in each process before its first job (replacements
    included); ``on_replace`` is called whenever a process is replaced.
    """

    def __init__(
        self,
        count: int,
        initializer: Callable[[], None] | None = None,
        on_replace: Callable[[], None] | None = None,
    ) -> None:
        self.count = max(1, count)
        self._initializer = initializer
        self._on_replace = on_replace
        self._context = get_context("spawn")  # never fork: the parent runs an event loop
        # One thread per worker exchanges with it, and as many again for killed
        # workers being reaped, and for fresh ones preparing.
        self._io = ThreadPoolExecutor(3 * self.count, thread_name_prefix="worker-pipe")
        self._free: list[_Worker] = []
        # Jobs waiting for a worker; each is woken when one is released (event loop only).
        self._waiting: list[asyncio.Future[None]] = []
        self._started = False
        self._homes: OrderedDict[str, _Worker] = OrderedDict()
        self._all: set[_Worker] = set()
        self._recruiting: set[asyncio.Task[None]] = set()

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(child, self._initializer), name="suggestion-worker", daemon=True
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self._all.add(worker)
        return worker

    def start(self) -> None:
        """Start the processes (each runs the initializer before its first job)."""
        self._free = [self._spawn() for _ in range(self.count)]
        self._started = True

    def _take(self, affinity: str | None) -> _Worker | None:
        """A free worker for a job of ``affinity`` now, if there is one; None: wait."""
        home = self._homes.get(affinity) if affinity is not None else None
        if home is not None and home not in self._all:
            del self._homes[affinity]  # type: ignore[arg-type]  # home implies affinity
            home = None
        if home is not None:
            self._homes.move_to_end(affinity)  # type: ignore[arg-type]
            if home not in self._free:
                return None
            self._free.remove(home)
            return home
        if not self._free:
            return None
        homes = Counter(self._homes.values())
        worker = min(self._free, key=lambda free: homes[free])
        self._free.remove(worker)
        if affinity is not None:
            self._homes[affinity] = worker
            while len(self._homes) > _MAX_HOMES:
                self._homes.popitem(last=False)
        return worker

    async def _acquire(self, affinity: str | None) -> _Worker:
        if not self._started:
            raise RuntimeError("the workers are not started")
        while (worker := self._take(affinity)) is None:
            woken = asyncio.get_running_loop().create_future()
            self._waiting.append(woken)
            try:
                await woken
            finally:
                if woken in self._waiting:
                    self._waiting.remove(woken)
        return worker

    def _release(self, worker: _Worker) -> None:
        """Hand a worker back and wake every waiting job (each checks for its own home)."""
        self._free.append(worker)
        waiting, self._waiting = self._waiting, []
        for woken in waiting:
            if not woken.done():
                woken.set_result(None)

    async def run(
        self,
        function: Callable[..., ResultT],
        *args: Any,
        deadline: float,
        affinity: str | None = None,
    ) -> ResultT:
        """``function(*args)`` in a worker, waiting at most until the loop time ``deadline``.

        With ``affinity``, in that key's home worker (see the module's docstring).
        Raises :class:`DeadlineExceededError` past the deadline (waiting for a
        worker, or computing: then the worker is replaced), :class:`WorkerLostError` if the
        process died, and whatever ``function`` raised.
        """
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                worker = await self._acquire(affinity)
        except TimeoutError:
            raise DeadlineExceededError("no worker was free before the deadline") from None
        healthy = False
        try:
            async with asyncio.timeout_at(deadline):
                ok, value = await loop.run_in_executor(self._io, worker.exchange, (function, args))
            healthy = True
        except TimeoutError:
            raise DeadlineExceededError("the computation did not end before the deadline") from None
        finally:
            # Only a worker that answered goes back; any other is mid-job or dead,
            # and its replacement joins once it has prepared itself.
            if healthy:
                self._release(worker)
            else:
                self._replace(worker)
        if not ok:
            raise value
        result: ResultT = value
        return result

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self._all.discard(worker)
        self._io.submit(worker.reap)
        if self._on_replace is not None:
            self._on_replace()
        logger.warning("replacing worker process %s", worker.process.pid)
        task = asyncio.get_running_loop().create_task(self._recruit(self._spawn()))
        self._recruiting.add(task)
        task.add_done_callback(self._recruiting.discard)

    async def _recruit(self, worker: _Worker) -> None:
        """Hand out a fresh worker once it answers, so that its start-up (importing
        the algorithms) never counts against a request's deadline."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._io, worker.exchange, (_ready, ()))
        except WorkerLostError:
            logger.exception("a fresh worker process ended before it was ready")
            self._replace(worker)
            return
        self._release(worker)

    def close(self) -> None:
        """Stop every worker now (jobs in progress are abandoned)."""
        for task in list(self._recruiting):
            task.cancel()
        for worker in list(self._all):
            worker.kill()
        self._all.clear()
        self._io.shutdown(wait=False, cancel_futures=True)


__all__ = ["DeadlineExceededError", "ProcessWorkers", "WorkerLostError"]
