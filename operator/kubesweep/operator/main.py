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
import logging
from collections.abc import Sequence
from typing import Any, cast

from kubesweep.operator.config import OperatorConfig, config_from_args
from kubesweep.operator.handlers import Operator
from kubesweep.operator.runtime import kube_client

logger = logging.getLogger(__name__)


async def run(config: OperatorConfig) -> None:
    """Run the operator until it is stopped."""
    import kopf

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
        api = await kube_client()
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
