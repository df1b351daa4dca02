"""The few API calls the executor makes, each idempotent or tolerant of repeats.

Creating what exists (409) and deleting what is gone (404) are successes:
the planner may ask again after a restart, and the answer must be the same.
Status is written with JSON merge patches to the status subresource only; the
operator never writes an Experiment's spec.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubesweep.api import GROUP, VERSION
from kubesweep.operator.monitoring import OperatorMetrics
from kubesweep.operator.workloads import WorkloadResource

MERGE_PATCH = "application/merge-patch+json"


class Kube:
    """Typed-enough wrappers over ``kubernetes_asyncio``."""

    def __init__(self, api: client.ApiClient, metrics: OperatorMetrics | None = None) -> None:
        self.api = api
        self.metrics = metrics
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)

    def _count(self, resource: str, verb: str) -> None:
        if self.metrics is not None:
            self.metrics.api_writes.labels(resource, verb).inc()

    async def create_trial(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Create a Trial; ``None`` when it already exists."""
        self._count("trials", "create")
        try:
            created: dict[str, Any] = await self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "trials", body
            )
        except ApiException as error:
            if error.status == 409:
                return None
            raise
        return created

    async def create_job(self, namespace: str, body: dict[str, Any]) -> bool:
        """Create a Job; ``False`` when it already exists."""
        self._count("jobs", "create")
        try:
            await self.batch.create_namespaced_job(namespace, body)  # type: ignore[arg-type]
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and, in the background, its pods."""
        self._count("jobs", "delete")
        try:
            await self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise

    async def create_custom(
        self, resource: WorkloadResource, namespace: str, body: dict[str, Any]
    ) -> bool:
        """Create a workload of an enabled kind; ``False`` when it already exists."""
        self._count(resource.plural, "create")
        try:
            await self.custom.create_namespaced_custom_object(
                resource.group, resource.version, namespace, resource.plural, body
            )
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    async def delete_custom(self, resource: WorkloadResource, namespace: str, name: str) -> None:
        """Delete a workload of an enabled kind and, in the background, what it made."""
        self._count(resource.plural, "delete")
        try:
            await self.custom.delete_namespaced_custom_object(
                resource.group,
                resource.version,
                namespace,
                resource.plural,
                name,
                propagation_policy="Background",
            )
        except ApiException as error:
            if error.status != 404:
                raise

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """Merge-patch the status subresource of a kubesweep object (gone is fine)."""
        if not patch:
            return
        self._count(f"{plural}/status", "patch")
        try:
            await self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": patch},
                _content_type=MERGE_PATCH,
            )  # type: ignore[call-arg]
        except ApiException as error:
            if error.status != 404:
                raise

    async def patch_trial_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Merge-patch a Trial's status."""
        await self.patch_status("trials", namespace, name, patch)

    async def patch_experiment_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> None:
        """Merge-patch an Experiment's status."""
        await self.patch_status("experiments", namespace, name, patch)
