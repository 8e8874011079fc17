"""Name -> factory registries, filled by a decorator (in the spirit of timm's ``register_model``),
and the plug-ins that fill them from outside the package.

Configs and the CLI refer to datasets, strategies, importance criteria and runtimes by these names.
Plug-ins register more: an installed package that declares an entry point in the
``slimnas.plugins`` group, or the ``SLIMNAS_PLUGINS`` environment variable, a comma-separated
list of module names or ``.py`` files (``SLIMNAS_PLUGINS=my_strategies,./toy_metric.py``). The
command line loads them before it is built (their names show in its help); so do the worker
processes of a search.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from slimnas.errors import ConfigError, SlimnasError

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

    def register_class(self, name: str) -> Callable[[F], F]:
        """Class decorator of the registries of plug-in classes: register the class under
        ``name`` and set its ``name`` attribute to it."""

        def decorator(cls: F) -> F:
            cls.name = name
            return self.register(name)(cls)

        return decorator

    def get(self, name: str, field: str | None = None) -> F:
        """The factory registered as ``name``; an unknown name is a :class:`ConfigError` under
        ``field`` (the registry's ``kind`` by default)."""
        if name not in self._factories:
            raise ConfigError(field or self.kind, f"one of {self.names()}", name)
        return self._factories[name]

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register entries for a while)."""
        self._factories.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories


ENTRY_POINTS = "slimnas.plugins"
ENV = "SLIMNAS_PLUGINS"
_LOADED: set[str] = set()


def load_plugins() -> list[str]:
    """Import every plug-in (once each); returns their names. One that fails to import is one line."""
    loaded = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINTS):
        if ep.name not in _LOADED:
            _guarded(ep.name, ep.load)
        loaded.append(ep.name)
    for item in filter(None, (s.strip() for s in os.environ.get(ENV, "").split(","))):
        if item not in _LOADED:
            _guarded(item, lambda item=item: _import(item))
        loaded.append(item)
    _LOADED.update(loaded)
    return loaded


def _import(item: str) -> None:
    if item.endswith(".py"):
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(item)
        spec = importlib.util.spec_from_file_location(f"slimnas_plugin_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        importlib.import_module(item)


def _guarded(name: str, load) -> None:
    try:
        load()
    except Exception as e:  # noqa: BLE001 - a broken plug-in is the user's to fix, reported in one line
        raise ConfigError(ENV, "plug-ins that import", f"{name} ({type(e).__name__}: {e})") from None
    except SystemExit as e:  # a plug-in's sys.exit() must not end the command as if it had succeeded
        raise ConfigError(ENV, "plug-ins that import", f"{name} (it called sys.exit({e.code!r}))") from None


def import_object(spec: str, field: str, what: str = "callable") -> object:
    """The object ``spec`` names, ``path/to/file.py:name`` or ``package.module:name`` (a user's
    model factory, task, ...); anything wrong is one :class:`ConfigError` line under ``field``."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(field, f"'path/to/file.py:{what}' or 'package.module:{what}'", spec)
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise ConfigError(field, "an existing Python file before ':'", target)
            mod_spec = importlib.util.spec_from_file_location(f"slimnas_user_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[mod_spec.name] = module
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except SlimnasError:
        raise
    except (Exception, SystemExit) as e:  # noqa: BLE001 - any import failure is the user's file
        raise ConfigError(field, "a module that imports", f"{target} ({user_failure(e)})") from None
    found = getattr(module, attr, None)
    if not callable(found):
        raise ConfigError(field, f"a callable named {attr!r} in {target}", spec)
    return found


def user_failure(error: BaseException) -> str:
    """What user code (a model file, its factory, a plug-in) raised, in one line; a
    ``sys.exit()`` there is a failure too, never the command's own exit."""
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r})"
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
