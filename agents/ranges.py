"""The values a numeric setting allows, declared on the field it constrains.

A numeric field of a configuration dataclass carries its :class:`Range` in its annotation,
``Annotated[float, Range(0, 1)]``; :func:`check_values` checks every such field (and that every numeric value
is finite), and :func:`field_range` reads one field's range. The command line (:mod:`agents.cli`) checks
every dataclass it parses this way, so a value out of range is one line naming its flag.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

from agents.scripting import ConfigError

__all__ = ["Range", "MAX_SEED", "field_range", "check_values"]


@dataclass(frozen=True)
class Range:
    """The values a numeric flag allows: ``low <= value`` (``low < value`` if ``open_low``), ``value <= high``."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def admits(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or value <= self.high

    def __str__(self) -> str:
        low = "" if self.low is None else f"{'>' if self.open_low else '>='} {_number(self.low)}"
        high = "" if self.high is None else f"<= {_number(self.high)}"
        return " and ".join(part for part in (low, high) if part) or "finite"


def _number(value: float) -> str:
    """A bound as written: integers in full (``4294967295``), other values short (``0.001``)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


#: Seeds are at most 2**32 - 1, numpy's and most RL libraries' range; every seed derived from one (env
#: ``i``'s ``seed + i``, rank ``r``'s ``seed + r``) then stays far inside the 64 bits the generators take.
MAX_SEED = 2**32 - 1


def field_range(cls: type, name: str) -> Range:
    """The :class:`Range` declared on field ``name`` of dataclass ``cls`` (``Annotated[..., Range(...)]``);
    ``Range()`` (finite) if it declares none."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return next((m for m in getattr(hints.get(name), "__metadata__", ()) if isinstance(m, Range)), Range())


def check_values(config: Any) -> None:
    """Every numeric field of dataclass ``config`` is finite and within its declared :class:`Range`; else
    a :class:`ConfigError` naming its flag, its range and the value given. ``None`` is always allowed
    where the field's type allows it."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        allowed = field_range(type(config), f.name)
        if not math.isfinite(value) or not allowed.admits(value):
            raise ConfigError(f"--{f.name.replace('_', '-')} must be {allowed}; got {value}")
