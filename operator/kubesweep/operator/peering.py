"""The kopf peering object that lets several operator replicas elect one active.

kopf's peers announce themselves in a ``ClusterKopfPeering`` (cluster-wide
operator) or a ``KopfPeering`` per watched namespace. If that object is missing
their keep-alives fail silently and every replica acts at once, so the operator
creates it at start-up (409: a peer did already). The CRDs come with the chart.
"""

from __future__ import annotations

import logging

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubesweep.operator.config import OperatorConfig

logger = logging.getLogger(__name__)

GROUP = "kopf.dev"
VERSION = "v1"


async def ensure_peering(api: client.ApiClient, config: OperatorConfig) -> None:
    """Create the peering object(s) named by ``--peering``; nothing without it."""
    name = config.peering_name
    if name is None:
        return
    custom = client.CustomObjectsApi(api)
    try:
        if config.clusterwide:
            await custom.create_cluster_custom_object(
                GROUP,
                VERSION,
                "clusterkopfpeerings",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "ClusterKopfPeering",
                    "metadata": {"name": name},
                },
            )
        else:
            for namespace in config.namespaces:
                await _create_namespaced(custom, namespace, name)
    except ApiException as error:
        if error.status != 409:
            raise
    logger.info("peering %r ready", name)


async def _create_namespaced(custom: client.CustomObjectsApi, namespace: str, name: str) -> None:
    try:
        await custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "kopfpeerings",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "KopfPeering",
                "metadata": {"name": name, "namespace": namespace},
            },
        )
    except ApiException as error:
        if error.status != 409:
            raise
