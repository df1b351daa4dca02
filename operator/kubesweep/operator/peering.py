"""Several operator replicas, one active: kopf peering, priorities, and the intake's route.

kopf's peers announce themselves in a ``ClusterKopfPeering`` (cluster-wide
operator) or a ``KopfPeering`` per watched namespace. If that object is missing
their keep-alives fail silently and every replica acts at once, so the operator
creates it at start-up (409: a peer did already). The CRDs come with the chart.

kopf runs only the peer of the highest priority and pauses *every* peer that
sees another live peer of its own priority, so replicas started from one pod
template (one Deployment) need distinct priorities without per-replica
settings. :func:`derive_priority` gives them one from their start time, oldest
first, with random low bits to part replicas started in the same millisecond:
a replica that starts later (a rollout, a rescheduled pod) joins as a standby
instead of taking over from a healthy active one.

Trial pods push metrics to one Service, and only the active replica's intake
may take them (the pass that writes a trial's final phase reads that replica's
accumulators). Pod readiness cannot express "active": a Deployment whose
standbys are never Ready never finishes a rollout. Instead the intake Service has
no selector and :class:`PeeringWatch` lets the active replica write the Service's
one EndpointSlice with its own pod address; a standby writes nothing, and a
replica taking over rewrites it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import re
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubesweep.operator.config import OperatorConfig

logger = logging.getLogger(__name__)

GROUP = "kopf.dev"
VERSION = "v1"
#: Random low bits of a derived priority: replicas started in one millisecond differ.
TIEBREAK_BITS = 20
#: A pod name (a DNS subdomain), as opposed to the identity of a process outside a pod.
_POD_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
#: Who writes the intake Service's EndpointSlice (the endpointslice controller ignores it).
ENDPOINTS_MANAGER = "kubesweep.io-operator"


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


# -- priorities and identity ----------------------------------------------------


def derive_priority(started_at: float, tiebreak: int) -> int:
    """A peering priority that ranks replicas by start time, the oldest highest.

    ``started_at`` is seconds since the epoch, ``tiebreak`` any number below
    ``2**TIEBREAK_BITS``. The result is negative and fits a signed 64-bit
    integer (the API server stores the peering status as JSON numbers) until
    the year 2248.
    """
    if not 0 <= tiebreak < 1 << TIEBREAK_BITS:
        raise ValueError(f"tiebreak must be below 2**{TIEBREAK_BITS}, not {tiebreak}")
    return -((int(started_at * 1000) << TIEBREAK_BITS) | tiebreak)


def new_priority(rng: random.Random | None = None) -> int:
    """This replica's priority when none is configured: :func:`derive_priority` of now."""
    rng = rng or random.SystemRandom()
    return derive_priority(time.time(), rng.randrange(1 << TIEBREAK_BITS))


def own_identity() -> str:
    """This replica's name among its peers: the pod name (``POD_ID``), as kopf uses it.

    Outside a pod it is host, process and a random suffix, so two processes on
    one machine never share it.
    """
    pod = os.environ.get("POD_ID")
    if pod:
        return pod
    suffix = "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=6))
    return f"{socket.gethostname()}/{os.getpid()}/{suffix}"


# -- which replica is active ------------------------------------------------------


def _alive(peer: Mapping[str, Any], now: datetime) -> bool:
    lastseen = peer.get("lastseen")
    if not isinstance(lastseen, str):
        return False
    try:
        seen = datetime.fromisoformat(lastseen)
    except ValueError:
        return False
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    return seen + timedelta(seconds=int(peer.get("lifetime", 60))) > now


def is_active(status: Mapping[str, Any], identity: str, priority: int, now: datetime) -> bool:
    """Whether kopf runs this peer, judged from a peering object's ``status``.

    kopf's rule: a peer pauses while another live peer has a higher priority or
    the same one. It is active once it has announced itself (a peer not yet in
    the object has not started its handlers) and no other live peer outranks or
    ties it.
    """
    own = status.get(identity)
    if not isinstance(own, Mapping) or not _alive(own, now):
        return False
    for other, peer in status.items():
        if other == identity or not isinstance(peer, Mapping) or not _alive(peer, now):
            continue
        if int(peer.get("priority", 0)) >= priority:
            return False
    return True


ActiveChanged = Callable[[bool], Awaitable[None]]


