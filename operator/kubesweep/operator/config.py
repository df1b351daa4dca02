"""Operator settings: one frozen value built from flags and environment variables.

Every flag has an environment variable (``KUBESWEEP_<FLAG>``) so a Helm chart can
set them either way; the token key is read from a file (a mounted Secret) or an
environment variable and never appears on a command line.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator needs to know that is not in the cluster."""

    namespaces: tuple[str, ...] = ()  # empty: cluster-wide
    suggestion_url: str = "http://kubesweep-suggestion:8080"
    suggestion_timeout: float = 30.0
    in_process_suggestions: bool = False
    intake_host: str = "0.0.0.0"  # the intake listens for pods
    intake_port: int = 8443
    intake_url: str = "http://kubesweep-operator:8443/v1/metrics"  # as trial pods reach it
    intake_flush_seconds: float = 5.0
    collector_image: str = "kubesweep/collector:0.1.0"
    token_key: bytes = field(default=b"", repr=False)
    concurrency: int = 8
    resync_seconds: float = 10.0
    stall_after_seconds: float = 60.0
    metrics_port: int = 9090
    liveness_endpoint: str | None = "http://0.0.0.0:8081/healthz"
    peering_name: str | None = None  # None: standalone, no peering
    priority: int = 0

    @property
    def clusterwide(self) -> bool:
        """Whether the operator watches all namespaces."""
        return not self.namespaces


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"KUBESWEEP_{name.upper().replace('-', '_')}", default)


def build_parser() -> argparse.ArgumentParser:
    """The ``kubesweep-operator`` command line."""
    parser = argparse.ArgumentParser(
        prog="kubesweep-operator",
        description="Run the kubesweep operator. Each flag also reads KUBESWEEP_<FLAG>.",
    )
    defaults = OperatorConfig()

    def add(flag: str, help_: str, default: object, type_: type = str) -> None:
        env = _env(flag)
        parser.add_argument(
            f"--{flag}",
            type=type_,
            default=type_(env) if env is not None else default,
            help=f"{help_} (default: {default})",
        )

    parser.add_argument(
        "--namespace",
        action="append",
        default=None,
        help="watch this namespace (repeat for several); default: all namespaces, "
        "or KUBESWEEP_NAMESPACES (comma-separated)",
    )
    add("suggestion-url", "base URL of the suggestion service", defaults.suggestion_url)
    add("suggestion-timeout", "seconds per suggestion call", defaults.suggestion_timeout, float)
    parser.add_argument(
        "--in-process-suggestions",
        action="store_true",
        default=_env("in-process-suggestions", "") in ("1", "true", "yes"),
        help="run the algorithms inside the operator instead of calling the service",
    )
    add("intake-host", "address the metrics intake listens on", defaults.intake_host)
    add("intake-port", "port of the metrics intake", defaults.intake_port, int)
    add("intake-url", "URL trial pods push metrics to", defaults.intake_url)
    add(
        "intake-flush-seconds",
        "at most one status patch per trial per this many seconds",
        defaults.intake_flush_seconds,
        float,
    )
    add("collector-image", "image of the collector sidecar", defaults.collector_image)
    add(
        "token-key-file",
        "file holding the HMAC key of trial tokens (a mounted Secret); else KUBESWEEP_TOKEN_KEY",
        "",
    )
    add("concurrency", "experiments reconciled at once", defaults.concurrency, int)
    add(
        "resync-seconds",
        "reconcile each experiment at least this often",
        defaults.resync_seconds,
        float,
    )
    add(
        "stall-after-seconds",
        "suggestion outage after which an experiment is Stalled",
        defaults.stall_after_seconds,
        float,
    )
    add("metrics-port", "port of the Prometheus metrics (0: off)", defaults.metrics_port, int)
    add("liveness", "kopf liveness endpoint ('' : off)", defaults.liveness_endpoint or "")
    add("peering", "kopf peering name for HA ('' : standalone)", "")
    add("priority", "kopf peering priority of this replica", defaults.priority, int)
    add("log-level", "logging level", "INFO")
    return parser


#: A namespace name (an RFC 1123 label).
NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def config_from_args(argv: Sequence[str] | None = None) -> tuple[OperatorConfig, str]:
    """Parse the command line into a config, and the log level."""
    parser = build_parser()
    args = parser.parse_args(argv)
    namespaces: list[str] = args.namespace or [
        n for n in (_env("namespaces", "") or "").split(",") if n
    ]
    for namespace in namespaces:
        # Names only: the operator's child streams address namespaces by name, so a
        # pattern would never match and the operator would wait forever.
        if not NAMESPACE_NAME.fullmatch(namespace):
            parser.error(
                f"--namespace / KUBESWEEP_NAMESPACES: {namespace!r} is not a namespace name "
                "(lowercase letters, digits and '-', at most 63 characters)"
            )
    key = b""
    if args.token_key_file:
        key = Path(args.token_key_file).read_bytes().strip()
    elif _env("token-key"):
        key = (_env("token-key") or "").encode()
    config = OperatorConfig(
        namespaces=tuple(namespaces),
        suggestion_url=args.suggestion_url,
        suggestion_timeout=args.suggestion_timeout,
        in_process_suggestions=args.in_process_suggestions,
        intake_host=args.intake_host,
        intake_port=args.intake_port,
        intake_url=args.intake_url,
        intake_flush_seconds=args.intake_flush_seconds,
        collector_image=args.collector_image,
        token_key=key,
        concurrency=args.concurrency,
        resync_seconds=args.resync_seconds,
        stall_after_seconds=args.stall_after_seconds,
        metrics_port=args.metrics_port,
        liveness_endpoint=args.liveness or None,
        peering_name=args.peering or None,
        priority=args.priority,
    )
    return config, str(args.log_level)
