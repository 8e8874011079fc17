"""Architecture families: the contract a family fulfils, and the registry the space reads.

A family is one file (the built-in ones live in :mod:`slimnas.models`): its spec (a frozen,
hashable dataclass), its config keys with defaults, how a trial samples a spec, and how a spec
is built into an ``nn.Module``. The space knows families only through :data:`FAMILIES`.

Every parameter is named ``<family>.<key>`` in the Optuna trial, per-layer ones
``<family>.<key>_<i>``. With ``tie_layers`` (used by grid search) one value serves all layers.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Callable
from typing import Any, ClassVar

import optuna

from slimnas.registry import Registry
from slimnas.spaces._params import Key, Param

#: ``draw(key, i=None)``: the sampled value of a config key (per-layer keys take the layer index)
Draw = Callable[..., Any]


class BaseFamily(abc.ABC):
    """One architecture family.

    Call order: the space validates a config section against :attr:`keys`; for each trial it
    calls :meth:`sample` with a ``draw`` function; the model builder calls :meth:`build`;
    run folders store specs with :meth:`to_dict` and read them back with :meth:`from_dict`;
    tables and reports describe a spec with :meth:`summary`.

    Example:
        >>> @register_family("toy")  # doctest: +SKIP
        ... class ToyFamily(BaseFamily):
        ...     spec = ToySpec
        ...     keys = {"width": Key(int, "integers >= 1", [8, 16], lambda v: v >= 1)}
        ...     def sample(self, draw): return ToySpec(width=draw("width"))
        ...     def build(self, spec, input_shape, n_classes): return make_toy(spec, input_shape, n_classes)
    """

    #: the family's name, set by :func:`register_family`
    name: ClassVar[str] = ""
    #: the frozen dataclass this family's candidates are
    spec: ClassVar[type]
    #: config keys of ``space.<family>``, with their defaults
    keys: ClassVar[dict[str, Key]]
    #: kinds of data (:attr:`slimnas.data.DataSplits.kind`) its models take; a search on other
    #: data is refused before anything is trained (text needs token-id models: an embedding)
    data_kinds: ClassVar[tuple[str, ...]] = ("tabular", "sequence", "image")
    #: spec fields :meth:`to_dict` writes only where they differ from their default (fields a
    #: search sets for some data only, so the specs of other runs are stored as they always were)
    optional_fields: ClassVar[tuple[str, ...]] = ()
    #: the tasks this family is made for alone (``("detection",)``: its models answer with boxes
    #: and train on the task's losses); empty: any task of one output vector per sample (and per
    #: position where its spec has ``per_token``)
    tasks: ClassVar[tuple[str, ...]] = ()
    #: why the family has no per-token head (its spec no ``per_token`` field), said where a
    #: per-token task refuses it; empty: nothing said beyond the families that have one
    no_per_token: ClassVar[str] = ""

    @abc.abstractmethod
    def sample(self, draw: Draw) -> Any:
        """A spec from drawn values, define-by-run (``draw("channels", i)`` per layer)."""

    @abc.abstractmethod
    def build(self, spec: Any, input_shape: tuple[int, ...], n_classes: int):
        """The ``nn.Module`` a spec describes, for inputs of ``input_shape`` (no batch axis)."""

    def check(self, params: dict[str, Param], field: str) -> None:
        """Refuse (:class:`slimnas.errors.ConfigError` naming ``field.<key>``) a combination of
        parameters no candidate could be built from, at validation; by default nothing is."""
        return None

    def supernet(self, params: dict[str, Param], input_shape: tuple[int, ...], n_classes: int, *,
                 fixed: dict | None = None, kernel_transform: bool = False,
                 field: str = "strategy.options.fixed"):
        """A once-for-all supernet holding every sub-network of this family's space (``params``:
        the space's parameters; ``fixed``: values of the genes it does not make elastic), or
        ``None`` when the family has none (the ``supernet`` strategy then refuses the space)."""
        return None

    def per_token(self, spec: Any, mode: str) -> Any | None:
        """``spec`` with a head of one prediction per position, for a per-token task (``mode``:
        ``tokens``, or ``causal`` where each position reads only itself and the earlier ones),
        or ``None`` when the family has none. By default a spec with a ``per_token`` field gets
        ``mode`` there; a family overrides it to change what such a head needs as well."""
        return dataclasses.replace(spec, per_token=mode) if has_per_token(type(self)) else None

    def summary(self, spec: Any) -> str:
        """A short, one-line description of a spec for tables and reports, such as
        ``cnn 8k5s2-16k3 gap relu bn``. The default names the family and its fields; a family
        overrides it with a compact form."""
        fields = ", ".join(f"{k}={v}" for k, v in self.to_dict(spec).items() if k != "family")
        return f"{self.name} {fields}"

    def to_dict(self, spec: Any) -> dict:
        """``{"family": ..., **fields}``, JSON-ready (tuples as lists), without the
        :attr:`optional_fields` left at their default."""
        out = {"family": self.name, **json.loads(json.dumps(dataclasses.asdict(spec)))}
        defaults = {f.name: f.default for f in dataclasses.fields(spec)}
        for name in self.optional_fields:
            if out.get(name) == defaults[name]:
                out.pop(name)
        return out

    def from_dict(self, d: dict) -> Any:
        """Inverse of :meth:`to_dict` (without the ``family`` key); override for nested specs."""
        return self.spec(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


FAMILIES: Registry[type[BaseFamily]] = Registry("space.family")


def register_family(name: str):
    """Class decorator: register a :class:`BaseFamily` subclass under ``name``."""

    return FAMILIES.register_class(name)


def has_per_token(family: type[BaseFamily]) -> bool:
    """Whether ``family``'s models can predict per position (their spec has ``per_token``)."""
    return "per_token" in {f.name for f in dataclasses.fields(family.spec)}


def get_family(name: str) -> BaseFamily:
    return FAMILIES.get(name)()


def list_families() -> list[str]:
    return FAMILIES.names()


def sample_arch(family: str, params: dict[str, Param], trial: optuna.Trial, *, tie_layers: bool = False):
    """Ask ``trial`` for one architecture of ``family``, define-by-run."""

    def draw(key: str, i: int | None = None):
        name = f"{family}.{key}" if i is None or tie_layers else f"{family}.{key}_{i}"
        return params[key].suggest(trial, name)

    return get_family(family).sample(draw)


def arch_to_dict(spec) -> dict:
    """``{"family": ..., **fields}``, with tuples as lists (JSON-ready)."""
    return get_family(spec.family).to_dict(spec)


def arch_from_dict(d: dict):
    """Inverse of :func:`arch_to_dict`."""
    d = dict(d)
    return get_family(d.pop("family")).from_dict(d)

