"""Name -> class tables for the extensible families (models, features, optimizers, metrics...)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Generic, TypeVar

from recforge.errors import ConfigError, RecforgeError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry table for one family; a miss names the available entries and a close match."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding `entry` under `name`; registering one name twice is an error."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise RecforgeError(f"{self.family} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str, *, yaml_path: str = "") -> T:
        """The entry called `name`, or a ConfigError listing what exists."""
        if name in self._entries:
            return self._entries[name]
        guess = difflib.get_close_matches(name, list(self._entries), n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        raise ConfigError(
            yaml_path,
            f"unknown {self.family} {name!r}",
            fix=f"use one of: {', '.join(self.names())}{hint}",
        )

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> dict[str, T]:
        """Name -> entry in registration order (a copy)."""
        return dict(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def unregister(self, name: str) -> T:
        """Remove and return the entry called `name` (a plugin or test taking its member back)."""
        if name not in self._entries:
            raise RecforgeError(f"{self.family} {name!r} is not registered")
        return self._entries.pop(name)
