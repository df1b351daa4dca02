"""Sweeps admitted by Kueue: queued is not running.

With a ClusterQueue of 4 GPUs, the operator may create more trials than fit: Kueue
suspends each trial's workload until its quota is free. These tests run the real
Kueue and JobSet controllers (``e2e/cluster/build-controllers.sh``; skipped, saying
how to build, when they are not built) and the operator on the process node, and
judge what a user and a GitOps pipeline see:

* six parallel 1-GPU Job trials in a namespace whose LocalQueue is named
  ``default`` (Kueue puts every Job of such a namespace in it, so the Experiment
  names no queue): at most four admitted at a time, the others shown as queued in
  the Experiment's status and in ``kubectl get``'s printer columns, never as
  running or failed, and every trial ends ``Succeeded`` with what it printed;
* three 2-pod JobSet trials on an Experiment that names its queue
  (``trialTemplate.queueName``): Kueue admits a trial's two pods together or not at
  all, so at most two trials at a time; each trial's objective is what its rank-0
  pod printed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.kube import path_for
from conftest import Apply, Cluster, wait_for
from kueue_quota import GPU, KUEUE, admitted_intervals, gpu_quota, most_at_once, timestamp
from stack import REPO, Stack
from sweeps import API, CRDS, describe, end_condition, experiment, ranked_program, trials

JOBSET_WORKLOAD = {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet", "plural": "jobsets"}
#: Removed before the queues: the Experiments, and the Trials that own the workloads.
OWNERS = ((API, "experiments"), (API, "trials"))
#: Rank r (the JobSet's Job index) prints loss = (x - 0.3)^2 + 100 r three times, then
#: waits long enough that a third trial is seen queued behind the first two.
RANKED_PROGRAM = ranked_program("int(os.environ['JOB_INDEX'])", "time.sleep(4.0)\n")


@pytest.fixture(scope="module")
def kueue(cluster: Cluster) -> Iterator[None]:
    """The JobSet controller and Kueue, running for this module."""
    from test_controllers import _start

    yield from _start(cluster, ["jobset", "kueue"])


@pytest.fixture(scope="module")
def stack(
    cluster: Cluster, kueue: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """kubesweep's CRDs and an operator that may run JobSet trials (JobSet's CRD is Kueue's)."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    log_dir = Path(tmp_path_factory.mktemp("operator-logs"))
    workloads = f"--trial-workloads={json.dumps([JOBSET_WORKLOAD])}"
    with Stack(cluster.kubeconfig, log_dir, extra_operator_args=(workloads,)) as running:
        yield running


def printed(x: float, rank: int = 0) -> float:
    """The loss a trial's rank prints, as the collector parses it."""
    return float(f"{(x - 0.3) ** 2 + 100 * rank:.6f}")


def printer_columns(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    """``kubectl get experiment name``'s columns, header to value."""
    header, row = cluster.kubectl("get", "experiments", name, "-n", namespace).stdout.splitlines()
    # Columns are aligned under their headers; an empty cell (no best yet) is blank.
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    ends = [*starts[1:], None]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends, strict=True)}