class PeeringWatch:
    """Polls the peering object(s) and says when this replica becomes active or not.

    While active, ``on_active`` is called on every poll (it re-asserts what the
    active replica publishes, cheaply when nothing changed); ``on_change`` is
    called on each transition. kopf decides who runs; this only follows it.
    """

    def __init__(
        self,
        api: client.ApiClient,
        config: OperatorConfig,
        identity: str,
        priority: int,
        on_active: Callable[[], Awaitable[None]],
        *,
        interval: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.api = api
        self.config = config
        self.identity = identity
        self.priority = priority
        self.on_active = on_active
        self.interval = interval
        self.clock = clock
        self.active = False
        self._task: asyncio.Task[None] | None = None

    async def _statuses(self) -> list[Mapping[str, Any]]:
        custom = client.CustomObjectsApi(self.api)
        name = self.config.peering_name or ""
        if self.config.clusterwide:
            found = await custom.get_cluster_custom_object(
                GROUP, VERSION, "clusterkopfpeerings", name
            )
            return [found.get("status") or {}]
        statuses = []
        for namespace in self.config.namespaces:
            found = await custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "kopfpeerings", name
            )
            statuses.append(found.get("status") or {})
        return statuses

    async def poll(self) -> bool:
        """Read the peering object(s) once; act on what they say; return whether active."""
        statuses = await self._statuses()
        now = self.clock()
        active = bool(statuses) and all(
            is_active(status, self.identity, self.priority, now) for status in statuses
        )
        if active != self.active:
            logger.info(
                "this replica (%s) is now %s", self.identity, "active" if active else "a standby"
            )
            self.active = active
        if active:
            await self.on_active()
        return active

    async def run(self) -> None:
        """Poll forever; an error is logged and the next poll tries again."""
        while True:
            try:
                await self.poll()
            except Exception as error:  # the API was unreachable: the next poll retries
                logger.warning("reading the peering object failed: %s", error)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Start polling in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# -- the intake Service's route to the active replica --------------------------------


def intake_endpoint_slice(
    service: str, namespace: str, address: str, port: int, identity: str
) -> dict[str, Any]:
    """The EndpointSlice that sends the selector-less intake ``service`` to ``address``."""
    family = "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
    endpoint: dict[str, Any] = {"addresses": [address], "conditions": {"ready": True}}
    if _POD_NAME.fullmatch(identity):  # in a pod, kopf's identity is the pod's name
        endpoint["targetRef"] = {"kind": "Pod", "name": identity, "namespace": namespace}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": service,
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": ENDPOINTS_MANAGER,
            },
        },
        "addressType": family,
        "endpoints": [endpoint],
        "ports": [{"name": "intake", "port": port, "protocol": "TCP"}],
    }


class IntakeRoute:
    """Writes the intake Service's EndpointSlice to point at this replica."""

    def __init__(self, api: client.ApiClient, config: OperatorConfig, identity: str) -> None:
        self.api = api
        self.slice = intake_endpoint_slice(
            config.intake_service, config.pod_namespace, config.pod_ip, config.intake_port, identity
        )

    async def publish(self) -> bool:
        """Make the slice name this replica; ``True`` if it had to be written."""
        discovery = client.DiscoveryV1Api(self.api)
        meta = self.slice["metadata"]
        try:
            current = await discovery.read_namespaced_endpoint_slice(
                meta["name"], meta["namespace"]
            )
        except ApiException as error:
            if error.status != 404:
                raise
            await discovery.create_namespaced_endpoint_slice(
                meta["namespace"],
                self.slice,  # type: ignore[arg-type]
            )
            logger.info("intake Service %s now routes to this replica", meta["name"])
            return True
        body: dict[str, Any] = self.api.sanitize_for_serialization(current)
        if _route(body) == _route(self.slice):
            return False
        # addressType is immutable: should the family differ, the API server refuses
        # the patch and the next poll (and the log) says so.
        await discovery.patch_namespaced_endpoint_slice(
            meta["name"],
            meta["namespace"],
            {"endpoints": self.slice["endpoints"], "ports": self.slice["ports"]},
            _content_type="application/merge-patch+json",
        )  # type: ignore[call-arg]
        logger.info("intake Service %s now routes to this replica", meta["name"])
        return True


def _route(endpoint_slice: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
    """What of a slice decides where traffic goes (the API server may add defaults)."""
    return (
        [e.get("addresses") for e in endpoint_slice.get("endpoints") or []],
        [p.get("port") for p in endpoint_slice.get("ports") or []],
    )
