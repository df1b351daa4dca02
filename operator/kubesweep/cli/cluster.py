"""Experiments and Trials on a cluster, read through :class:`~kubesweep.cli.kube.Kube`.

Objects are parsed into the API models; a status written by a newer operator
that these models cannot read is dropped rather than failing the command, so
``kubesweep get`` keeps working across versions.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kubesweep.api import API_VERSION, Experiment, Trial
from kubesweep.cli.experiment_sources import NotFoundError, trial_records
from kubesweep.cli.kube import JSON, Kube, KubeError, path_for
from kubesweep.cli.ranking import TrialRecord

M = TypeVar("M", bound=BaseModel)


def parse_experiment(body: JSON) -> Experiment:
    """An Experiment from the API; an unreadable status is left out."""
    return _parse(Experiment, body)


def parse_trial(body: JSON) -> Trial:
    """A Trial from the API; an unreadable status is left out."""
    return _parse(Trial, body)


def _parse(model: type[M], body: JSON) -> M:
    body = {
        k: v for k, v in body.items() if k in ("apiVersion", "kind", "metadata", "spec", "status")
    }
    try:
        return model.model_validate(body)
    except ValidationError:
        body.pop("status", None)
        return model.model_validate(body)


class AlreadyExistsError(KubeError):
    """An Experiment of that name exists in the namespace already."""


def create_experiment(kube: Kube, experiment: Experiment, namespace: str) -> Experiment:
    """Create ``experiment`` in its own namespace, else ``namespace``; the object as created.

    Raises :class:`AlreadyExistsError` when the name is taken.
    """
    body = experiment.to_wire()
    body.pop("status", None)
    body["metadata"]["namespace"] = experiment.metadata.namespace or namespace
    where = body["metadata"]["namespace"]
    try:
        created = kube.request("POST", path_for(API_VERSION, "experiments", where), body)
    except KubeError as error:
        if error.status == 409:
            raise AlreadyExistsError(
                f"experiment {experiment.metadata.name} already exists in namespace {where}; "
                "delete it first, or give this one another name",
                error.status,
                error.body,
            ) from None
        raise
    return parse_experiment(created)


def delete_experiment(kube: Kube, namespace: str, name: str) -> None:
    """Delete the Experiment (its Trials and Jobs go with it); :class:`NotFoundError` if absent."""
    try:
        kube.request("DELETE", path_for(API_VERSION, "experiments", namespace, name))
    except KubeError as error:
        if error.status == 404:
            raise NotFoundError(f"experiment {name} not found in namespace {namespace}") from None
        raise


class ClusterSource:
    """Experiments of one namespace (or all of them) on a cluster."""

    def __init__(self, kube: Kube, namespace: str | None, all_namespaces: bool = False) -> None:
        self.kube = kube
        self.namespace = namespace or kube.namespace
        self.all_namespaces = all_namespaces

    def experiments(self) -> list[Experiment]:
        """Experiments in scope, by namespace and name."""
        items = self.kube.experiments(None if self.all_namespaces else self.namespace)
        found = [parse_experiment(item) for item in items]
        return sorted(found, key=lambda e: (e.metadata.namespace or "", e.metadata.name))

    def experiment(self, name: str) -> Experiment:
        """One experiment."""
        try:
            return parse_experiment(self.kube.experiment(self.namespace, name))
        except KubeError as error:
            if error.status == 404:
                raise NotFoundError(
                    f"experiment {name} not found in namespace {self.namespace}"
                ) from None
            raise

    def trial_objects(self, experiment: Experiment) -> list[Trial]:
        """The experiment's Trial objects."""
        namespace = experiment.metadata.namespace or self.namespace
        return [parse_trial(t) for t in self.kube.trials(namespace, experiment.metadata.name)]

    def trials(self, experiment: Experiment) -> list[TrialRecord]:
        """The experiment's trials as records, by index."""
        return trial_records(self.trial_objects(experiment), experiment)

    def log(self, trial: str, tail: int | None = None) -> str:
        """The primary container's log of the trial's newest pod."""
        try:
            body = self.kube.trial(self.namespace, trial)
        except KubeError as error:
            if error.status == 404:
                raise NotFoundError(f"trial {trial} not found in {self.namespace}") from None
            raise
        parsed = parse_trial(body)
        container = "trainer"
        try:
            experiment = self.experiment(parsed.spec.experiment)
            container = experiment.spec.trial_template.primary_container
        except NotFoundError:
            pass
        pods = self.kube.pods_of(self.namespace, trial)
        if not pods:
            raise NotFoundError(f"trial {trial} has no pod (yet, or any more)")
        newest = max(pods, key=_created)
        return self.kube.pod_log(self.namespace, newest["metadata"]["name"], container, tail)


def _created(pod: JSON) -> Any:
    return pod.get("metadata", {}).get("creationTimestamp") or ""
