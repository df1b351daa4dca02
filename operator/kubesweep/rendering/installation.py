"""What the renderer needs from the installation, as one immutable value.

Rendering is a pure function of (experiment, trial, settings, token): anything
that depends on the installation (collector image, intake address, the
sidecar's resources) arrives here, so the same trial renders the same Job in
tests, in the CLI and in the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from kubesweep.podcontract import DEFAULT_PUSH_PORT, METRICS_DIR, STDOUT_LOG, wrap_command

#: Name of the collector sidecar; reserved in every trial pod.
COLLECTOR_NAME = "kubesweep-collector"
#: Name of the emptyDir shared by the primary container and the collector.
METRICS_VOLUME = "kubesweep-metrics"

__all__ = [
    "COLLECTOR_NAME",
    "DEFAULT_COLLECTOR_RESOURCES",
    "DEFAULT_COLLECTOR_SECURITY_CONTEXT",
    "METRICS_DIR",
    "METRICS_VOLUME",
    "STDOUT_LOG",
    "CommandWrapper",
    "RenderSettings",
]


class CommandWrapper(Protocol):
    """Rewrites a command so its output is also teed into ``log_path``, keeping its exit code.

    :func:`kubesweep.podcontract.wrap_command` is the implementation and the
    default; it lives in the pod contract because the collector reads what it
    writes (the log and its ``.state`` file), so the two change together. It is
    a setting so tests can see what the renderer hands it.
    """

    def __call__(
        self, command: list[str], args: list[str], log_path: str
    ) -> tuple[list[str], list[str]]: ...


#: Requests keep the sidecar schedulable under ResourceQuota and Kueue quotas;
#: the memory limit bounds a collector that misbehaves.
DEFAULT_COLLECTOR_RESOURCES: Mapping[str, Any] = MappingProxyType(
    {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}
)

#: The sidecar needs nothing beyond reading a volume and talking HTTP, so it runs
#: under the Pod Security "restricted" profile whatever the trainer needs.
DEFAULT_COLLECTOR_SECURITY_CONTEXT: Mapping[str, Any] = MappingProxyType(
    {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
)


@dataclass(frozen=True)
class RenderSettings:
    """Installation-wide inputs of :func:`~kubesweep.rendering.render_trial`.

    Attributes:
        collector_image: image of the collector sidecar (runs ``kubesweep-collector``).
        intake_url: the operator's metrics intake, as the sidecar reaches it.
        wrap_command: the stdout wrapper (default ``kubesweep.podcontract.wrap_command``),
            used by experiments whose metrics source is ``stdout``.
        push_port: localhost port of the collector's push endpoint (``push`` source).
        collector_image_pull_policy: ``imagePullPolicy`` of the sidecar, if set.
        collector_resources: ``resources`` of the sidecar.
        collector_security_context: ``securityContext`` of the sidecar.
        metrics_volume_size_limit: ``sizeLimit`` of the shared emptyDir, if set.
    """

    collector_image: str
    intake_url: str
    wrap_command: CommandWrapper = wrap_command
    push_port: int = DEFAULT_PUSH_PORT
    collector_image_pull_policy: str | None = None
    collector_resources: Mapping[str, Any] = field(
        default_factory=lambda: DEFAULT_COLLECTOR_RESOURCES
    )
    collector_security_context: Mapping[str, Any] = field(
        default_factory=lambda: DEFAULT_COLLECTOR_SECURITY_CONTEXT
    )
    metrics_volume_size_limit: str | None = None
