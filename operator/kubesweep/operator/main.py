"""``kubesweep-operator``: parse flags, configure logging, run kopf with our handlers.

Logging is configured here and only here, when the operator runs as a program.
The intake and the Prometheus endpoint are started from kopf's startup handler
so they live and die with the operator's event loop. With ``--peering`` the
replica gets a priority (:func:`~kubesweep.operator.peering.new_priority`
unless ``--priority`` is given) and follows who is active, so that the intake
Service routes to the active replica (see :mod:`kubesweep.operator.peering`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import ssl
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from aiohttp import web

from kubesweep.operator.config import OperatorConfig, config_from_args
from kubesweep.operator.directory import Directory
from kubesweep.operator.intake import Intake
from kubesweep.operator.monitoring import OperatorMetrics
from kubesweep.operator.reconciler import Runtime
from kubesweep.operator.suggestions import (
    HttpSuggestionBackend,
    InProcessSuggestionBackend,
    SuggestionBackend,
    SuggestionClient,
)
from kubesweep.rendering import CommandWrapper, RenderSettings

logger = logging.getLogger(__name__)


async def _kube_client() -> object:
    from kubernetes_asyncio import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


async def build_runtime(config: OperatorConfig) -> Runtime:
    """Clients, intake and settings for one operator process; starts the servers."""
    from kubesweep.collector.wrapper import wrap_command
    from kubesweep.operator.kube import Kube

    metrics = OperatorMetrics()
    kube = Kube(await _kube_client(), metrics)  # type: ignore[arg-type]
    backend: SuggestionBackend = (
        InProcessSuggestionBackend()
        if config.in_process_suggestions
        else HttpSuggestionBackend(config.suggestion_url, config.suggestion_timeout)
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
        raw_api=kube.api,
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


async def run(config: OperatorConfig) -> None:
    """Run the operator until it is stopped."""
    import kopf

    from kubesweep.operator.handlers import Operator
    from kubesweep.operator.peering import (
        IntakeRoute,
        PeeringWatch,
        ensure_peering,
        new_priority,
        own_identity,
    )

    operator = Operator(config)
    identity = own_identity()
    priority = config.priority
    watch: PeeringWatch | None = None
    api: Any = None
    if config.peering_name is not None:
        if priority is None:
            priority = new_priority()
        logger.info("peering %r as %s with priority %d", config.peering_name, identity, priority)
        api = await _kube_client()
        await ensure_peering(api, config)
        route = IntakeRoute(api, config, identity) if config.intake_service else None

        async def on_active() -> None:
            if route is not None:
                await route.publish()

        watch = PeeringWatch(api, config, identity, priority, on_active)
        watch.start()
    try:
        await kopf.operator(
            registry=operator.registry,
            clusterwide=config.clusterwide,
            namespaces=list(config.namespaces),
            standalone=config.peering_name is None,
            peering_name=config.peering_name,
            priority=priority or 0,
            identity=cast(Any, identity),  # kopf's Identity is a NewType of str
            liveness_endpoint=config.liveness_endpoint,
        )
    finally:
        if watch is not None:
            await watch.stop()
        if api is not None:
            await api.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``kubesweep-operator``."""
    config, level = config_from_args(argv)
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if level.upper() != "DEBUG":
        # kopf reports every successful handler call at INFO: one line per watch event.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(run(config))


if __name__ == "__main__":
    main()
