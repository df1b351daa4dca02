"""Finished trials cost little: their workloads go, their Trials keep what status needs.

The operator runs with ``--finished-workload-retention=0s`` (the chart's
``operator.finishedWorkloadRetention``): once a trial is finished and its status
recorded, its Job is deleted and the garbage collector takes its pods. The sweep
ends as it would have with the Jobs kept: every trial ``Succeeded`` with the loss
it printed, the best trial and the counts in the Experiment's status.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.kube import path_for
from conftest import Apply, Cluster, wait_for
from stack import Stack
from sweeps import CRDS, describe, end_condition, experiment, trials, wait_end


@pytest.fixture(scope="module")
def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """kubesweep's CRDs and an operator that removes finished workloads at once."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    log_dir = Path(tmp_path_factory.mktemp("operator-logs"))
    retention = ("--finished-workload-retention=0s",)
    with Stack(cluster.kubeconfig, log_dir, extra_operator_args=retention) as running:
        yield running


def test_finished_trials_jobs_and_pods_go_and_their_status_stays(
    cluster: Cluster, namespace: str, apply: Apply, stack: Stack
) -> None:
    apply(experiment("tidy", {"maxTrials": 4, "parallelTrials": 2}))
    status = wait_end(cluster, namespace, "tidy")
    assert status["phase"] == "Succeeded", describe(cluster, namespace)
    assert end_condition(status)["reason"] == "MaxTrialsReached"
    jobs, pods = path_for("batch/v1", "jobs", namespace), path_for("v1", "pods", namespace)
    wait_for(
        lambda: not cluster.kube.list(jobs) and not cluster.kube.list(pods),
        60,
        what=f"every trial Job and pod in {namespace} deleted after its trial finished",
    )
    done = trials(cluster, namespace)
    assert len(done) == 4
    for trial in done:
        assert trial["status"]["phase"] == "Succeeded", trial["status"]
        x = float(trial["spec"]["parameters"]["x"])
        assert trial["status"]["objective"] == pytest.approx((x - 0.3) ** 2, abs=1e-6)
    best = min(done, key=lambda t: t["status"]["objective"])
    assert status["bestTrial"]["name"] == best["metadata"]["name"]
    assert status["trials"]["succeeded"] == 4
