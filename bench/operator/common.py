"""What every operator benchmark shares: the cluster, the stack, manifests, probes.

The benchmarks run against the real local cluster (``e2e/cluster``) in a state
directory of their own, so they never disturb a developer's or a colleague's
cluster; the operator and the suggestion service run as local processes
(``e2e/stack.py``), exactly as in the e2e tests. Trials run a program that prints
its metric and exits at once, so that what is measured is the operator and the
Kubernetes machinery around it, not training time.

The probes here read what the benchmarks report: the operator's resident memory
and CPU time from ``/proc``, and the API server's own request counters
(``apiserver_request_total``) from its ``/metrics`` endpoint.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "e2e"))

from cluster import local  # noqa: E402
from cluster.kube import JSON, ApiError, Kube, load_kubeconfig, path_for  # noqa: E402
from stack import Stack  # noqa: E402

API = "kubesweep.io/v1alpha1"
LABEL_EXPERIMENT = "kubesweep.io/experiment"
LABEL_TRIAL = "kubesweep.io/trial"
#: The benchmarks' own cluster; never the default one that `make dev-cluster` starts.
DEFAULT_STATE_DIR = Path("/tmp/kubesweep-bench-operator-cluster")
#: A trial that reports its objective and exits at once.
TRIAL_PROGRAM = "print('loss=0.5', flush=True)"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

__all__ = [
    "API",
    "LABEL_EXPERIMENT",
    "LABEL_TRIAL",
    "ApiError",
    "Bench",
    "KeepAliveKube",
    "Kube",
    "Stack",
    "Watcher",
    "experiment",
    "path_for",
]


def log(message: str) -> None:
    """Progress on stderr, timestamped, so stdout keeps only figures."""
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def experiment(
    name: str, max_trials: int, parallel: int, *, program: str = TRIAL_PROGRAM
) -> dict[str, Any]:
    """A random-search Experiment whose trials print ``loss=0.5`` and exit.

    ``stdout`` is the metrics source: the trial command runs under the collector's
    ``/bin/sh`` wrapper and the collector sidecar forwards the line, which is the
    full path a real trial takes. No resource requests: the scheduler never makes
    a trial wait for CPU, so what limits throughput is visible elsewhere.
    """
    return {
        "apiVersion": API,
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"metric": "loss", "direction": "minimize"},
            "algorithm": {"name": "random", "seed": 1},
            "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
            "budget": {"maxTrials": max_trials, "parallelTrials": parallel},
            "trialTemplate": {
                "primaryContainer": "trainer",
                "metrics": {"source": "stdout"},
                "job": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "trainer",
                                    "image": "kubesweep/bench:local",
                                    "command": ["python", "-c", program],
                                    "args": ["${params.x}"],
                                }
                            ],
                        }
                    }
                },
            },
        },
    }


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    """An object's status conditions as ``type -> status``."""
    return {c["type"]: c["status"] for c in obj.get("status", {}).get("conditions") or []}


def ended(obj: dict[str, Any]) -> bool:
    """Whether an Experiment reached ``Succeeded`` or ``Failed``."""
    conds = conditions(obj)
    return conds.get("Succeeded") == "True" or conds.get("Failed") == "True"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


@dataclass
class ProcessSample:
    """Resident memory (current and peak) and CPU time of one process."""

    rss_mib: float
    hwm_mib: float
    cpu_seconds: float


def sample_process(pid: int) -> ProcessSample:
    """Read ``/proc/<pid>``: VmRSS, VmHWM and utime+stime (the process, not its children)."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks
    return ProcessSample(fields["VmRSS"], fields["VmHWM"], cpu)


def load_average() -> float:
    return os.getloadavg()[0]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str, name: str) -> Iterator[tuple[dict[str, str], float]]:
    """Yield ``(labels, value)`` of every sample of metric ``name`` in a text exposition."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = _SAMPLE.match(line)
        if match is None or match.group(1) != name:
            continue
        labels = dict(_LABEL.findall(match.group(3) or ""))
        yield labels, float(match.group(4))


