"""The ``Experiment`` resource as a whole, and loading it from a manifest.

A refusal names what the user must change: the manifest's file (in YAML
errors), the field (a cross-field rule's own field, ``spec.parameters[0].max``,
rather than the object it is checked on), the parameter by name where the path
has only its index, and for an unknown field or value the nearest known one
("did you mean maxTrials?").
"""

from __future__ import annotations

import difflib
import io
import re
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from kubesweep.api.base import ApiModel
from kubesweep.api.experiment import ExperimentSpec
from kubesweep.api.status import ExperimentStatus
from kubesweep.api.trial import ObjectMeta


class Experiment(ApiModel):
    """An Experiment as stored in the cluster."""

    api_version: Literal["kubesweep.io/v1alpha1"] = "kubesweep.io/v1alpha1"
    kind: Literal["Experiment"] = "Experiment"
    metadata: ObjectMeta
    spec: ExperimentSpec
    status: ExperimentStatus | None = None


class ManifestError(ValueError):
    """A manifest that is not a valid Experiment; the message names each field at fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def field_path(location: tuple[int | str, ...]) -> str:
    """Render a pydantic error location as a Kubernetes field path, e.g. ``spec.parameters[0]``."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(("function-", "tagged-union")) or part in {
            "bool",
            "int",
            "float",
            "str",
        }:
            continue
        else:
            path += f".{part}" if path else part
    return path


def _models() -> Iterator[type[ApiModel]]:
    """Every API model class (the subclasses of :class:`ApiModel`, at any depth)."""
    pending = list(ApiModel.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        yield model


def _rule_fields() -> dict[str, str]:
    """The field path of each cross-field rule, by its message (unique messages only)."""
    found: dict[str, str | None] = {}
    for model in _models():
        for rule in model.cel_rules:
            if rule.field_path is not None:
                seen = found.get(rule.message, rule.field_path)
                found[rule.message] = rule.field_path if seen == rule.field_path else None
    return {message: path for message, path in found.items() if path is not None}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class an annotation holds (through ``X | None``, lists and dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple, dict, Mapping):
        for argument in typing.get_args(annotation):
            found = _model_in(argument)
            if found is not None:
                return found
    return None


def _model_at(root: type[BaseModel], location: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that holds the fields at ``location`` (list indexes passed over)."""
    current: type[BaseModel] | None = root
    for part in location:
        if isinstance(part, int) or current is None:
            continue
        field = next(
            (f for name, f in current.model_fields.items() if part in (name, f.alias)), None
        )
        if field is None:
            return None
        current = _model_in(field.annotation)
    return current


def _nearest(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return close[0] if close else None


def _did_you_mean(problem: Mapping[str, Any], root: type[BaseModel] | None) -> str:
    """``; did you mean X?`` for an unknown field or value close to a known one."""
    location = tuple(problem["loc"])
    if problem["type"] == "extra_forbidden" and root is not None and location:
        model = _model_at(root, location[:-1])
        if model is not None and isinstance(location[-1], str):
            known = [f.alias or name for name, f in model.model_fields.items()]
            near = _nearest(location[-1], known)
            return f"; did you mean {near}?" if near else ""
    if problem["type"] == "enum" and isinstance(problem.get("input"), str):
        expected = re.findall(r"'([^']*)'", str((problem.get("ctx") or {}).get("expected", "")))
        near = _nearest(problem["input"], expected)
        return f"; did you mean {near}?" if near else ""
    return ""


def _named_items(value: Any) -> list[str] | None:
    """The names of a list of named objects (parameters), if ``value`` is one."""
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        names = [v.get("name") for v in value]
        if all(isinstance(n, str) for n in names):
            return [str(n) for n in names]
    return None


def _at(document: Any, location: tuple[int | str, ...]) -> Any:
    """The value of ``document`` at a pydantic location, or ``None``."""
    node = document
    for part in location:
        in_list = isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node)
        in_mapping = isinstance(part, str) and isinstance(node, Mapping) and part in node
        if in_list or in_mapping:
            node = node[part]
        elif isinstance(part, str) and part.startswith(("function-", "tagged-union")):
            continue
        else:
            return None
    return node


def _locate(
    problem: Mapping[str, Any], document: Any, message: str, rule_fields: Mapping[str, str]
) -> tuple[tuple[int | str, ...], str]:
    """The problem's location with its rule's own field, and the parameter it names.

    A rule checked on a whole object (a parameter, the spec) is reported there by
    pydantic; its ``field_path`` says which field to change. A duplicate among
    named objects is pointed at by its second occurrence.
    """
    location = tuple(problem["loc"])
    where = _at(document, location) if document is not None else problem.get("input")
    extra = ""
    suffix = rule_fields.get(message)
    if suffix:
        for part in suffix.strip(".").split("."):
            location += (part,)
            where = _at(where, (part,)) if where is not None else None
    names = _named_items(where)
    if names is not None and len(set(names)) < len(names):
        seen: dict[str, int] = {}
        for index, name in enumerate(names):
            if name in seen:
                location += (index,)
                extra = f" ({name} is also {location[-2]}[{seen[name]}])"
                break
            seen[name] = index
    return location, extra


def _parameter_name(location: tuple[int | str, ...], document: Any) -> str:
    """`` (parameter lr)`` when the location passes through a named list item."""
    for position in range(len(location) - 1, 0, -1):
        index, key = location[position], location[position - 1]
        if isinstance(index, int) and isinstance(key, str):
            item = _at(document, location[: position + 1])
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                return f" ({key.removesuffix('s')} {item['name']})"
    return ""


def describe_validation_error(error: ValidationError, document: Any = None) -> list[str]:
    """One line per problem: the field path (with the parameter's name), then what is wrong.

    ``document`` is what was validated; without it the names come from what each
    problem carries, which covers the rules checked on a parameter or the spec.
    """
    root = next((m for m in _models() if m.__name__ == error.title), None)
    rule_fields = _rule_fields()
    lines = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        location, extra = _locate(problem, document, message, rule_fields)
        source = document
        if source is None:  # the problem's own input is the object at its location
            source = _nest(tuple(problem["loc"]), problem.get("input"))
        where = field_path(location) + _parameter_name(location, source)
        text = message + extra + _did_you_mean(problem, root)
        lines.append(f"{where}: {text}" if where else text)
    return list(dict.fromkeys(lines))


def _nest(location: tuple[int | str, ...], value: Any) -> Any:
    """A document holding ``value`` at ``location`` (lists padded with empty objects)."""
    for part in reversed(location):
        value = [{} for _ in range(part)] + [value] if isinstance(part, int) else {part: value}
    return value


def parse_experiment(document: Any) -> Experiment:
    """Validate a decoded manifest as an Experiment, or raise :class:`ManifestError`."""
    if not isinstance(document, dict):
        raise ManifestError(["the manifest must be a mapping with apiVersion, kind and spec"])
    try:
        return Experiment.model_validate(document)
    except ValidationError as error:
        raise ManifestError(describe_validation_error(error, document)) from None


def load_experiments(text: str, source: str | None = None) -> list[Experiment]:
    """Parse every Experiment in a (multi-document) YAML manifest.

    ``source`` names the manifest (its file) in YAML errors, which otherwise say
    ``<unicode string>``.
    """
    stream = io.StringIO(text)
    stream.name = source or "<manifest>"  # read by the YAML reader for its messages
    try:
        documents = [d for d in yaml.safe_load_all(stream) if d is not None]
    except yaml.YAMLError as error:
        raise ManifestError([f"not valid YAML: {error}"]) from None
    return [parse_experiment(d) for d in documents]
