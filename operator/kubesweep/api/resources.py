"""The ``Experiment`` resource as a whole, and loading it from a manifest."""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import ValidationError

from kubesweep.api.base import ApiModel
from kubesweep.api.experiment import ExperimentSpec
from kubesweep.api.status import ExperimentStatus
from kubesweep.api.trial import ObjectMeta


class Experiment(ApiModel):
    """An Experiment as stored in the cluster."""

    api_version: Literal["kubesweep.io/v1alpha1"] = "kubesweep.io/v1alpha1"
    kind: Literal["Experiment"] = "Experiment"
    metadata: ObjectMeta
    spec: ExperimentSpec
    status: ExperimentStatus | None = None


class ManifestError(ValueError):
    """A manifest that is not a valid Experiment; the message names each field at fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def field_path(location: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as a Kubernetes field path, e.g. ``spec.parameters[0]``."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(("function-", "tagged-union")) or part in {
            "bool",
            "int",
            "float",
            "str",
        }:
            continue
        else:
            path += f".{part}" if path else part
    return path


def describe_validation_error(error: ValidationError) -> list[str]:
    """One line per problem: the field path, then what is wrong with it."""
    lines = []
    for problem in error.errors():
        where = field_path(tuple(problem["loc"]))
        message = str(problem["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return list(dict.fromkeys(lines))


def parse_experiment(document: Any) -> Experiment:
    """Validate a decoded manifest as an Experiment, or raise :class:`ManifestError`."""
    if not isinstance(document, dict):
        raise ManifestError(["the manifest must be a mapping with apiVersion, kind and spec"])
    try:
        return Experiment.model_validate(document)
    except ValidationError as error:
        raise ManifestError(describe_validation_error(error)) from None


def load_experiments(text: str) -> list[Experiment]:
    """Parse every Experiment in a (multi-document) YAML manifest."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise ManifestError([f"not valid YAML: {error}"]) from None
    return [parse_experiment(d) for d in documents]
