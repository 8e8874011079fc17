"""The one value every measurement reads: where and how latency is timed, what the fitness
metric weighs, and (aimed at a device) its precision, activation bytes and latency predictor.

Users write it as the ``measure:`` and ``fitness:`` config sections (:class:`MeasureConfig`,
:class:`FitnessConfig`) or a device profile; every layer below the command line passes this
value, so a metric, a trial and ``compress`` read the same names."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slimnas.config._names import DEFAULT_RUNTIME
from slimnas.errors import ConfigError

#: names the same settings had before they were one value (keyword arguments, timing dicts)
_OLD_NAMES = {"repeats": "latency_repeats", "latency_runtime": "runtime", "latency_threads": "threads"}


@dataclass(frozen=True)
class MeasureSettings:
    """How a candidate is measured.

    Attributes:
        runtime: the latency runtime (``measure.runtime``: ``onnxruntime`` times the exported file,
            ``torch`` the eager model).
        latency_batch: the batch latency is timed at.
        latency_repeats: timed calls; ``latency_ms`` is their median.
        threads: runtime threads latency is timed with.
        precision: the device's precision (a device profile's), ``None`` for the file's own.
        activation_bytes: bytes per activation value (``ram_bytes``).
        latency_predictor: a device profile's latency table; latency is predicted from it.
        fitness_cost, fitness_weight: the ``fitness`` metric's cost and its weight.

    A metric reads it as attributes or, as before it was one value, by ``settings.get(name)``.
    """

    runtime: str = DEFAULT_RUNTIME
    latency_batch: int = 1
    latency_repeats: int = 50
    threads: int = 1
    precision: str | None = None
    activation_bytes: int = 4
    latency_predictor: Any = dataclasses.field(default=None, compare=False)
    fitness_cost: str = "macs"
    fitness_weight: float = 1e-5

    @classmethod
    def of(cls, value: MeasureSettings | Mapping[str, Any] | None = None, **changes: Any) -> MeasureSettings:
        """``value`` as settings (a mapping may use the names of before, ``repeats``,
        ``latency_runtime``, ``latency_threads``), with ``changes`` applied."""
        if value is None:
            value = cls()
        elif not isinstance(value, MeasureSettings):
            if not isinstance(value, Mapping):
                raise ConfigError("measure", "measurement settings (a mapping of runtime, latency_batch, ...)", value)
            value = cls(**value_fields(value))
        return dataclasses.replace(value, **value_fields(changes)) if changes else value

    def get(self, name: str, default: Any = None) -> Any:
        """The setting ``name`` (``default`` where it is unset), as a mapping's ``get``."""
        value = getattr(self, _OLD_NAMES.get(name, name), None)
        return default if value is None else value

    def __getitem__(self, name: str) -> Any:
        if name not in self:
            raise KeyError(name)
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and getattr(self, _OLD_NAMES.get(name, name), None) is not None


def value_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` under the settings' own names; an unknown name is a one-line error."""
    known = {f.name for f in dataclasses.fields(MeasureSettings)}
    out = {}
    for key, value in values.items():
        name = _OLD_NAMES.get(key, key)
        if name not in known:
            raise ConfigError(f"measure.{key}", f"one of {sorted(known)}")
        out[name] = value
    return out
