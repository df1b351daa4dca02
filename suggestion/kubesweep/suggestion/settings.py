"""Declared algorithm settings: defaults, types, bounds, and refusals that name the setting.

Each algorithm lists its settings as :class:`Setting` values; :func:`parse`
checks a request's ``algorithm.settings`` against them, so an unknown key or a
value of the wrong type or range is refused with a
:class:`~kubesweep.suggestion.contract.SettingsError` naming the setting, the
same way for every algorithm. The result is a :class:`Settings` with typed
getters, which keeps mypy strict without casts in the algorithms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubesweep.api.experiment import ParameterValue
from kubesweep.suggestion.contract import SettingsError


@dataclass(frozen=True)
class Setting:
    """One setting an algorithm accepts.

    ``kind`` is the Python type of the value (``int``, ``float``, ``bool`` or
    ``str``); ``minimum``/``maximum`` bound numbers (inclusive) and ``choices``
    bound strings.
    """

    name: str
    default: ParameterValue
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None

    @property
    def kind(self) -> type:
        """The type a value must have (int is accepted where a float is expected)."""
        return type(self.default)

    def check(self, value: ParameterValue) -> ParameterValue:
        """``value`` converted to the setting's type, or :class:`SettingsError`."""
        kind = self.kind
        if kind is bool:
            if not isinstance(value, bool):
                raise SettingsError(self.name, f"must be true or false, not {value!r}")
            return value
        if kind is str:
            if not isinstance(value, str):
                raise SettingsError(self.name, f"must be a string, not {value!r}")
            if self.choices is not None and value not in self.choices:
                allowed = ", ".join(self.choices)
                raise SettingsError(self.name, f"must be one of {allowed}, not {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(self.name, f"must be a number, not {value!r}")
        number: int | float
        if kind is int:
            if not float(value).is_integer():
                raise SettingsError(self.name, f"must be a whole number, not {value!r}")
            number = int(value)
        else:
            if not math.isfinite(value):
                raise SettingsError(self.name, f"must be finite, not {value!r}")
            number = float(value)
        if self.minimum is not None and number < self.minimum:
            raise SettingsError(self.name, f"must be at least {self.minimum:g}, not {value!r}")
        if self.maximum is not None and number > self.maximum:
            raise SettingsError(self.name, f"must be at most {self.maximum:g}, not {value!r}")
        return number


class Settings:
    """Validated settings with typed access; every declared setting has a value."""

    def __init__(self, values: Mapping[str, ParameterValue]) -> None:
        self._values = dict(values)

    def integer(self, name: str) -> int:
        """An int setting."""
        value = self._values[name]
        assert isinstance(value, int)
        assert not isinstance(value, bool)
        return value

    def real(self, name: str) -> float:
        """A float setting."""
        value = self._values[name]
        assert isinstance(value, int | float)
        assert not isinstance(value, bool)
        return float(value)

    def flag(self, name: str) -> bool:
        """A bool setting."""
        value = self._values[name]
        assert isinstance(value, bool)
        return value

    def text(self, name: str) -> str:
        """A string setting."""
        value = self._values[name]
        assert isinstance(value, str)
        return value

    def as_dict(self) -> dict[str, ParameterValue]:
        """All settings, defaults filled in."""
        return dict(self._values)


def parse(declared: Sequence[Setting], given: Mapping[str, ParameterValue]) -> Settings:
    """Check ``given`` against ``declared``; unknown or invalid settings raise SettingsError."""
    known = {s.name: s for s in declared}
    for name in given:
        if name not in known:
            accepted = ", ".join(sorted(known)) or "none"
            raise SettingsError(name, f"unknown setting; accepted settings: {accepted}")
    return Settings({s.name: s.check(given.get(s.name, s.default)) for s in declared})


def describe(declared: Sequence[Setting]) -> str:
    """A bullet list of settings and defaults, for module docstrings and docs."""
    return "\n".join(f"- ``{s.name}`` (default ``{s.default!r}``): {s.doc}" for s in declared)
