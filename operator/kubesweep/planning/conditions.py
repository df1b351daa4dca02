"""Conditions that keep their transition time, so unchanged status stays byte-identical.

A condition's ``lastTransitionTime`` changes only when its ``status`` flips;
re-deriving the same conditions on every pass must produce the same objects,
otherwise the operator would patch status on every pass for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from kubesweep.api import Condition

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Desired:
    """A condition as the planner wants it, before transition times are settled."""

    type: str
    status: Status
    reason: str
    message: str = ""


def merge_conditions(
    previous: Sequence[Condition],
    desired: Iterable[Desired],
    *,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """The desired conditions, keeping each previous transition time whose status is unchanged.

    Conditions not desired any more are dropped: the set is the planner's whole view.
    """
    before = {c.type: c for c in previous}
    merged = []
    for want in desired:
        old = before.get(want.type)
        transition = old.last_transition_time if old and old.status == want.status else now
        merged.append(
            Condition(
                type=want.type,
                status=want.status,
                reason=want.reason,
                message=want.message,
                last_transition_time=transition,
                observed_generation=generation,
            )
        )
    return merged
