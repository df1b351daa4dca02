"""Trials as the operator's index keeps them: 100,000 of one experiment fit its memory.

The index keeps every Trial of the experiments it watches, and almost all of
them are finished: at 100,000 trials, what each one costs is what the operator
costs. A pass reads a Trial's name, uid, index, parameters, fidelity, tags and
status (views, requests, early stopping, GPU-hours); nothing reads its labels,
annotations or owner references, and only a trial that may still run is
rendered into a workload, from the whole validated Trial. A validated Trial is
six model instances, each with its own dict and its own set of the fields that
were set (a set of six names costs 728 bytes, more than the six values), with
the same labels copied into every Trial and names repeated as separate strings.

:func:`indexed_trial` keeps instead one slotted :class:`IndexedTrial` of what a
pass reads: a finished trial's status rebuilt with one shared fields-set per set
of fields and its curve packed into two arrays (:class:`~kubesweep.api.PackedCurve`;
metric summaries are slotted dataclasses), tags shared between Trials that have
equal ones, repeated names interned. The validated
Trial is kept beside it only while the trial may still run. Every reader sees
the values it saw in the validated Trial (``tests/operator/test_compact.py``
pins that), and the models are frozen, so a shared part is never changed
through one of them. Measured per finished Trial of the memory benchmark in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubesweep.api import MetricSummary, PackedCurve, ParameterValue, Trial, TrialStatus

#: One fields-set per set of TrialStatus fields (there are a few).
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}
#: Equal string mappings (tags) shared between Trials; bounded below.
_MAPPINGS: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
#: Past this many distinct mappings, new ones are kept as they are (unique tags).
MAX_SHARED_MAPPINGS = 4096


@dataclass(frozen=True, slots=True)
class IndexedTrial:
    """One Trial as a reconciliation pass reads it."""

    name: str
    namespace: str
    uid: str | None
    experiment: str
    index: int
    parameters: Mapping[str, ParameterValue]
    fidelity: float | None
    tags: Mapping[str, str]
    status: TrialStatus | None
    #: The validated Trial while the trial may still run (its workload is rendered
    #: from it); ``None`` once it has finished.
    source: Trial | None = None

    @property
    def finished(self) -> bool:
        """Whether the trial will not run again."""
        return self.status is not None and self.status.phase.is_finished


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


def _metric(summary: MetricSummary) -> MetricSummary:
    """The summary with its name interned, in place: it was just validated, nothing shares it."""
    object.__setattr__(summary, "name", _text(summary.name))
    return summary


def lean_status(status: TrialStatus) -> TrialStatus:
    """An equal finished TrialStatus: a shared fields-set, interned names, a packed curve."""
    names = frozenset(status.model_fields_set)
    fields_set = _FIELDS_SETS.get(names)
    if fields_set is None:
        fields_set = _FIELDS_SETS[names] = set(names)
    values: dict[str, Any] = {name: getattr(status, name) for name in TrialStatus.model_fields}
    values["reason"] = None if status.reason is None else _text(status.reason)
    values["metrics"] = [_metric(m) for m in status.metrics]
    with contextlib.suppress(OverflowError):  # a step beyond 64 bits: the list as it is
        values["curve"] = PackedCurve(status.curve)
    return TrialStatus.model_construct(fields_set, **values)


def indexed_trial(trial: Trial) -> IndexedTrial:
    """What the index keeps of a validated Trial (see the module's docstring)."""
    status = trial.status
    finished = status is not None and status.phase.is_finished
    return IndexedTrial(
        name=_text(trial.metadata.name),
        namespace=_text(trial.metadata.namespace or ""),
        uid=trial.metadata.uid,
        experiment=_text(trial.spec.experiment),
        index=trial.spec.index,
        parameters={_text(k): v for k, v in trial.spec.parameters.items()},
        fidelity=trial.spec.fidelity,
        tags=_mapping(trial.spec.tags),
        status=lean_status(status) if finished and status is not None else status,
        source=None if finished else trial,
    )
