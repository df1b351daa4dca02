"""Lean copies of validated Trials, so that 100,000 of them fit the operator's memory.

The index keeps every Trial of the experiments it watches, and a pass reads
them as models (views, requests, early stopping and GPU-hours all take
:class:`~kubesweep.api.Trial` and :class:`~kubesweep.api.TrialStatus`). What a
validated model costs is mostly not its values: each model instance carries its
own set of the fields that were set (a set of six names costs 728 bytes, more
than the six values), every Trial of an experiment carries its own copy of the
same labels, and names repeated in every Trial (the experiment, parameter and
metric names, reasons) are separate strings per object. Measured with
``tracemalloc`` on the memory benchmark's finished Trials (20-point curve, two
metric summaries): about 7.0 KB per Trial as validated (see docs/benchmarks.md).

:func:`lean_trial` rebuilds a validated Trial with the same values, field by
field, through ``model_construct``: one shared fields-set per model class and
set of fields, labels, tags and empty mappings shared between Trials that have
equal ones, repeated strings interned. Nothing is dropped, so every reader sees
the value it saw before (``tests/operator/test_compact.py`` pins that), and the
models are frozen, so a shared part is never changed through one of them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from kubesweep.api import MetricSummary, Trial, TrialStatus
from kubesweep.api.trial import ObjectMeta, TrialSpec

M = TypeVar("M", bound=BaseModel)

#: One fields-set per model class and the names in it (there are a few dozen).
_FIELDS_SETS: dict[tuple[type[BaseModel], frozenset[str]], set[str]] = {}
#: Equal string mappings (labels, tags) shared between Trials; bounded below.
_MAPPINGS: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
#: Past this many distinct mappings, new ones are kept as they are (unique tags).
MAX_SHARED_MAPPINGS = 4096


def _fields_set(model: BaseModel) -> set[str]:
    names = frozenset(model.model_fields_set)
    key = (type(model), names)
    shared = _FIELDS_SETS.get(key)
    if shared is None:
        shared = _FIELDS_SETS[key] = set(names)
    return shared


def _rebuilt(model: M, **values: Any) -> M:
    """``model`` again, with a shared fields-set and some values replaced by leaner equal ones."""
    fields = {name: getattr(model, name) for name in type(model).model_fields}
    fields |= model.model_extra or {}
    built = type(model).model_construct(_fields_set(model), **(fields | values))
    if built.__pydantic_extra__ is not None:
        # With extra="allow", the extras are what is left of the keyword arguments:
        # a dict emptied of every field, still the size it was. Kept at its size.
        object.__setattr__(built, "__pydantic_extra__", dict(built.__pydantic_extra__))
    return built


def _text(value: str) -> str:
    return sys.intern(value)


def _mapping(values: Mapping[str, str]) -> dict[str, str]:
    """An equal dict of interned strings, one object for every equal mapping."""
    key = tuple((_text(k), _text(v)) for k, v in values.items())
    shared = _MAPPINGS.get(key)
    if shared is None:
        shared = dict(key)
        if len(_MAPPINGS) < MAX_SHARED_MAPPINGS:
            _MAPPINGS[key] = shared
    return shared


def _meta(meta: ObjectMeta) -> ObjectMeta:
    return _rebuilt(
        meta,
        labels=_mapping(meta.labels),
        annotations=_mapping(meta.annotations),
    )


def _spec(spec: TrialSpec) -> TrialSpec:
    return _rebuilt(
        spec,
        experiment=_text(spec.experiment),
        parameters={_text(k): v for k, v in spec.parameters.items()},
        tags=_mapping(spec.tags),
    )


def _metric(summary: MetricSummary) -> MetricSummary:
    return _rebuilt(summary, name=_text(summary.name))


def _status(status: TrialStatus) -> TrialStatus:
    return _rebuilt(
        status,
        reason=None if status.reason is None else _text(status.reason),
        metrics=[_metric(m) for m in status.metrics],
    )


def lean_trial(trial: Trial) -> Trial:
    """An equal Trial that costs less memory (see the module's docstring)."""
    return _rebuilt(
        trial,
        metadata=_meta(trial.metadata),
        spec=_spec(trial.spec),
        status=None if trial.status is None else _status(trial.status),
    )
