"""The report's axes: a range and round ticks for each plot, decided before drawing.

Ticks placed at fractions of the data's extent read as ``-0.02028, 0.6188,
1.258``; ticks at 1, 2 or 5 times a power of ten (whole numbers for integer
parameters, powers of ten on log axes) read at a glance. The range is the
data's, padded a little so marks do not sit on the frame, but never across
zero when the data does not cross it: a loss axis does not go below 0.

An axis is plain data, ``{"min", "max", "log", "ticks": [[value, label], ...]}``,
which the page's script maps onto pixels without deciding anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

#: About how many ticks an axis gets.
TICKS = 5
#: Share of the data's extent added on each side.
PAD = 0.05


def nice_step(span: float, count: int = TICKS) -> float:
    """A step of 1, 2 or 5 times a power of ten that cuts ``span`` into about ``count`` parts."""
    if not span > 0 or not math.isfinite(span):
        return 1.0
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    normalized = raw / magnitude
    if normalized < 1.5:
        factor = 1.0
    elif normalized < 3.0:
        factor = 2.0
    elif normalized < 7.0:
        factor = 5.0
    else:
        factor = 10.0
    return factor * magnitude


def tick_label(value: float, step: float) -> str:
    """``value`` with as many decimals as ``step`` needs, trailing zeros dropped."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or step < 1e-4:
        return f"{value:.3g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _ticks(low: float, high: float, step: float) -> list[list[Any]]:
    first = math.ceil(low / step - 1e-9)
    last = math.floor(high / step + 1e-9)
    values = [round(k * step, 12) for k in range(first, last + 1)]
    return [[value, tick_label(value, step)] for value in values]


def _finite(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def linear_axis(
    values: Iterable[float | None],
    *,
    bounds: tuple[float, float] | None = None,
    integer: bool = False,
    pad: float = PAD,
    stay_signed: bool = True,
) -> dict[str, Any]:
    """A linear axis over ``values`` (and ``bounds``, a parameter's range, if given).

    ``integer`` keeps ticks on whole numbers (an int parameter, a step, a trial index).
    ``stay_signed`` keeps the padding from crossing zero, for values (a loss is never
    negative); a position (a step, a trial index) is padded freely so that its first
    mark does not sit on the frame.
    """
    data = _finite(values)
    if bounds is not None:
        data += _finite(bounds)
    if not data:
        data = [0.0, 1.0]
    low, high = min(data), max(data)
    if high == low:
        spread = 1.0 if integer else (abs(low) * 0.1 or 1.0)
        low, high = low - spread, high + spread
    extra = (high - low) * pad
    padded_low = low - extra
    padded_high = high + extra
    if stay_signed and low >= 0 > padded_low:
        padded_low = 0.0  # no axis below zero for values that never are
    if stay_signed and high <= 0 < padded_high:
        padded_high = 0.0
    step = nice_step(padded_high - padded_low)
    if integer:
        step = max(1.0, round(step))
    return {
        "min": padded_low,
        "max": padded_high,
        "log": False,
        "ticks": _ticks(padded_low, padded_high, step),
    }


def log_axis(low: float, high: float) -> dict[str, Any]:
    """A log axis from ``low`` to ``high`` (both above zero): ticks at powers of ten.

    Over less than two decades the ticks are 1, 2 and 5 times a power of ten,
    and where even those give fewer than two, round values of a linear scale.
    """
    if not (low > 0 and high > low):
        return linear_axis([low, high])
    ticks: list[list[Any]] = []
    for factors in ((1.0,), (1.0, 2.0, 5.0)):
        ticks = []
        for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
            for factor in factors:
                value = float(f"{factor * 10.0**exponent:.12g}")
                if low * (1 - 1e-9) <= value <= high * (1 + 1e-9):
                    ticks.append([value, f"{value:g}"])
        if len(ticks) >= 3:
            break
    if len(ticks) < 2:
        step = nice_step(high - low)
        ticks = _ticks(low, high, step)
    return {"min": low, "max": high, "log": True, "ticks": ticks}
