"""``kubesweep-operator``: parse flags, configure logging, run kopf with our handlers.

Logging is configured here and only here, when the operator runs as a program.
The intake and the Prometheus endpoint are started from kopf's startup handler
so they live and die with the operator's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from datetime import timedelta

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
from kubesweep.rendering import RenderSettings

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
        flush_seconds=config.intake_flush_seconds,
        metrics=metrics,
    )
    runner = web.AppRunner(intake.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.intake_host, config.intake_port).start()
    logger.info("metrics intake listening on %s:%d", config.intake_host, config.intake_port)
    if config.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(config.metrics_port, registry=metrics.registry)
    runtime = Runtime(
        kube=kube,
        suggestions=SuggestionClient(backend, metrics),
        intake=intake,
        directory=directory,
        render_settings=RenderSettings(
            collector_image=config.collector_image,
            intake_url=config.intake_url,
            wrap_command=wrap_command,
        ),
        token_key=key,
        metrics=metrics,
        stall_after=timedelta(seconds=config.stall_after_seconds),
        raw_api=kube.api,
    )
    runtime.closers += [runner.cleanup, kube.api.close]
    return runtime


async def run(config: OperatorConfig) -> None:
    """Run the operator until it is stopped."""
    import kopf

    from kubesweep.operator.handlers import Operator

    operator = Operator(config)
    if config.peering_name is not None:
        from kubesweep.operator.peering import ensure_peering

        api = await _kube_client()
        try:
            await ensure_peering(api, config)  # type: ignore[arg-type]
        finally:
            await api.close()  # type: ignore[attr-defined]
    await kopf.operator(
        registry=operator.registry,
        clusterwide=config.clusterwide,
        namespaces=list(config.namespaces),
        standalone=config.peering_name is None,
        peering_name=config.peering_name,
        priority=config.priority,
        liveness_endpoint=config.liveness_endpoint,
    )


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
