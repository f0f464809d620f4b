"""Checks a value from a config file, an override or a Python call against a type hint.

Used by the config sections and by the plug-in registries, so that `model.latent_dim`, a network's `hidden`
and an objective's `beta` are all checked by the same rules: ints widen to floats, tuples become lists,
bools are not numbers, floats must be finite (nan and inf are refused), ints must fit in 64 bits, and a failure
names the key. `Range` is the valid range of a number: the config sections declare one per numeric field and the
CLI's argument types (`vaekit.commands.common`) are built from the same class, so that every message reads alike.
"""

from __future__ import annotations

import collections.abc
import math
import numbers
import types
import typing
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

_SEQUENCES = (list, tuple, collections.abc.Sequence)
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Range:
    """The valid range of a number: `lo` <= value <= `hi` (strict with `lo_open` / `hi_open`); None = unbounded.

    `describe()` words it the way every message does: ">= 1", "> 0", "in [0, 1)", "in [1, 1024]".
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, value: Any) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            return False
        return True

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        return "any finite number"


def _num(bound: float) -> str:
    """A bound as written: 1, 0.5, 2**63 - 1 (large powers of two read better as such)."""
    if isinstance(bound, int) and bound > 2**20:
        for exp in range(21, 65):
            if bound == 2**exp - 1:
                return f"2**{exp} - 1"
            if bound == 2**exp:
                return f"2**{exp}"
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def shown(value: Any, limit: int = 80) -> str:
    """repr(value) for a message, shortened (and safe for ints too long for str())."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_type(value: Any, hint: Any, path: str) -> Any:
    """`value` converted to `hint` (int -> float, tuple -> list) or a ConfigError naming `path`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if float in options and isinstance(value, float) and not math.isfinite(value):
            raise _nonfinite(value, path)
        for option in options:
            try:
                return check_type(value, option, path)
            except ConfigError:
                pass
        raise _mismatch(value, hint, path)
    if hint is Any or hint is typing.Any:
        return value
    if hint is type(None):
        if value is None:
            return None
    elif origin in _SEQUENCES or hint in _SEQUENCES:
        if isinstance(value, (list, tuple)):
            args = typing.get_args(hint)  # list[int], Sequence[int], tuple[int, ...]: one item type
            if not args:
                return list(value)
            return [check_type(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)]
    elif origin is dict or hint is dict:
        if isinstance(value, dict):
            return dict(value)
    elif hint is float:
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, np_bool)):
            if isinstance(value, numbers.Integral) and abs(int(value)) > INT64_MAX:  # like an int key: 64 bits
                raise ConfigError(f"config key {path!r} must be a finite number (an integer within 64 bits), "
                                  f"got {shown(value)}")
            number = float(value)
            if not math.isfinite(number):
                raise _nonfinite(value, path)
            if isinstance(value, numbers.Integral) and number != value:  # 2**53 + 1: never silently another value
                raise ConfigError(f"config key {path!r} must be a number a float holds exactly, got {shown(value)}")
            return number
    elif hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np_bool)):
            number = int(value)
            if abs(number) > INT64_MAX:
                raise ConfigError(f"config key {path!r} must be an integer that fits in 64 bits, got {shown(number)}")
            return number
    elif hint in (str, bool):
        if isinstance(value, hint):
            return value
    else:
        return value  # a hint these rules do not cover: the factory checks the value itself
    raise _mismatch(value, hint, path)


def _mismatch(value: Any, hint: Any, path: str) -> ConfigError:
    return ConfigError(f"config key {path!r} must be {type_name(hint)}, got {shown(value)}")


def _nonfinite(value: Any, path: str) -> ConfigError:
    return ConfigError(f"config key {path!r} must be a finite number, got {value!r}")


try:  # numpy's bool is no number either (numpy is a dependency, but keep this module importable without it)
    from numpy import bool_ as np_bool
except ImportError:  # pragma: no cover
    np_bool = bool


def type_name(hint: Any) -> str:
    """A hint in words: 'int', 'float or null', 'a list of int'."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin in _SEQUENCES:
        args = typing.get_args(hint)
        return f"a list of {type_name(args[0])}" if args else "a list"
    return getattr(hint, "__name__", str(hint))
