"""The kinds of trial workload this installation runs, beyond ``batch/v1`` Jobs.

A platform team enables a kind in the chart's values (``trialWorkloads``), which
grants the operator exactly the verbs it needs on that resource and passes the
list here (``--trial-workloads``, JSON). Only enabled kinds are watched and
created: an Experiment asking for another is refused at its first pass with a
message that says how to enable it, and an operator whose Role lacks a resource
never asks the API server for it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_API_VERSION = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]+$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]*$")


@dataclass(frozen=True)
class WorkloadResource:
    """A namespaced resource trials may run as: its kind, and where its objects live."""

    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        """The API group (``jobset.x-k8s.io``)."""
        return self.api_version.split("/", 1)[0]

    @property
    def version(self) -> str:
        """The API version within the group (``v1alpha2``)."""
        return self.api_version.split("/", 1)[1]

    @property
    def key(self) -> tuple[str, str]:
        """``(apiVersion, kind)``, as a trial template names it."""
        return (self.api_version, self.kind)


#: JobSet, the first-class kind for a trial of several pods (``trialTemplate.jobSet``).
JOBSET = WorkloadResource("jobset.x-k8s.io/v1alpha2", "JobSet", "jobsets")


class WorkloadConfigError(ValueError):
    """``--trial-workloads`` does not list resources."""


def parse_trial_workloads(text: str) -> tuple[WorkloadResource, ...]:
    """The resources of ``--trial-workloads``: a JSON list of ``{apiVersion, kind, plural}``."""
    if not text.strip():
        return ()
    try:
        data = json.loads(text)
    except ValueError as error:
        raise WorkloadConfigError(f"not JSON ({error})") from None
    if not isinstance(data, list):
        raise WorkloadConfigError("a JSON list of {apiVersion, kind, plural} is needed")
    found: dict[tuple[str, str], WorkloadResource] = {}
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise WorkloadConfigError(f"[{index}]: an object {{apiVersion, kind, plural}}")
        api_version, kind, plural = (entry.get(k) for k in ("apiVersion", "kind", "plural"))
        if not isinstance(api_version, str) or not _API_VERSION.match(api_version):
            raise WorkloadConfigError(f"[{index}].apiVersion: group/version, e.g. example.com/v1")
        if api_version.startswith("batch/"):
            raise WorkloadConfigError(f"[{index}]: batch/v1 Jobs are always enabled")
        if not isinstance(kind, str) or not _KIND.match(kind):
            raise WorkloadConfigError(f"[{index}].kind: a kind such as PyTorchJob")
        if not isinstance(plural, str) or not _NAME.match(plural):
            raise WorkloadConfigError(f"[{index}].plural: the resource's plural, e.g. jobsets")
        resource = WorkloadResource(api_version, kind, plural)
        found[resource.key] = resource
    return tuple(found.values())
