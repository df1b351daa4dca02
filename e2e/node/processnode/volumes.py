"""A pod's volumes as directories on this machine, before its containers start.

Each volume becomes a directory under the pod's ``volumes/`` (a ``hostPath`` is
the host's own path, and so is a claim bound to a ``hostPath`` or ``local``
PersistentVolume); the runtime bind-mounts them at each container's
``mountPath``. Their content is written once, when the pod starts: a kubelet's
later refresh of ConfigMaps, Secrets and tokens is not imitated.
"""

from __future__ import annotations

from pathlib import Path

from cluster.kube import JSON, Kube
from node.processnode.sources import (
    ConfigError,
    api_object,
    field_value,
    object_data,
    selected,
)


def write_files(target: Path, files: dict[str, bytes], mode: int) -> None:
    """``files`` (relative path -> content) under ``target``, each with ``mode``."""
    target.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        p = target / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(mode)


def projected_files(kube: Kube, pod: JSON, src: JSON) -> dict[str, bytes]:
    """The files of one projected source: a service-account token, configMap, secret, fields."""
    m = pod["metadata"]
    namespace = m["namespace"]
    files: dict[str, bytes] = {}
    if "serviceAccountToken" in src:
        t = src["serviceAccountToken"]
        sa = pod["spec"].get("serviceAccountName") or "default"
        spec: JSON = {
            "expirationSeconds": int(t.get("expirationSeconds", 3607)),
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": m["name"],
                "uid": m["uid"],
            },
        }
        if t.get("audience"):
            spec["audiences"] = [t["audience"]]
        tr = kube.create(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{sa}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        files[t["path"]] = tr["status"]["token"].encode()
    for kind, key in (("configmaps", "configMap"), ("secrets", "secret")):
        if key in src:
            s = src[key]
            obj = api_object(kube, namespace, kind, s["name"], bool(s.get("optional")))
            if obj:
                files.update(selected(object_data(kind, obj), s.get("items")))
    if "downwardAPI" in src:
        for it in src["downwardAPI"].get("items") or []:
            if "fieldRef" in it:
                files[it["path"]] = field_value(pod, it["fieldRef"]["fieldPath"]).encode()
    return files


def prepare_volumes(kube: Kube, pod: JSON, root: Path) -> dict[str, Path]:
    """Write the pod's volumes under ``root``; volume name -> the directory to mount.

    Raises :class:`ConfigError` (or the API's errors) while an object a volume
    needs is missing; the runner retries.
    """
    namespace = pod["metadata"]["namespace"]
    volumes: dict[str, Path] = {}
    for v in pod["spec"].get("volumes") or []:
        name = v["name"]
        target = root / name
        if "emptyDir" in v:
            target.mkdir(parents=True, exist_ok=True)
        elif "hostPath" in v:
            target = Path(v["hostPath"]["path"])
            if v["hostPath"].get("type") in ("DirectoryOrCreate", None, ""):
                target.mkdir(parents=True, exist_ok=True)
        elif "persistentVolumeClaim" in v:
            target = claimed_directory(kube, namespace, v["persistentVolumeClaim"]["claimName"])
        elif "configMap" in v or "secret" in v:
            kind, key = ("configmaps", "configMap") if "configMap" in v else ("secrets", "secret")
            s = v[key]
            obj_name = s.get("name") or s.get("secretName")
            obj = api_object(kube, namespace, kind, obj_name, bool(s.get("optional")))
            data = selected(object_data(kind, obj), s.get("items")) if obj else {}
            write_files(target, data, int(s.get("defaultMode", 0o644)))
        elif "projected" in v:
            files: dict[str, bytes] = {}
            for src in v["projected"].get("sources") or []:
                files.update(projected_files(kube, pod, src))
            write_files(target, files, int(v["projected"].get("defaultMode", 0o644)))
        elif "downwardAPI" in v:
            files = projected_files(kube, pod, {"downwardAPI": v["downwardAPI"]})
            write_files(target, files, int(v["downwardAPI"].get("defaultMode", 0o644)))
        else:
            raise ConfigError(f"volume {name}: type not supported by the process node")
        volumes[name] = target
    return volumes


def claimed_directory(kube: Kube, namespace: str, claim: str) -> Path:
    """The host directory of the PersistentVolume bound to ``claim`` (hostPath or local).

    Raises :class:`ConfigError` while the claim is missing or not bound yet (the
    runner retries, as a kubelet waits), or when its volume is of another type.
    """
    found = api_object(kube, namespace, "persistentvolumeclaims", claim, False)
    bound = (found or {}).get("spec", {}).get("volumeName")
    if not found or not bound or (found.get("status") or {}).get("phase") != "Bound":
        raise ConfigError(f"persistentVolumeClaim {claim}: not bound to a volume yet")
    volume = kube.get(f"/api/v1/persistentvolumes/{bound}")
    spec = volume.get("spec") or {}
    source = spec.get("hostPath") or spec.get("local")
    if not source:
        raise ConfigError(
            f"persistentVolumeClaim {claim}: volume {bound} is neither hostPath nor local, "
            "which the process node cannot mount"
        )
    target = Path(source["path"])
    target.mkdir(parents=True, exist_ok=True)
    return target
