"""Population Based Training's *explore* step: a copied configuration, perturbed.

Jaderberg et al. (2017) perturb each hyperparameter by a factor of 0.8 or 1.2,
or resample it from the prior with some probability. Here a number is
multiplied by ``factor`` or ``1 / factor`` and snapped onto its range (its step,
its bounds, an int stays an int); where that leaves it unchanged (a value of 0, an
int too small for the factor to move) it moves one grid step instead, or is
resampled for a continuous float. A categorical moves to a neighbouring value in
its declared order, since lists such as ``[16, 32, 64]`` are usually ordered. A
parameter that a changed condition makes active gets a uniform value.

The change is returned as text (``lr x1.2; optimizer resampled``), which the
Trial records as its perturbation: the lineage says what each step changed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from kubesweep.api.experiment import ParameterValue
from kubesweep.suggestion.space import Dimension, Space, Values

#: The longest perturbation text a Trial records.
MAX_DESCRIPTION = 1024


def explore(
    space: Space,
    values: Mapping[str, ParameterValue],
    rng: np.random.Generator,
    *,
    factor: float,
    resample_probability: float,
) -> tuple[Values, str]:
    """A perturbed copy of ``values`` and the text that says what changed."""
    filler = {d.name: d.from_unit(float(rng.random())) for d in space.dimensions}
    changed: Values = {}
    notes: list[str] = []
    for dimension in space.dimensions:
        if dimension.name not in values:
            continue
        value = values[dimension.name]
        if rng.random() < resample_probability:
            changed[dimension.name] = filler[dimension.name]
            notes.append(f"{dimension.name} resampled")
            continue
        new, note = _perturb(dimension, value, rng, factor)
        changed[dimension.name] = new
        notes.append(note)
    for name, value in filler.items():
        changed.setdefault(name, value)
    pruned = space.prune(changed)
    notes += [f"{name} resampled" for name in pruned if name not in values]
    text = "; ".join(note for note in notes if note)
    return pruned, text[:MAX_DESCRIPTION]


def _perturb(
    dimension: Dimension, value: ParameterValue, rng: np.random.Generator, factor: float
) -> tuple[ParameterValue, str]:
    """One parameter moved by the factor (or a neighbour, or a new draw), and its note."""
    name = dimension.name
    up = bool(rng.random() < 0.5)
    if dimension.is_categorical:
        choices = dimension.choices
        at = next((i for i, c in enumerate(choices) if type(c) is type(value) and c == value), None)
        if at is None or len(choices) == 1:
            return (dimension.from_unit(float(rng.random())), f"{name} resampled")
        target = min(len(choices) - 1, at + 1) if up else max(0, at - 1)
        if target == at:  # at an end: the only neighbour is on the other side
            target = at - 1 if up else at + 1
        return choices[target], f"{name} {value!s}->{choices[target]!s}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return dimension.from_unit(float(rng.random())), f"{name} resampled"
    scale = factor if up else 1.0 / factor
    new = dimension.snap(float(value) * scale)
    if new == value and dimension.step is not None:
        low, high = dimension.parameter.low, dimension.parameter.high
        moved = float(value) + (dimension.step if up else -dimension.step)
        if not low <= moved <= high:
            moved = float(value) - (dimension.step if up else -dimension.step)
        new = dimension.snap(moved)
    elif new == value and not dimension.constant:
        return dimension.from_unit(float(rng.random())), f"{name} resampled"
    return new, f"{name} x{scale:.3g}"
