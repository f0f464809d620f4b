"""Name -> factory registries, one per plug-in kind.

A new likelihood, prior, network, objective or data set is one decorated function or class in the file of its
kind; the CLI, the config system and the contract tests find it through its registry.

A factory's parameters are of two sorts. The *context* is what the builder knows and the user does not set:
the data shape, the latent size, the number of optimiser steps (each registry names its context parameters).
Every other parameter is an *option* of that entry: it is what a config section `[model.network]` or an
override `--set model.network.hidden=[400]` may set, checked against the parameter's type hint. An option
that the chosen entry does not take is an error, never dropped.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from ..errors import ConfigError
from .typecheck import check_type, type_name

T = TypeVar("T", bound=Callable)

REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class Option:
    """One option of a registry entry: its name, type hint and default (`REQUIRED` when it has none)."""

    name: str
    hint: Any
    default: Any

    def describe(self) -> str:
        """'hidden: a list of int = [512, 256]'."""
        default = "" if self.default is REQUIRED else f" = {_plain(self.default)!r}"
        return f"{self.name}: {type_name(self.hint)}{default}"


def _plain(value: Any) -> Any:
    """Tuples as lists, so that defaults read (and save to JSON) the way a config writes them."""
    return list(value) if isinstance(value, tuple) else value


class Registry(Generic[T]):
    """A named collection of factories of one kind (e.g. "likelihood")."""

    def __init__(self, kind: str, context: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.context = tuple(context)
        self._entries: dict[str, T] = {}
        self._help: dict[str, str] = {}
        REGISTRIES[kind] = self

    def register(self, name: str, help: str | None = None) -> Callable[[T], T]:
        """Decorator that registers `factory` under `name`; `help` defaults to its docstring's first line."""

        def decorator(factory: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = factory
            doc = (factory.__doc__ or "").strip().splitlines()
            self._help[name] = help or (doc[0] if doc else "")
            return factory

        return decorator

    def get(self, name: str) -> T:
        """The factory registered as `name`; a `ConfigError` listing the choices otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            choices = ", ".join(sorted(self._entries)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {choices}") from None

    def options(self, name: str) -> dict[str, Option]:
        """The options of entry `name`: its factory's parameters less the context, with hints and defaults."""
        factory = self.get(name)
        target = factory.__init__ if inspect.isclass(factory) else factory
        hints = typing.get_type_hints(target)
        options = {}
        for parameter in inspect.signature(factory).parameters.values():
            if parameter.name in self.context or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            options[parameter.name] = Option(parameter.name, hints.get(parameter.name, Any), parameter.default)
        return options

    def check(self, name: str, options: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """`options` checked against entry `name`: unknown keys, missing required ones and wrong types are a
        ConfigError naming `where` (the config section, e.g. "model.network") and the options the entry takes."""
        known = self.options(name)
        label = self._label(name, where)
        for key in options:
            if key not in known:
                takes = ", ".join(known) or "none"
                raise ConfigError(f"{label} takes no option {key!r}; its options: {takes}")
        missing = [key for key, option in known.items() if option.default is REQUIRED and key not in options]
        if missing:
            raise ConfigError(f"{label} needs the option(s) {', '.join(missing)}")
        prefix = f"{where}." if where else ""
        return {key: check_type(value, known[key].hint, prefix + key) for key, value in options.items()}

    def resolve(self, name: str, options: Mapping[str, Any], where: str = "") -> dict[str, Any]:
        """`check`ed options with every default filled in: the complete settings of the entry, for config.json."""
        checked = self.check(name, options, where)
        return {key: checked.get(key, _plain(option.default)) for key, option in self.options(name).items()}

    def build(self, name: str, options: Mapping[str, Any] | None = None, *, where: str = "", **context: Any):
        """Calls the factory of `name` with the checked `options` and the `context` parameters it takes.

        A ConfigError raised by the factory (a value out of range) is reworded to name `where` and the entry.
        """
        unknown = set(context) - set(self.context)
        if unknown:  # a programming error, not a user's
            raise TypeError(f"{self.kind} registry has no context parameter(s) {sorted(unknown)}")
        checked = self.check(name, options or {}, where)
        factory = self.get(name)
        accepted = inspect.signature(factory).parameters
        kwargs = {key: value for key, value in context.items() if key in accepted}
        try:
            return factory(**kwargs, **checked)
        except ConfigError as error:
            raise ConfigError(f"{self._label(name, where)}: {error}") from None

    def _label(self, name: str, where: str) -> str:
        """How a message names an entry: "network 'conv' (model.network)"."""
        return f"{self.kind} {name!r}" + (f" ({where})" if where and where != self.kind else "")

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def help(self, name: str) -> str:
        """One-line description of an entry."""
        return self._help.get(name, "")


# kind -> registry, filled as the plug-in modules are imported; `vaekit ls` prints it.
REGISTRIES: dict[str, Registry] = {}
