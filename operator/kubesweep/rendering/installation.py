"""What the renderer needs from the operator's configuration, as one immutable value.

Rendering is a pure function of (experiment, trial, settings, token): anything
that depends on the installation (collector image, intake address, how the
token reaches the pod) arrives here, so the same trial renders the same Job in
tests, in the CLI and in the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from kubesweep.collector.wrapper import wrap_command

#: Name of the collector sidecar; reserved in every trial pod.
COLLECTOR_NAME = "kubesweep-collector"
#: Name of the emptyDir shared by the primary container and the collector.
METRICS_VOLUME = "kubesweep-metrics"
#: Where that volume is mounted in both containers.
METRICS_DIR = "/kubesweep"
#: Where the stdout wrapper tees the primary container's output.
STDOUT_LOG = f"{METRICS_DIR}/stdout.log"


class CommandWrapper(Protocol):
    """Rewrites a command so its output is also teed into ``log_path``, keeping its exit code.

    :func:`kubesweep.collector.wrap_command` is the implementation and the
    default; it lives with the collector because the collector reads what it
    writes (the log and its ``.state`` file), so the two change together. It is
    a setting so tests can see what the renderer hands it.
    """

    def __call__(
        self, command: list[str], args: list[str], log_path: str
    ) -> tuple[list[str], list[str]]: ...


class TokenMode(StrEnum):
    """How the per-trial intake token reaches the collector sidecar.

    ``literal`` (the default) puts the token in the collector's env: one object
    per trial, no extra API write, and the token only authorises pushing metrics
    for that one trial, which anyone able to read the pod could disturb anyway.
    ``secret`` references key ``token`` of the Secret ``<trial>-token`` (see
    :func:`~kubesweep.rendering.token_secret`) for clusters whose policy forbids
    credentials in pod specs; it costs one more object and write per trial.
    """

    LITERAL = "literal"
    SECRET = "secret"


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
        wrap_command: the stdout wrapper (default ``kubesweep.collector.wrap_command``),
            used by experiments whose metrics source is ``stdout``.
        token_mode: how the per-trial token is rendered (see :class:`TokenMode`).
        token_secret_key: key of the token in the per-trial Secret (``secret`` mode).
        push_port: localhost port of the collector's push endpoint (``push`` source).
        collector_image_pull_policy: ``imagePullPolicy`` of the sidecar, if set.
        collector_resources: ``resources`` of the sidecar.
        collector_security_context: ``securityContext`` of the sidecar.
        metrics_volume_size_limit: ``sizeLimit`` of the shared emptyDir, if set.
    """

    collector_image: str
    intake_url: str
    wrap_command: CommandWrapper = wrap_command
    token_mode: TokenMode = TokenMode.LITERAL
    token_secret_key: str = "token"
    push_port: int = 9477
    collector_image_pull_policy: str | None = None
    collector_resources: Mapping[str, Any] = field(
        default_factory=lambda: DEFAULT_COLLECTOR_RESOURCES
    )
    collector_security_context: Mapping[str, Any] = field(
        default_factory=lambda: DEFAULT_COLLECTOR_SECURITY_CONTEXT
    )
    metrics_volume_size_limit: str | None = None
