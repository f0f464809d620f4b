"""Checks a value from a config file, an override or a Python call against a type hint.

Used by the config sections and by the plug-in registries, so that `model.latent_dim`, a network's `hidden`
and an objective's `beta` are all checked by the same rules: ints widen to floats, tuples become lists,
bools are not numbers, and a failure names the key.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any

from .errors import ConfigError

_SEQUENCES = (list, tuple, collections.abc.Sequence)


def check_type(value: Any, hint: Any, path: str) -> Any:
    """`value` converted to `hint` (int -> float, tuple -> list) or a ConfigError naming `path`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
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
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint in (str, bool):
        if isinstance(value, hint):
            return value
    else:
        return value  # a hint these rules do not cover: the factory checks the value itself
    raise _mismatch(value, hint, path)


def _mismatch(value: Any, hint: Any, path: str) -> ConfigError:
    return ConfigError(f"config key {path!r} must be {type_name(hint)}, got {value!r}")


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
