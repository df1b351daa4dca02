"""A container's environment variables, as a kubelet builds them.

The base is what a process on this machine needs (``PATH`` with the
repository's virtualenv first, ``HOME``, ``LANG``), the API server's address as
in-cluster clients expect it, and the pod's GPU indices; then ``envFrom`` and
``env`` in order, with ``$(VAR)`` expansion and every ``valueFrom`` source.
"""

from __future__ import annotations

import os
import re
import urllib.parse

from cluster.kube import JSON, Kube
from node.processnode.host import POD_IP, VENV_BIN
from node.processnode.sources import ConfigError, api_object, field_value, object_data


def expand(s: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names are replaced, ``$$`` escapes."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, s)


def container_env(kube: Kube, pod: JSON, spec: JSON, gpus: list[int]) -> dict[str, str]:
    """The variables of container ``spec`` of ``pod``, which holds GPUs ``gpus``.

    Raises :class:`ConfigError` (or the API's errors) while a referenced object
    or key is missing and not optional.
    """
    namespace = pod["metadata"]["namespace"]
    apiserver = urllib.parse.urlsplit(kube.config.server)
    env: dict[str, str] = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/root"),
        "HOSTNAME": pod["metadata"]["name"],
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "KUBERNETES_SERVICE_HOST": apiserver.hostname or POD_IP,
        "KUBERNETES_SERVICE_PORT": str(apiserver.port or 443),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(apiserver.port or 443),
        "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus)),
        "NVIDIA_VISIBLE_DEVICES": ",".join(map(str, gpus)) if gpus else "void",
    }
    for ef in spec.get("envFrom") or []:
        prefix = ef.get("prefix", "")
        for kind, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            if key in ef:
                obj = api_object(
                    kube, namespace, kind, ef[key]["name"], bool(ef[key].get("optional"))
                )
                for k, b in (object_data(kind, obj) if obj else {}).items():
                    env[prefix + k] = b.decode(errors="replace")
    for e in spec.get("env") or []:
        if "valueFrom" not in e:
            env[e["name"]] = expand(e.get("value", ""), env)
            continue
        vf = e["valueFrom"]
        if "fieldRef" in vf:
            env[e["name"]] = field_value(pod, vf["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in vf:
            res = spec.get("resources") or {}
            kind_, _, rname = vf["resourceFieldRef"]["resource"].partition(".")
            env[e["name"]] = str((res.get(kind_) or {}).get(rname, "0"))
        else:
            kind, key = (
                ("configmaps", "configMapKeyRef")
                if "configMapKeyRef" in vf
                else ("secrets", "secretKeyRef")
            )
            ref = vf[key]
            obj = api_object(kube, namespace, kind, ref["name"], bool(ref.get("optional")))
            data = object_data(kind, obj) if obj else {}
            if ref["key"] in data:
                env[e["name"]] = data[ref["key"]].decode(errors="replace")
            elif not ref.get("optional"):
                raise ConfigError(f"couldn't find key {ref['key']} in {kind[:-1]} {ref['name']}")
    return env
