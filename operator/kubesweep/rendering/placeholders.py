"""``${params.NAME}`` and ``${trial.name}`` placeholders: finding, checking, substituting.

With ``trialTemplate.checkpoints``, ``${trial.checkpointDir}`` and ``${trial.resumeFrom}``
exist too (:mod:`kubesweep.rendering.checkpoints`).

A placeholder is ``${<namespace>.<name>}`` where the namespace is an identifier.
That form was chosen so that the shell's own ``${VAR}``, ``${VAR:-x.y}`` and
Kubernetes' ``$(VAR)`` pass through untouched: neither can start with an
identifier followed by a dot, so every ``${ident.`` in a manifest is ours and a
misspelt one (``${param.lr}``, ``${params.lrr}``) is an error rather than a
literal that silently reaches the trainer. ``$${`` writes a literal ``${``.

The same scanner serves two callers: :func:`check_placeholders` reports every
problem of a spec at once (for admission-time validation and ``kubesweep
validate``), and :func:`substitute` raises on the first one at render time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubesweep.api import ExperimentSpec, ParameterType, ParameterValue
from kubesweep.rendering.checkpoints import CHECKPOINT_FIELDS
from kubesweep.rendering.workloads import primary_containers

#: ``$${`` (an escaped literal) or ``${ns.rest}`` (a placeholder).
PLACEHOLDER = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\.([^{}]*)\}")

#: Names under ``trial.`` and ``experiment.`` that every trial can resolve.
TRIAL_FIELDS = ("name", "index", "namespace")
EXPERIMENT_FIELDS = ("name",)


class RenderError(ValueError):
    """A trial that cannot become a Job; the message names the field and the fix.

    It is a ``ValueError`` because it is always a problem of the spec (or of the
    trial against the spec), never a transient one: the operator reports it as
    permanent instead of retrying.
    """


@dataclass(frozen=True)
class Placeholder:
    """One occurrence of a placeholder: where it is and what it says."""

    path: str
    text: str
    namespace: str
    name: str

    @property
    def key(self) -> str:
        """The placeholder without its braces, e.g. ``params.lr``."""
        return f"{self.namespace}.{self.name}"


def known_placeholders(spec: ExperimentSpec) -> list[str]:
    """Every placeholder a trial of ``spec`` resolves, in the order a user reads them."""
    names = [f"params.{p.name}" for p in spec.parameters]
    if spec.fidelity is not None:
        names.append(f"params.{spec.fidelity.parameter}")
    names += [f"trial.{field}" for field in TRIAL_FIELDS]
    if spec.fidelity is not None:
        names.append("trial.fidelity")
    if spec.trial_template.checkpoints is not None:
        names += [f"trial.{field}" for field in CHECKPOINT_FIELDS]
    names += [f"experiment.{field}" for field in EXPERIMENT_FIELDS]
    return names


def find_placeholders(text: str, path: str) -> Iterator[Placeholder]:
    """The placeholders in one string (escaped ``$${`` excluded)."""
    for match in PLACEHOLDER.finditer(text):
        if match.group(1) is not None:
            yield Placeholder(path, match.group(0), match.group(1), match.group(2))


def primary_strings(container: Mapping[str, Any], path: str) -> Iterator[tuple[str, str]]:
    """``(field path, text)`` for each string of a container that is substituted.

    Only ``command``, ``args`` and literal ``env[].value`` are: those are what a
    trainer reads, and keeping the set small keeps the substitution predictable
    (an image name or a volume path never changes per trial).
    """
    for field in ("command", "args"):
        for index, item in enumerate(container.get(field) or ()):
            if isinstance(item, str):
                yield f"{path}.{field}[{index}]", item
    for index, entry in enumerate(container.get("env") or ()):
        if isinstance(entry, Mapping) and isinstance(entry.get("value"), str):
            yield f"{path}.env[{index}].value", entry["value"]


def primary_container_path(spec: ExperimentSpec) -> tuple[str, Mapping[str, Any]] | None:
    """The field path and body of the (first) primary container, if the template has it."""
    found = primary_containers(spec.trial_template)
    return found[0] if found else None


def every_string(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """``(field path, text)`` for each string anywhere under ``node``."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield from every_string(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from every_string(value, f"{path}[{index}]")


def substitute_everywhere(node: Any, path: str, values: Mapping[str, str], known: list[str]) -> Any:
    """A copy of ``node`` with the placeholders of every string in it replaced."""
    if isinstance(node, str):
        return substitute(node, path, values, known)
    if isinstance(node, Mapping):
        return {k: substitute_everywhere(v, f"{path}.{k}", values, known) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_everywhere(v, f"{path}[{i}]", values, known) for i, v in enumerate(node)]
    return node


def _substituted_strings(spec: ExperimentSpec) -> Iterator[tuple[str, str]]:
    """The strings a trial's placeholders are substituted in.

    A Job's or JobSet's primary containers' command, args and env; every string of a
    custom resource's spec, since only its author knows where its program reads
    arguments (a RayJob's entrypoint, a container's args).
    """
    resource = spec.trial_template.resource
    if resource is not None:
        yield from every_string(resource.spec, "trialTemplate.resource.spec")
        return
    for path, container in primary_containers(spec.trial_template):
        yield from primary_strings(container, path)


def check_placeholders(spec: ExperimentSpec) -> list[str]:
    """Every unknown placeholder where placeholders are substituted, one message each.

    Run it at admission (or before creating the first trial) so a typo fails the
    Experiment at once rather than every trial later.
    """
    known = known_placeholders(spec)
    problems = []
    for where, text in _substituted_strings(spec):
        for placeholder in find_placeholders(text, where):
            if placeholder.key not in known:
                problems.append(unknown_message(placeholder, known))
    return problems


def unknown_message(placeholder: Placeholder, known: list[str]) -> str:
    """The message for a placeholder no trial can resolve."""
    listed = ", ".join(f"${{{name}}}" for name in known)
    return (
        f"{placeholder.path}: unknown placeholder {placeholder.text}; "
        f"known placeholders are {listed} (write $${{ for a literal ${{)"
    )


def format_value(value: ParameterValue, kind: ParameterType | str | None = None) -> str:
    """A parameter value as text in a command line or environment variable.

    Integers stay integers even when an algorithm hands them over as floats
    (``3.0`` for an int parameter is ``3``, as ``--layers=3.0`` would break an
    ``int()`` parser); floats use Python's shortest round-trip form; booleans are
    ``true``/``false`` as in YAML and JSON.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float) and kind == "int":
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise RenderError(f"integer parameter has non-integer value {value!r}")
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


def json_value(value: ParameterValue, kind: ParameterType | str | None = None) -> ParameterValue:
    """A parameter value for ``KUBESWEEP_PARAMS``: int parameters as JSON integers."""
    if isinstance(value, float) and kind == "int" and value.is_integer():
        return int(value)
    return value


def params_json(values: Mapping[str, ParameterValue]) -> str:
    """The assignment as compact JSON with sorted keys, so identical trials render identically."""
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"), allow_nan=False)


def substitute(text: str, path: str, values: Mapping[str, str], known: list[str]) -> str:
    """``text`` with each placeholder replaced from ``values``.

    ``values`` maps ``params.lr`` style keys to their text. A placeholder that
    the spec knows but this trial lacks (an inactive conditional parameter)
    becomes the empty string, so ``--momentum=${params.momentum}`` still parses;
    a placeholder the spec does not know raises :class:`RenderError`.
    """

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "${"
        placeholder = Placeholder(path, match.group(0), match.group(1), match.group(2))
        if placeholder.key in values:
            return values[placeholder.key]
        if placeholder.key in known:
            return ""
        raise RenderError(unknown_message(placeholder, known))

    return PLACEHOLDER.sub(replace, text)