def apiserver_writes(kube: Kube) -> Counter[tuple[str, str]]:
    """The API server's own count of write requests, by ``(resource[/sub], verb)``.

    Read from ``apiserver_request_total``; it counts every client together (the
    operator, the Job controller, the scheduler, the node), so differences of two
    readings tell what a run cost the API server as a whole.
    """
    counts: Counter[tuple[str, str]] = Counter()
    text = kube.get_raw("/metrics")
    for labels, value in parse_prometheus(text, "apiserver_request_total"):
        verb = labels.get("verb", "")
        if verb not in ("POST", "PUT", "PATCH", "DELETE", "DELETECOLLECTION", "APPLY"):
            continue
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        counts[(resource, verb)] += int(value)
    return counts


class _KeptConnection(http.client.HTTPSConnection):
    """An HTTPS connection that outlives the request, for :class:`KeepAliveKube`."""

    def close(self) -> None:
        """Kept open for the next request of this thread (``http.client`` calls it often)."""

    def really_close(self) -> None:
        super().close()


class KeepAliveKube(Kube):
    """``Kube`` with one kept-alive connection per thread.

    The e2e client opens a TLS connection per request, which is right for tests
    but makes a loop of thousands of creates measure TLS handshakes on a loaded
    2-core machine, not the API server's request handling. Clients such as the
    operator (aiohttp) and client-go keep connections alive; so does this one.
    A request that finds its connection closed by the server is retried once
    on a new one (the benchmarks' creates treat 409 as done, so a retried
    create is harmless).
    """

    def __init__(self, config: Any, timeout: float = 30.0) -> None:
        super().__init__(config, timeout)
        self._local = threading.local()

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        conn: _KeptConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _KeptConnection(
                self._host, self._port, context=self._ssl, timeout=timeout or self.timeout
            )
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.really_close()
            self._local.conn = None

    def request(self, method: str, path: str, *args: Any, **kwargs: Any) -> JSON:
        for attempt in (1, 2):
            try:
                return super().request(method, path, *args, **kwargs)
            except (http.client.HTTPException, OSError):
                self._drop()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def create_once(self, path: str, body: JSON) -> None:
        """Create; an object that exists already (a retried create) is fine."""
        try:
            self.create(path, body)
        except ApiError as error:
            if error.status != 409:
                raise

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None) -> Kube:
        return cls(load_kubeconfig(path, context))


class Watcher:
    """A background watch of one collection that hands each event to a callback.

    Restarts the watch from the last resourceVersion when the server ends it, so a
    benchmark sees every event of its run. The callback gets the local monotonic
    time at which the event arrived, which is what latencies are measured with.
    """

    def __init__(
        self,
        kube: Kube,
        path: str,
        callback: Callable[[float, str, dict[str, Any]], None],
        **params: Any,
    ) -> None:
        self.kube = kube
        self.path = path
        self.callback = callback
        self.params = params
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"watch {path}", daemon=True)

    def start(self) -> Watcher:
        self.thread.start()
        if not self.ready.wait(60):
            raise TimeoutError(f"the watch of {self.path} did not start")
        return self

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        listing = self.kube.get(self.path, **self.params)
        version = listing["metadata"]["resourceVersion"]
        self.ready.set()
        while not self.stopped.is_set():
            try:
                for kind, obj in self.kube.watch(
                    self.path, timeout_seconds=30, resourceVersion=version, **self.params
                ):
                    now = time.monotonic()
                    if kind == "BOOKMARK":
                        continue
                    if kind == "ERROR":
                        version = self.kube.get(self.path, **self.params)["metadata"][
                            "resourceVersion"
                        ]
                        break
                    version = obj["metadata"]["resourceVersion"]
                    self.callback(now, kind, obj)
                    if self.stopped.is_set():
                        return
            except (OSError, ApiError) as error:
                log(f"watch of {self.path} interrupted ({error}); resuming")
                time.sleep(0.5)


