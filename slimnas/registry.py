"""Name -> factory registries, filled by a decorator (in the spirit of timm's ``register_model``).

Configs and the CLI refer to datasets, strategies, importance criteria and runtimes by these names.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Generic, TypeVar

from slimnas.errors import ConfigError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Maps names to factories (never to built objects).

    Example:
        >>> datasets = Registry("data.dataset")
        >>> @datasets.register("toy")
        ... def make_toy(): return 1
        >>> datasets.get("toy")()
        1
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def decorator(factory: F) -> F:
            if name in self._factories:
                warnings.warn(f"{self.kind} {name!r} is registered again; the new one wins", stacklevel=2)
            self._factories[name] = factory
            return factory

        return decorator

    def get(self, name: str) -> F:
        if name not in self._factories:
            raise ConfigError(self.kind, f"one of {self.names()}", name)
        return self._factories[name]

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories
