"""Generate ``kubesweep/values.schema.json`` from the documented ``values.yaml``.

The schema refuses unknown keys (``additionalProperties: false``) so that a typo
in a values file fails ``helm install`` instead of being silently ignored. Each
key's description is its ``# --`` comment in values.yaml, its type is that of its
default, and Kubernetes pass-through objects (resources, affinity, labels, ...)
stay open. Lists of Kubernetes objects (extraEnv, extraVolumes, ...) are open too;
extraArgs holds strings, image digests must look like one, and an enum whose
default is empty also takes "" (Kubernetes' or the operator's default).
``python charts/values_schema.py`` rewrites the file; a test fails when it is
stale or when a value lacks its comment.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent / "kubesweep"

#: Objects handed to Kubernetes as they are: any keys allowed.
PASS_THROUGH = frozenset(
    {
        "resources",
        "podSecurityContext",
        "containerSecurityContext",
        "affinity",
        "nodeSelector",
        "podAnnotations",
        "podLabels",
        "annotations",
        "labels",
        "commonLabels",
        "strategy",
    }
)
#: The items of lists whose entries are not Kubernetes objects.
ITEMS: dict[str, dict[str, Any]] = {
    "extraArgs": {"type": "string"},
    "customResources": {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "plural"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]+$",
            },
            "kind": {"type": "string", "pattern": "^[A-Z][A-Za-z0-9]*$"},
            "plural": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        },
    },
}
#: Strings of a fixed shape.
PATTERNS: dict[str, str] = {
    "digest": "^(sha256:[0-9a-f]{64})?$",
    # A Go-style duration, as the operator parses it; "" keeps finished workloads.
    "finishedWorkloadRetention": "^(([0-9]+(\\.[0-9]+)?(ms|s|m|h))+)?$",
}
#: Keys limited to a set of values.
ENUMS: dict[str, list[str]] = {
    "scope": ["cluster", "namespaced"],
    "logLevel": ["debug", "info", "warning", "error"],
    "pullPolicy": ["Always", "IfNotPresent", "Never"],
}
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):")


def comments(text: str) -> dict[tuple[str, ...], str]:
    """The ``# --`` description of each key path in values.yaml."""
    found: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped.removeprefix("# --").strip()]
            continue
        if stripped.startswith("#") and pending:
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if match:
            indent = len(match["indent"])
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match["key"]))
            if pending:
                found[tuple(key for _, key in stack)] = " ".join(pending)
        pending = [] if stripped else pending
    return found


def _schema(value: Any, path: tuple[str, ...], docs: dict[tuple[str, ...], str]) -> dict[str, Any]:
    key = path[-1] if path else ""
    node: dict[str, Any]
    if isinstance(value, bool):
        node = {"type": "boolean"}
    elif isinstance(value, int):
        node = {"type": "integer", "minimum": 0}
    elif isinstance(value, str):
        node = {"type": "string"}
        if key in ENUMS:
            node["enum"] = ENUMS[key] + ([""] if value == "" else [])
        if key in PATTERNS:
            node["pattern"] = PATTERNS[key]
    elif isinstance(value, list):
        node = {"type": "array"}
        if key in ITEMS:
            node["items"] = ITEMS[key]
    elif isinstance(value, dict):
        node = {"type": "object"}
        if key not in PASS_THROUGH:
            node["additionalProperties"] = False
            node["properties"] = {k: _schema(v, (*path, k), docs) for k, v in value.items()}
    else:
        node = {}
    if path in docs:
        node["description"] = docs[path]
    return node


def build() -> dict[str, Any]:
    """The schema for the chart's values."""
    text = (CHART / "values.yaml").read_text()
    schema = _schema(yaml.safe_load(text), (), comments(text))
    return {"$schema": "http://json-schema.org/draft-07/schema#", **schema}


def undocumented() -> list[str]:
    """Value paths without a ``# --`` comment (pass-through contents excepted)."""
    text = (CHART / "values.yaml").read_text()
    docs = comments(text)
    missing: list[str] = []

    def visit(value: Any, path: tuple[str, ...]) -> None:
        if path and path not in docs and not isinstance(value, dict):
            missing.append(".".join(path))
        if isinstance(value, dict) and (not path or path[-1] not in PASS_THROUGH or path in docs):
            for k, v in value.items():
                visit(v, (*path, k))

    visit(yaml.safe_load(text), ())
    return missing


def render() -> str:
    """The JSON text of the schema."""
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    (CHART / "values.schema.json").write_text(render())
    sys.exit(0)
