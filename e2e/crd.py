"""Custom resource definitions that tests make up, and whether the API server serves one.

Tests stand for "any kind a platform team enables" with small CRDs of the group
``e2e.kubesweep.io``; :func:`definition` writes one from its kind and schema, and
:func:`established` says whether the API server serves a CRD yet (its
``Established`` condition), what a test waits on before creating objects of it.
"""

from __future__ import annotations

from typing import Any

from cluster.kube import JSON
from conftest import Cluster

GROUP = "e2e.kubesweep.io"
#: A schema that keeps whatever it is given.
ANY_OBJECT: JSON = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def definition(kind: str, plural: str, schema: JSON = ANY_OBJECT) -> dict[str, Any]:
    """A namespaced CRD of ``GROUP``, version ``v1`` served and stored, with ``schema``."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def established(cluster: Cluster, name: str) -> bool:
    """Whether the API server serves the CRD ``name`` (its ``Established`` condition)."""
    crd = cluster.kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    return any(
        c["type"] == "Established" and c["status"] == "True"
        for c in (crd.get("status") or {}).get("conditions") or []
    )