@dataclass
class Bench:
    """The cluster and helpers that each benchmark gets.

    ``namespace()`` creates a namespace afresh (deleting a leftover of an earlier
    run first), so each benchmark starts from an empty one and its counts are its own.
    """

    info: local.ClusterInfo
    kube: Kube
    log_dir: Path
    #: For loops of many writes (filling the cluster, the API server peer).
    bulk: KeepAliveKube
    results: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def up(cls, state_dir: Path, fresh: bool = False) -> Bench:
        log(f"starting the local cluster in {state_dir}")
        info = local.up(state_dir, fresh=fresh)
        kube = Kube.from_kubeconfig(info.kubeconfig)
        subprocess.run(
            [
                info.kubectl,
                f"--kubeconfig={info.kubeconfig}",
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                str(REPO / "crds"),
            ],
            check=True,
            capture_output=True,
        )

        def served() -> bool:
            # Freshly applied CRDs answer 429 ("storage is (re)initializing") for a while.
            # One object is enough to tell (a cluster kept with 100,000 Trials lists
            # them all in minutes).
            try:
                for plural in ("experiments", "trials"):
                    kube.get(f"{path_for(API, plural)}?limit=1")
            except ApiError:
                return False
            return True

        Bench.wait(served, 120, "the CRDs to be served")
        log_dir = state_dir / "bench-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        bulk = KeepAliveKube(load_kubeconfig(info.kubeconfig))
        return cls(info=info, kube=kube, log_dir=log_dir, bulk=bulk)

    def namespace(self, name: str) -> str:
        path = f"/api/v1/namespaces/{name}"
        if self.kube.get_or_none(path) is not None:
            log(f"deleting the namespace {name} left by an earlier run")
            self.drop_namespace(name)
        self.kube.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        # Pods need the namespace's default ServiceAccount, which a controller adds.
        self.wait(
            lambda: self.kube.get_or_none(f"{path}/serviceaccounts/default") is not None,
            60,
            f"the default ServiceAccount of {name}",
        )
        return name

    def drop_namespace(self, name: str, wait: bool = True) -> None:
        """Delete a namespace once the operator is gone, and (by default) wait for it.

        Experiments carry the operator's finalizer, which only a running operator
        removes; the benchmark strips it so the namespace can go. Waiting keeps the
        garbage collector's work out of the next benchmark's figures.
        """
        for item in self.kube.list(path_for(API, "experiments", name)):
            if item["metadata"].get("finalizers"):
                with contextlib.suppress(ApiError):
                    self.kube.patch(
                        path_for(API, "experiments", name, item["metadata"]["name"]),
                        {"metadata": {"finalizers": None}},
                    )
        path = f"/api/v1/namespaces/{name}"
        self.kube.delete(path)
        if wait:
            self.wait(lambda: self.kube.get_or_none(path) is None, 600, f"{name} to go", 1.0)

    @staticmethod
    def wait(check: Callable[[], object], timeout: float, what: str, every: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(every)
        raise TimeoutError(f"waited {timeout:.0f}s for {what}")

    @contextmanager
    def stack(
        self,
        namespace: str,
        name: str,
        kubeconfig: str | None = None,
        operator_args: tuple[str, ...] = (),
    ) -> Iterator[Stack]:
        """The suggestion service and the operator, watching ``namespace``.

        A token an earlier run left in the same log folder names a ServiceAccount
        of an etcd since wiped: the suggestion service would refuse it (403), so
        the stack issues a new one.
        """
        (self.log_dir / name / "suggestion-token").unlink(missing_ok=True)
        stack = Stack(
            kubeconfig or self.info.kubeconfig,
            self.log_dir / name,
            namespaces=(namespace,),
            extra_operator_args=operator_args,
            # Token issue and review go straight to the cluster, outside what is counted.
            admin_kubeconfig=self.info.kubeconfig,
        )
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()

    def experiments_ended(self, namespace: str, names: list[str]) -> bool:
        items = self.kube.list(path_for(API, "experiments", namespace))
        done = {i["metadata"]["name"] for i in items if ended(i)}
        return all(n in done for n in names)


def operator_pid(stack: Stack) -> int:
    assert stack.operator is not None
    assert stack.operator.popen is not None
    return stack.operator.popen.pid


def operator_metrics(stack: Stack) -> str:
    """The operator's own Prometheus exposition."""
    import urllib.request

    url = f"http://127.0.0.1:{stack.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return str(reply.read().decode())
