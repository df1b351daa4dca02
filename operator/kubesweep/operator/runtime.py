"""What every reconciliation pass of one operator process shares, and how it is built.

:class:`Runtime` holds the clients (API writes, suggestion service), the metrics
intake, the trial directory and the rendering settings. :func:`build_runtime`
opens them when kopf starts the operator (:mod:`kubesweep.operator.handlers`),
and :meth:`Runtime.close` releases them when it stops; the program entry point
(:mod:`kubesweep.operator.main`) only parses flags and runs kopf, so neither of
those two modules needs the other.
"""

from __future__ import annotations

import base64
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from aiohttp import web

from kubesweep.operator.config import OperatorConfig
from kubesweep.operator.directory import Directory
from kubesweep.operator.informer import RawApi
from kubesweep.operator.intake import Intake
from kubesweep.operator.monitoring import OperatorMetrics
from kubesweep.operator.suggestions import (
    BearerTokenFile,
    HttpSuggestionBackend,
    InProcessSuggestionBackend,
    SuggestionBackend,
    SuggestionClient,
)
from kubesweep.operator.workloads import WorkloadResource
from kubesweep.podcontract import wrap_command
from kubesweep.rendering import CommandWrapper, RenderSettings

logger = logging.getLogger(__name__)


class KubeApi(Protocol):
    """The API calls a pass makes (:class:`kubesweep.operator.api_writes.Kube`, or a fake)."""

    async def create_trial(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create a Trial; ``None`` if it exists."""
        ...

    async def create_job(self, namespace: str, body: dict[str, Any]) -> bool:
        """Create a Job; ``False`` if it exists."""
        ...

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job (Background propagation)."""
        ...

    async def create_custom(
        self, resource: WorkloadResource, namespace: str, body: dict[str, Any]
    ) -> bool:
        """Create a workload of an enabled kind (a JobSet, ...); ``False`` if it exists."""
        ...

    async def delete_custom(self, resource: WorkloadResource, namespace: str, name: str) -> None:
        """Delete a workload of an enabled kind (Background propagation)."""
        ...

    async def patch_trial_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch a Trial's status."""
        ...

    async def patch_experiment_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """Merge-patch an Experiment's status."""
        ...


@dataclass
class Runtime:
    """What every pass shares: clients, the intake, settings."""

    kube: KubeApi
    suggestions: SuggestionClient
    intake: Intake
    directory: Directory
    render_settings: RenderSettings
    token_key: bytes
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    stall_after: timedelta = timedelta(seconds=60)
    #: How long a finished trial's workload stays (``None``: for good).
    workload_retention: timedelta | None = None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: The raw API client the child streams read through (``None``: no streams, in tests).
    raw_api: RawApi | None = None
    #: Workload kinds beyond Jobs this installation runs, by ``(apiVersion, kind)``.
    workloads: Mapping[tuple[str, str], WorkloadResource] = field(default_factory=dict)

    async def close(self) -> None:
        """Release what :func:`build_runtime` opened."""
        for closer in self.closers:
            await closer()


async def kube_client() -> object:
    """An API client from the in-cluster service account, else the kubeconfig."""
    from kubernetes_asyncio import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


async def build_runtime(config: OperatorConfig) -> Runtime:
    """Clients, intake and settings for one operator process; starts the servers."""
    from kubesweep.operator.api_writes import Kube

    metrics = OperatorMetrics()
    kube = Kube(await kube_client(), metrics)  # type: ignore[arg-type]
    backend: SuggestionBackend = (
        InProcessSuggestionBackend()
        if config.in_process_suggestions
        else HttpSuggestionBackend(
            config.suggestion_url,
            config.suggestion_timeout,
            BearerTokenFile(config.suggestion_token_file) if config.suggestion_token_file else None,
        )
    )
    key = config.token_key
    if not key and config.token_key_secret:
        key = await token_key_from_secret(kube.api, config.pod_namespace, config.token_key_secret)
    if not key:
        logger.warning(
            "no token key given (--token-key-file or KUBESWEEP_TOKEN_KEY): using a random one; "
            "trials started before a restart will fall back to their termination message"
        )
        key = secrets.token_bytes(32)
    directory = Directory()
    intake = Intake(
        directory,
        key,
        kube.patch_trial_status,
        previous_keys=(config.previous_token_key,) if config.previous_token_key else (),
        flush_seconds=config.intake_flush_seconds,
        metrics=metrics,
    )
    runner = web.AppRunner(intake.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(
        runner, config.intake_host, config.intake_port, ssl_context=intake_tls(config)
    ).start()
    logger.info(
        "metrics intake listening on %s:%d%s",
        config.intake_host,
        config.intake_port,
        " (HTTPS)" if config.intake_tls_cert_file else "",
    )
    if config.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port, registry=metrics.registry)
    runtime = Runtime(
        kube=kube,
        suggestions=SuggestionClient(backend, metrics),
        intake=intake,
        directory=directory,
        render_settings=render_settings(config, wrap_command),
        token_key=key,
        metrics=metrics,
        stall_after=timedelta(seconds=config.stall_after_seconds),
        workload_retention=config.finished_workload_retention,
        raw_api=kube.api,
        workloads={resource.key: resource for resource in config.trial_workloads},
    )
    runtime.closers += [runner.cleanup, kube.api.close]
    return runtime


def render_settings(config: OperatorConfig, wrap: CommandWrapper) -> RenderSettings:
    """How trial Jobs are rendered in this installation (collector image, intake, resources)."""
    optional: dict[str, Any] = {}
    if config.collector_resources is not None:
        optional["collector_resources"] = dict(config.collector_resources)
    return RenderSettings(
        collector_image=config.collector_image,
        intake_url=config.intake_url,
        wrap_command=wrap,
        collector_image_pull_policy=config.collector_image_pull_policy,
        **optional,
    )


def intake_tls(config: OperatorConfig) -> ssl.SSLContext | None:
    """The intake's TLS context when a certificate is given (e.g. a cert-manager Secret)."""
    if not config.intake_tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.intake_tls_cert_file, config.intake_tls_key_file)
    return context


async def token_key_from_secret(api: Any, namespace: str, name: str) -> bytes:
    """The intake key in Secret ``name`` (data key ``key``); created with a random key if absent.

    Several replicas may start at once: the first create wins, the others (409)
    read what it wrote. A key made here is never rendered by Helm, so a GitOps
    tool renders the chart the same way every time.
    """
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

    core = client.CoreV1Api(api)
    fresh = base64.b64encode(secrets.token_urlsafe(48).encode()).decode()
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "kubesweep",
                "app.kubernetes.io/component": "operator",
                "app.kubernetes.io/managed-by": "kubesweep-operator",
            },
        },
        "type": "Opaque",
        "data": {"key": fresh},
    }
    try:
        await core.create_namespaced_secret(namespace, body)  # type: ignore[arg-type]
        logger.info("created the intake key in Secret %s/%s", namespace, name)
        return base64.b64decode(fresh).strip()
    except ApiException as error:
        if error.status != 409:
            raise
    found = await core.read_namespaced_secret(name, namespace)
    encoded = (found.data or {}).get("key")
    if not encoded:  # kopf retries the start-up, and logs this, until the Secret is fixed
        raise ValueError(f"Secret {namespace}/{name} has no data key 'key'")
    return base64.b64decode(encoded).strip()
