"""A one-file container image written as an OCI archive, with no image builder.

The real node's pod sandbox needs an image of a program that only waits for a
signal (``pause``, built with the node's binaries). Writing that archive directly
keeps the node independent of an image builder and of any registry.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any


def _tar_bytes(entries: list[tuple[str, bytes, int]]) -> bytes:
    """A reproducible tar: fixed owners and times, so the same input gives the same digest."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
        "size": len(data),
        **extra,
    }


def single_binary_image(binary: bytes, path: str, reference: str) -> bytes:
    """The bytes of an OCI archive: one layer holding ``binary`` at ``path``, its entrypoint."""
    layer = _tar_bytes([(path.lstrip("/"), binary, 0o755)])
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": [path], "User": "65535:65535"},
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()],
            },
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [_descriptor("application/vnd.oci.image.layer.v1.tar", layer)],
        },
        sort_keys=True,
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                _descriptor(
                    "application/vnd.oci.image.manifest.v1+json",
                    manifest,
                    annotations={
                        "io.containerd.image.name": reference,
                        "org.opencontainers.image.ref.name": reference.rpartition(":")[2],
                    },
                )
            ],
        },
        sort_keys=True,
    ).encode()
    blobs = [
        (f"blobs/sha256/{hashlib.sha256(b).hexdigest()}", b, 0o644)
        for b in (layer, config, manifest)
    ]
    return _tar_bytes(
        [
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644),
            ("index.json", index, 0o644),
            *blobs,
        ]
    )


def write_single_binary_image(binary: Path, path: str, reference: str, archive: Path) -> None:
    archive.write_bytes(single_binary_image(binary.read_bytes(), path, reference))
