"""Name -> factory registries, one per plug-in kind.

A new likelihood, prior, network, objective or data set is one decorated function or class in the file of its
kind; the CLI, the config system and the contract tests find it through its registry.
"""

from __future__ import annotations

import inspect
from typing import Callable, Generic, Iterator, TypeVar

from .errors import ConfigError

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """A named collection of factories of one kind (e.g. "likelihood")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
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
        except KeyError:
            choices = ", ".join(sorted(self._entries)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {choices}") from None

    def build(self, name: str, *args, drop_none: bool = False, **options):
        """Calls the factory registered as `name` with `args` and those `options` its signature takes (and, with
        `drop_none`, that are not None), so one config can carry options for every entry of a kind."""
        factory = self.get(name)
        accepted = inspect.signature(factory).parameters
        kwargs = {k: v for k, v in options.items() if k in accepted and not (drop_none and v is None)}
        return factory(*args, **kwargs)

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
