"""``kubesweep.Client``: Experiments from a notebook, as typed models and plain records.

>>> from kubesweep import Client
>>> client = Client(namespace="team-a")              # kubeconfig as kubectl finds it
>>> exp = client.create("examples/random.yaml")        # a path, YAML text, a dict or a model
>>> client.watch(exp.metadata.name)                    # blocks until it ends; returns it
>>> rows = client.trials(exp.metadata.name).to_records()
>>> import pandas as pd; pd.DataFrame(rows)            # pandas is optional

Results of a local run are read with ``Client(state=".kubesweep/<name>.db")``
(read-only: create and delete need a cluster).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

from kubesweep.api import Experiment, load_experiments, parse_experiment
from kubesweep.cli.display import best_result
from kubesweep.cli.experiment_sources import LocalSource, Source
from kubesweep.cli.ranking import TrialRecord, rank, sort_records


class TrialList(Sequence[TrialRecord]):
    """Trials of an experiment; ``to_records()`` gives a list of flat dicts for pandas."""

    def __init__(self, records: Sequence[TrialRecord]) -> None:
        self._records = list(records)

    @overload
    def __getitem__(self, index: int) -> TrialRecord: ...

    @overload
    def __getitem__(self, index: slice) -> TrialList: ...

    def __getitem__(self, index: int | slice) -> TrialRecord | TrialList:
        if isinstance(index, slice):
            return TrialList(self._records[index])
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[TrialRecord]:
        return iter(self._records)

    def __repr__(self) -> str:
        return f"TrialList({len(self._records)} trials)"

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per trial (``params.*`` and ``metrics.*`` columns)."""
        return [r.to_dict() for r in self._records]

    def to_dataframe(self) -> Any:
        """A pandas DataFrame (needs pandas installed)."""
        import importlib

        pandas = importlib.import_module("pandas")  # optional: not a kubesweep dependency
        return pandas.DataFrame(self.to_records())


def _as_experiment(manifest: str | Path | Mapping[str, Any] | Experiment) -> Experiment:
    if isinstance(manifest, Experiment):
        return manifest
    if isinstance(manifest, Mapping):
        return parse_experiment(dict(manifest))
    text = str(manifest)
    if isinstance(manifest, Path) or ("\n" not in text and Path(text).exists()):
        text = Path(text).read_text()
    experiments = load_experiments(text)
    if len(experiments) != 1:
        raise ValueError(f"expected one Experiment, found {len(experiments)}")
    return experiments[0]


class Client:
    """Experiments on a cluster (or in a local state file), for notebooks and scripts."""

    def __init__(
        self,
        namespace: str | None = None,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        state: str | Path | None = None,
    ) -> None:
        self._kube: Any = None
        if state is not None:
            self.source: Source = LocalSource(Path(state))
            self.namespace = namespace or "local"
            return
        from kubesweep.cli.cluster import ClusterSource
        from kubesweep.cli.kube import Kube

        self._kube = Kube.connect(kubeconfig, context, namespace)
        self.namespace = namespace or self._kube.namespace
        self.source = ClusterSource(self._kube, self.namespace)

    def _cluster(self) -> Any:
        if self._kube is None:
            raise RuntimeError("this Client reads a local state file; create/delete need a cluster")
        return self._kube

    def create(self, manifest: str | Path | Mapping[str, Any] | Experiment) -> Experiment:
        """Create an Experiment from a manifest path, YAML text, a dict or a model."""
        from kubesweep.cli.cluster import create_experiment

        return create_experiment(self._cluster(), _as_experiment(manifest), self.namespace)

    def list(self) -> list[Experiment]:
        """Experiments in the namespace."""
        return self.source.experiments()

    def get(self, name: str) -> Experiment:
        """One Experiment with its status."""
        return self.source.experiment(name)

    def trials(self, name: str, sort_by: str = "index") -> TrialList:
        """The experiment's trials (``sort_by``: objective, index, a metric or parameter)."""
        experiment = self.get(name)
        records = self.source.trials(experiment)
        return TrialList(sort_records(records, sort_by, experiment.spec.objective.direction))

    def ranked(self, name: str) -> TrialList:
        """The trials best first."""
        experiment = self.get(name)
        return TrialList(rank(self.source.trials(experiment), experiment.spec.objective.direction))

    def best(self, name: str) -> dict[str, Any] | None:
        """The winning parameters, objective and metrics (``None`` before any result)."""
        return best_result(self.get(name))

    def watch(
        self,
        name: str,
        *,
        timeout: float | None = None,
        interval: float = 2.0,
        on_update: Callable[[Experiment], None] | None = None,
    ) -> Experiment:
        """Poll until the experiment Succeeded or Failed (or ``timeout`` seconds passed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            experiment = self.get(name)
            if on_update is not None:
                on_update(experiment)
            status = experiment.status
            if status is not None and status.phase.value in ("Succeeded", "Failed"):
                return experiment
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"experiment {name} did not end within {timeout}s")
            time.sleep(interval)

    def delete(self, name: str) -> None:
        """Delete the Experiment (its Trials and Jobs go with it)."""
        from kubesweep.cli.cluster import delete_experiment

        delete_experiment(self._cluster(), self.namespace, name)

    def report(self, name: str, path: str | Path) -> Path:
        """Write the HTML report of the experiment to ``path``."""
        from kubesweep.cli.report.html import write_report

        experiment = self.get(name)
        target = Path(path)
        write_report(experiment, self.source.trials(experiment), target)
        return target
