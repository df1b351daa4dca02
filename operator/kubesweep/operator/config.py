"""Operator settings: one frozen value built from flags and environment variables.

Every flag has an environment variable (``KUBESWEEP_<FLAG>``) so a Helm chart can
set them either way; the token key is read from a file (a mounted Secret) or an
environment variable and never appears on a command line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from kubesweep.api.experiment import parse_duration
from kubesweep.operator.workloads import (
    WorkloadConfigError,
    WorkloadResource,
    parse_trial_workloads,
)


@dataclass(frozen=True)
class OperatorConfig:
    """Everything the operator needs to know that is not in the cluster."""

    namespaces: tuple[str, ...] = ()  # empty: cluster-wide
    suggestion_url: str = "http://kubesweep-suggestion:8080"
    suggestion_timeout: float = 30.0
    #: A projected ServiceAccount token the suggestion service admits (its audience).
    suggestion_token_file: str = ""
    in_process_suggestions: bool = False
    intake_host: str = "0.0.0.0"  # the intake listens for pods
    intake_port: int = 8443
    intake_url: str = "http://kubesweep-operator:8443/v1/metrics"  # as trial pods reach it
    intake_flush_seconds: float = 5.0
    intake_tls_cert_file: str = ""  # with the key file: the intake serves HTTPS
    intake_tls_key_file: str = ""
    intake_service: str = ""  # HA: the selector-less Service the active replica publishes to
    pod_ip: str = ""  # this replica's address, as the intake Service routes to it
    pod_namespace: str = ""  # where the intake Service and the key Secret live
    collector_image: str = "kubesweep/collector:0.1.0"
    collector_image_pull_policy: str | None = None
    collector_resources: Mapping[str, Any] | None = None  # None: the renderer's default
    token_key: bytes = field(default=b"", repr=False)
    token_key_secret: str = ""  # no key given: read, or create, the key in this Secret
    #: While keys rotate: trial pods started under the previous key keep reporting.
    previous_token_key: bytes = field(default=b"", repr=False)
    concurrency: int = 8
    resync_seconds: float = 10.0
    stall_after_seconds: float = 60.0
    #: How long a finished trial's workload (and its pods) stays; ``None``: for good.
    finished_workload_retention: timedelta | None = None
    metrics_port: int = 9090
    liveness_endpoint: str | None = "http://0.0.0.0:8081/healthz"
    peering_name: str | None = None  # None: standalone, no peering
    #: Kinds of trial workload beyond Jobs this installation runs (its RBAC grants them).
    trial_workloads: tuple[WorkloadResource, ...] = ()
    priority: int | None = None  # None: derived at start-up (see kubesweep.operator.peering)

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
    add(
        "suggestion-token-file",
        "file of the projected ServiceAccount token sent to the suggestion service "
        "(the kubelet keeps it current)",
        "",
    )
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
    add("intake-tls-cert-file", "PEM certificate: the intake serves HTTPS (with the key)", "")
    add("intake-tls-key-file", "PEM private key of --intake-tls-cert-file", "")
    add(
        "intake-service",
        "HA: the selector-less intake Service whose EndpointSlice the active replica writes",
        "",
    )
    add("pod-ip", "this replica's pod IP (the downward API's status.podIP)", "")
    add("pod-namespace", "this replica's namespace (the downward API's metadata.namespace)", "")
    add("collector-image", "image of the collector sidecar", defaults.collector_image)
    add("collector-image-pull-policy", "imagePullPolicy of the collector sidecar", "")
    add("collector-resources", "resources of the collector sidecar, as JSON", "")
    add(
        "token-key-file",
        "file holding the HMAC key of trial tokens (a mounted Secret); else KUBESWEEP_TOKEN_KEY",
        "",
    )
    add(
        "previous-token-key-file",
        "while keys rotate: file holding the previous key, whose trial tokens are still accepted",
        "",
    )
    add(
        "token-key-secret",
        "without a key: the Secret (in --pod-namespace) to read it from, created if absent",
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
    add(
        "finished-workload-retention",
        "how long a finished trial's Job (or other workload) and its pods stay before the "
        "operator deletes them, as a duration like 0s, 10m or 1h ('': keep them; the Trial "
        "keeps its status either way)",
        "",
    )
    add("metrics-port", "port of the Prometheus metrics (0: off)", defaults.metrics_port, int)
    add("liveness", "kopf liveness endpoint ('' : off)", defaults.liveness_endpoint or "")
    add("peering", "kopf peering name for HA ('' : standalone)", "")
    add(
        "priority",
        "kopf peering priority of this replica (default with --peering: derived, oldest first)",
        "",
    )
    add(
        "trial-workloads",
        "kinds trials may run as besides batch/v1 Jobs, as a JSON list of "
        '{"apiVersion", "kind", "plural"} (the chart sets it from trialWorkloads)',
        "",
    )
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
    key = _token_key(parser, args.token_key_file, bool(args.token_key_secret))
    previous_key = b""
    if args.previous_token_key_file:
        previous = Path(args.previous_token_key_file)
        previous_key = previous.read_bytes().strip() if previous.is_file() else b""
        if not previous_key:
            parser.error(f"--previous-token-key-file: {previous} is missing or empty")
    priority: int | None = None
    if args.priority != "":
        try:
            priority = int(args.priority)
        except ValueError:
            parser.error(f"--priority / KUBESWEEP_PRIORITY: {args.priority!r} is not an integer")
    resources: Mapping[str, Any] | None = None
    if args.collector_resources:
        try:
            resources = json.loads(args.collector_resources)
        except ValueError as error:
            parser.error(f"--collector-resources: not JSON ({error})")
        if not isinstance(resources, dict):
            parser.error("--collector-resources: a JSON object is needed")
    trial_workloads = _trial_workloads(parser, args.trial_workloads)
    retention = _retention(parser, args.finished_workload_retention)
    if args.token_key_secret and not args.pod_namespace:
        parser.error("--token-key-secret needs --pod-namespace (KUBESWEEP_POD_NAMESPACE)")
    if args.intake_service and not (args.pod_ip and args.pod_namespace):
        parser.error(
            "--intake-service needs --pod-ip and --pod-namespace "
            "(KUBESWEEP_POD_IP, KUBESWEEP_POD_NAMESPACE from the downward API)"
        )
    if bool(args.intake_tls_cert_file) != bool(args.intake_tls_key_file):
        parser.error("--intake-tls-cert-file and --intake-tls-key-file go together")
    config = OperatorConfig(
        namespaces=tuple(namespaces),
        suggestion_url=args.suggestion_url,
        suggestion_timeout=args.suggestion_timeout,
        suggestion_token_file=args.suggestion_token_file,
        in_process_suggestions=args.in_process_suggestions,
        intake_host=args.intake_host,
        intake_port=args.intake_port,
        intake_url=args.intake_url,
        intake_flush_seconds=args.intake_flush_seconds,
        intake_tls_cert_file=args.intake_tls_cert_file,
        intake_tls_key_file=args.intake_tls_key_file,
        intake_service=args.intake_service,
        pod_ip=args.pod_ip,
        pod_namespace=args.pod_namespace,
        collector_image=args.collector_image,
        collector_image_pull_policy=args.collector_image_pull_policy or None,
        collector_resources=resources,
        token_key=key,
        token_key_secret=args.token_key_secret,
        previous_token_key=previous_key,
        concurrency=args.concurrency,
        resync_seconds=args.resync_seconds,
        stall_after_seconds=args.stall_after_seconds,
        finished_workload_retention=retention,
        metrics_port=args.metrics_port,
        liveness_endpoint=args.liveness or None,
        peering_name=args.peering or None,
        trial_workloads=trial_workloads,
        priority=priority,
    )
    return config, str(args.log_level)


def _retention(parser: argparse.ArgumentParser, text: str) -> timedelta | None:
    if not text:
        return None
    try:
        return parse_duration(text)
    except ValueError as error:
        flag = "--finished-workload-retention / KUBESWEEP_FINISHED_WORKLOAD_RETENTION"
        parser.error(f"{flag}: {error}")


def _trial_workloads(parser: argparse.ArgumentParser, text: str) -> tuple[WorkloadResource, ...]:
    try:
        return parse_trial_workloads(text)
    except WorkloadConfigError as error:
        parser.error(f"--trial-workloads / KUBESWEEP_TRIAL_WORKLOADS: {error}")


def _token_key(parser: argparse.ArgumentParser, path: str, secret_named: bool) -> bytes:
    """The key from ``--token-key-file``, else ``KUBESWEEP_TOKEN_KEY``, else empty.

    With ``--token-key-secret`` the file may be missing or empty: the chart mounts
    the operator's own Secret as an optional volume, which is empty until the
    operator has created that Secret on its first start.
    """
    if path:
        file = Path(path)
        if file.is_file() and file.read_bytes().strip():
            return file.read_bytes().strip()
        if not secret_named:
            parser.error(f"--token-key-file: {path} is missing or empty")
    return (_env("token-key") or "").encode()