def watch_until_end(
    cluster: Cluster, namespace: str, name: str, seen: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Call ``seen`` with every status read until the experiment ends; the final status."""

    def ended() -> dict[str, Any] | None:
        status = cluster.kube.get(path_for(API, "experiments", namespace, name)).get("status")
        if not status:
            return None
        seen(status)
        final = {"Succeeded", "Failed"}
        done = any(c["type"] in final and c["status"] == "True" for c in status["conditions"])
        return status if done else None

    return wait_for(ended, 240, 0.5, what=f"{name} to end (watching its status)")


def test_six_one_gpu_trials_on_a_four_gpu_queue_wait_queued_then_all_succeed(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    if cluster.gpus < 4:
        pytest.skip(f"needs a node with 4 GPUs (the cluster has {cluster.gpus})")
    manifest = experiment("queued", {"maxTrials": 6, "parallelTrials": 6}, sleep=8.0)
    trainer = manifest["spec"]["trialTemplate"]["job"]["template"]["spec"]["containers"][0]
    trainer["resources"] = {"limits": {GPU: 1}}
    with gpu_quota(cluster, namespace, apply, gpus=4, local_queue="default", owners=OWNERS):
        apply(manifest)

        def queued_shown() -> dict[str, str] | None:
            columns = printer_columns(cluster, namespace, "queued")
            return columns if int(columns["QUEUED"] or "0") >= 1 else None

        shown = wait_for(
            queued_shown, 120, 0.5, what="kubectl get experiments showing a trial QUEUED"
        )
        assert int(shown["RUNNING"]) <= 4, shown
        samples: list[dict[str, int]] = []
        status = watch_until_end(
            cluster, namespace, "queued", lambda s: samples.append(s["trials"])
        )
        assert status["phase"] == "Succeeded", describe(cluster, namespace)
        assert end_condition(status)["reason"] == "MaxTrialsReached"
        assert max(s.get("running", 0) for s in samples) <= 4, samples
        assert max(s.get("queued", 0) for s in samples) >= 1, samples
        assert all(s.get("failed", 0) == 0 for s in samples), samples
        assert all(s.get("queued", 0) <= s.get("pending", 0) for s in samples), samples
        done = trials(cluster, namespace)
        assert len(done) == 6
        for trial in done:
            assert trial["status"]["phase"] == "Succeeded", trial["status"]
            x = float(trial["spec"]["parameters"]["x"])
            assert trial["status"]["objective"] == pytest.approx(printed(x), abs=1e-6)
        # Every trial's Job went through the namespace's default LocalQueue.
        jobs = cluster.kube.list(path_for("batch/v1", "jobs", namespace))
        assert (
            sorted(j["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] for j in jobs)
            == ["default"] * 6
        )
        assert len(admitted_intervals(cluster, namespace)) == 6
        assert most_at_once(admitted_intervals(cluster, namespace)) <= 4
        ran = []
        for pod in cluster.kube.list(path_for("v1", "pods", namespace)):
            (trainer_state,) = [
                c for c in pod["status"]["containerStatuses"] if c["name"] == "trainer"
            ]
            term = trainer_state["state"]["terminated"]
            ran.append((timestamp(term["startedAt"]), timestamp(term["finishedAt"])))
        assert len(ran) == 6
        assert most_at_once(ran) <= 4


def two_pod_jobset_experiment(name: str, queue: str) -> dict[str, Any]:
    """Three trials, all at once, of a JobSet of 2 one-pod Jobs with one GPU per pod."""
    manifest = experiment(name, {"maxTrials": 3, "parallelTrials": 3})
    template = manifest["spec"]["trialTemplate"]
    job = template.pop("job")
    job.update({"parallelism": 1, "completions": 1, "backoffLimit": 0})
    trainer = job["template"]["spec"]["containers"][0]
    trainer["command"] = ["python", "-c", RANKED_PROGRAM]
    trainer["args"] = ["${params.x}"]
    trainer["resources"] = {"limits": {GPU: 1}}
    index = {"fieldRef": {"fieldPath": "metadata.labels['jobset.sigs.k8s.io/job-index']"}}
    trainer["env"] = [{"name": "JOB_INDEX", "valueFrom": index}]
    template["jobSet"] = {
        "replicatedJobs": [{"name": "workers", "replicas": 2, "template": {"spec": job}}]
    }
    template["queueName"] = queue
    return manifest


def test_two_pod_jobset_trials_are_admitted_whole_by_their_experiments_queue(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    if cluster.gpus < 4:
        pytest.skip(f"needs a node with 4 GPUs (the cluster has {cluster.gpus})")
    with gpu_quota(cluster, namespace, apply, gpus=4, local_queue="gpus", owners=OWNERS):
        apply(two_pod_jobset_experiment("pairs", "gpus"))
        samples: list[dict[str, int]] = []
        status = watch_until_end(cluster, namespace, "pairs", lambda s: samples.append(s["trials"]))
        assert status["phase"] == "Succeeded", describe(cluster, namespace)
        assert max(s.get("queued", 0) for s in samples) >= 1, samples
        assert max(s.get("running", 0) for s in samples) <= 2, samples
        done = trials(cluster, namespace)
        assert len(done) == 3
        for trial in done:
            assert trial["status"]["phase"] == "Succeeded", trial["status"]
            x = float(trial["spec"]["parameters"]["x"])
            assert trial["status"]["objective"] == pytest.approx(printed(x), abs=1e-6)
        workloads = cluster.kube.list(path_for(KUEUE, "workloads", namespace))
        assert (
            sorted(w["metadata"]["ownerReferences"][0]["kind"] for w in workloads) == ["JobSet"] * 3
        )
        for workload in workloads:
            # Admitted whole: one assignment covering both pods of the trial.
            assignments = workload["status"]["admission"]["podSetAssignments"]
            assert sum(a["count"] for a in assignments) == 2, workload["status"]
        assert most_at_once(admitted_intervals(cluster, namespace)) <= 2


def test_the_example_queues_are_what_kueue_accepts(
    cluster: Cluster, namespace: str, kueue: None
) -> None:
    """``examples/distributed/kueue-queues.yaml``, moved to the test's namespace, passes
    Kueue's CRD schemas and webhooks (a server-side dry run: nothing is created)."""
    path = REPO / "examples" / "distributed" / "kueue-queues.yaml"
    text = path.read_text().replace("team-a", namespace)
    kinds = [d["kind"] for d in yaml.safe_load_all(text)]
    assert kinds == ["ResourceFlavor", "ClusterQueue", "LocalQueue"]
    out = cluster.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=text)
    assert out.stdout.count("(server dry run)") == 3, out.stdout
