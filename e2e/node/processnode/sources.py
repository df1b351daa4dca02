"""The API objects and pod fields that volumes and variables are made of.

ConfigMaps and Secrets are read when a container is created (a kubelet's
``CreateContainerConfigError`` while one is missing, unless it is optional),
and the downward API's ``fieldRef`` reads the pod as it is now.
"""

from __future__ import annotations

import base64
import re

from cluster.kube import JSON, Kube
from node.processnode.host import POD_IP


class ConfigError(Exception):
    """A container cannot be created yet (missing configMap/secret): CreateContainerConfigError."""


def api_object(kube: Kube, namespace: str, kind: str, name: str, optional: bool) -> JSON | None:
    """A ConfigMap or Secret (``kind`` is the plural); None only when ``optional``."""
    obj = kube.get_or_none(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
    if obj is None and not optional:
        raise ConfigError(f'{kind[:-1]} "{name}" not found')
    return obj


def object_data(kind: str, obj: JSON) -> dict[str, bytes]:
    """Key -> bytes of a ConfigMap (``data`` and ``binaryData``) or a Secret (base64)."""
    out: dict[str, bytes] = {}
    for k, v in (obj.get("data") or {}).items():
        out[k] = base64.b64decode(v) if kind == "secrets" else str(v).encode()
    for k, v in (obj.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v)
    return out


def selected(data: dict[str, bytes], items: list[JSON] | None) -> dict[str, bytes]:
    """The files a volume's ``items`` ask for (key -> path), or all keys without items."""
    if not items:
        return data
    return {it["path"]: data[it["key"]] for it in items if it["key"] in data}


def field_value(pod: JSON, path: str) -> str:
    """A downward API ``fieldRef`` of ``pod``: names, labels, annotations, IPs."""
    m = pod["metadata"]
    simple = {
        "metadata.name": m["name"],
        "metadata.namespace": m["namespace"],
        "metadata.uid": m["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIP": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path in simple:
        return str(simple[path])
    mm = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if mm:
        return str((m.get(mm.group(1)) or {}).get(mm.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        d = m.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(d.items()))
    raise ConfigError(f"unsupported fieldRef {path}")
