"""``kubesweep dashboard --cluster`` against a real API server, looked at in Chromium.

The CRDs are installed, not the operator: the test creates an Experiment and its
Trials and writes their statuses as the operator would, while the dashboard
follows the namespace through a kubeconfig. What a person sees is asserted: the
experiment's progress advancing in an open page without a reload (the watch
brought the change, the event stream pushed it), every trial in the table, and a
trial's log tail read through the pod log API. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cluster.kube import JSON, path_for
from conftest import IMAGE, Cluster, wait_for
from kubesweep.api import API_VERSION
from tests.cli.conftest import example

pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
pytest.importorskip("aiohttp", reason="the dashboard needs aiohttp (kubesweep[cli])")

from selenium.webdriver.common.by import By

from kubesweep.cli.dashboard.cluster_feed import ClusterFeed
from kubesweep.cli.kube import Kube
from tests.cli.browser import (
    Dashboard,
    chromium,
    drawn,
    progress,
    shot,
    urls_outside,
    wait,
)

REPO = Path(__file__).resolve().parent.parent
CRDS = Path(os.environ.get("KUBESWEEP_E2E_CRDS", REPO / "crds"))
NOW = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
NAME = "digits-random"
LOSSES = {0: 0.41, 1: 0.27, 2: 0.33}


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    wait_for(
        lambda: cluster.kube.get_or_none(f"/apis/{API_VERSION}/experiments"),
        60,
        what="Experiment CRD established",
    )


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def experiment_status(completed: int, running: int) -> JSON:
    return {
        "phase": "Running",
        "startTime": NOW,
        "trials": {
            "created": completed + running,
            "succeeded": completed,
            "completed": completed,
            "running": running,
        },
    }


def trial_status(index: int, finished: bool) -> JSON:
    if not finished:
        return {"phase": "Running", "reason": "Running", "startTime": NOW}
    loss = LOSSES[index]
    return {
        "phase": "Succeeded",
        "reason": "Completed",
        "objective": loss,
        "startTime": NOW,
        "completionTime": NOW,
        "metrics": [{"name": "val_loss", "latest": loss, "min": loss, "max": loss + 1, "count": 2}],
        "curve": [{"step": 1, "value": loss + 1}, {"step": 2, "value": loss}],
    }


class Sweep:
    """An Experiment of the random example whose statuses the test writes, as the operator would."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.kube = cluster.kube
        self.namespace = namespace
        body = example("random").to_wire()
        body.pop("status", None)
        body["metadata"] = {"name": NAME, "namespace": namespace}
        self.kube.create(path_for(API_VERSION, "experiments", namespace), body)

    def path(self, plural: str, name: str) -> str:
        return path_for(API_VERSION, plural, self.namespace, name) + "/status"

    def trial(self, index: int, finished: bool) -> None:
        name = f"{NAME}-{index}"
        if self.kube.get_or_none(path_for(API_VERSION, "trials", self.namespace, name)) is None:
            self.kube.create(
                path_for(API_VERSION, "trials", self.namespace),
                {
                    "apiVersion": API_VERSION,
                    "kind": "Trial",
                    "metadata": {"name": name, "labels": {"kubesweep.io/experiment": NAME}},
                    "spec": {
                        "experiment": NAME,
                        "index": index,
                        "parameters": {"alpha": 1e-4, "eta0": 0.1, "penalty": "l2"},
                    },
                },
            )
        self.kube.patch(self.path("trials", name), {"status": trial_status(index, finished)})

    def progress(self, completed: int, running: int) -> None:
        status = experiment_status(completed, running)
        self.kube.patch(self.path("experiments", NAME), {"status": status})

    def pod_printing(self, trial: str, text: str) -> None:
        """A finished pod of ``trial`` whose primary container printed ``text``."""
        pod = f"{trial}-abcde"
        self.kube.create(
            path_for("v1", "pods", self.namespace),
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "labels": {"kubesweep.io/trial": trial}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "trainer", "image": IMAGE, "command": ["echo", text]},
                    ],
                },
            },
        )
        wait_for(
            lambda: (
                self.kube.get(path_for("v1", "pods", self.namespace, pod))["status"].get("phase")
                in ("Succeeded", "Failed")
            ),
            90,
            what=f"pod {pod} ran",
        )


def test_a_running_experiment_advances_in_the_browser_without_reload(
    cluster: Cluster, namespace: str, crds: None, browser: Any
) -> None:
    sweep = Sweep(cluster, namespace)
    sweep.trial(0, finished=True)
    sweep.trial(1, finished=False)
    sweep.progress(completed=1, running=1)
    sweep.pod_printing(f"{NAME}-0", "step=2 val_loss=0.41")

    kube = Kube.connect(cluster.kubeconfig, namespace=namespace)
    dashboard = Dashboard(ClusterFeed(kube), prefix="/sweeps")
    try:
        browser.get(dashboard.url)
        row = f'#experiments tr[data-name="{NAME}"]'
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the experiment's line")
        assert "1 / 8" in browser.find_element(By.CSS_SELECTOR, row).text

        browser.get(dashboard.url + f"experiments/{NAME}")
        wait(browser, drawn, "the experiment page drawn")
        assert progress(browser) == "1 / 8"
        browser.execute_script("window.notReloaded = true")

        sweep.trial(1, finished=True)
        sweep.trial(2, finished=False)
        sweep.progress(completed=2, running=1)
        wait(browser, lambda d: progress(d) == "2 / 8", "progress 2 / 8 without reload")
        sweep.trial(2, finished=True)
        sweep.progress(completed=3, running=0)
        wait(browser, lambda d: progress(d) == "3 / 8", "progress 3 / 8 without reload")
        assert browser.execute_script("return window.notReloaded") is True
        assert "/sweeps/" in dashboard.url
        assert urls_outside(browser, dashboard.url) == []  # links, assets, fetches, events

        objectives = wait(
            browser,
            lambda d: d.execute_script(
                'const rows = [...document.querySelectorAll("#trials tr[data-name]")];'
                "return rows.length === 3 && rows.every((r) => r.dataset.objective) &&"
                " Object.fromEntries(rows.map((r) => [r.dataset.name, r.dataset.objective]))"
            ),
            "three finished trials in the table",
        )
        assert {name: float(v) for name, v in objectives.items()} == {
            f"{NAME}-{i}": loss for i, loss in LOSSES.items()
        }
        shot(browser, "e2e-dashboard-cluster-experiment.png")

        browser.get(dashboard.url + f"experiments/{NAME}/trials/{NAME}-0")
        wait(browser, drawn, "the trial page drawn")
        text = browser.find_element(By.ID, "main").text
        assert "Completed" in browser.find_element(By.ID, "ended").text
        assert "step=2 val_loss=0.41" in text  # the log tail, through the pod log API
        shot(browser, "e2e-dashboard-cluster-trial.png")
    finally:
        dashboard.stop()
