"""Search-space parameters as written in a config.

A scalar is fixed, a list is a categorical choice, a mapping ``{low, high, log, step}`` a range.
Each parameter knows how to ask an Optuna trial for a value and, for grid search, its grid points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from slimnas.errors import ConfigError

Check = Callable[[Any], bool]
#: every number a space or recipe holds is finite and at most this large (a width of 10**9 or
#: 10**12 epochs is refused at validation); layer counts have their own bound, MAX_LAYERS
MAX_VALUE = 1_000_000
MAX_LAYERS = 1000


@dataclass(frozen=True)
class Key:
    """One config key of a space: its type, what it accepts, and its default."""

    kind: type
    expected: str
    default: Any
    check: Check | None = None


@dataclass(frozen=True)
class Param:
    """A parameter: ``values`` for a fixed value or a choice, ``low``/``high`` for a range."""

    values: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    @property
    def is_fixed(self) -> bool:
        return self.values is not None and len(self.values) == 1

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.values is not None:
            if len(self.values) == 1:
                return self.values[0]
            return trial.suggest_categorical(name, list(self.values))
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def grid_values(self) -> list:
        """All choices; a range is cut into at most five points (log-spaced where ``log``)."""
        if self.values is not None:
            return list(self.values)
        if self.integer:
            step = int(self.step or 1)
            points = list(range(int(self.low), int(self.high) + 1, step))
            if len(points) <= 5:
                return points
            return sorted({points[round(i * (len(points) - 1) / 4)] for i in range(5)})
        n = 3
        if self.log:
            a, b = math.log(self.low), math.log(self.high)
            inner = [math.exp(a + (b - a) * i / (n - 1)) for i in range(1, n - 1)]
        else:
            inner = [self.low + (self.high - self.low) * i / (n - 1) for i in range(1, n - 1)]
        # the ends exactly: exp(log(high)) can land past high, which Optuna's grid sampler warns of
        return [self.low, *inner, self.high]

    def choices(self) -> list:
        """Every value the parameter may take, for validation; ranges give their bounds."""
        return list(self.values) if self.values is not None else [self.low, self.high]

    def max(self) -> Any:
        return max(self.choices())

    def to_config(self) -> Any:
        if self.values is not None:
            return self.values[0] if len(self.values) == 1 else list(self.values)
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


def layer_count(default: Any) -> Key:
    """A key that counts layers, blocks or stages: integers in ``1..MAX_LAYERS``."""
    return Key(int, f"integers in 1..{MAX_LAYERS}", default, lambda v: 1 <= v <= MAX_LAYERS)


def positive_int(default: Any) -> Key:
    """A key of a size or a step (a width, a kernel, a stride): integers >= 1."""
    return Key(int, "integers >= 1", default, lambda v: v >= 1)


#: a dropout probability, off by default
DROPOUT = Key(float, "numbers in [0, 1)", 0.0, lambda v: 0 <= v < 1)


def parse_param(
    raw: Any,
    field: str,
    *,
    kind: type,
    expected: str,
    check: Check = lambda v: True,
) -> Param:
    """Turn a config value into a :class:`Param`, checking every value with ``check``.

    Args:
        raw: scalar, list or ``{low, high, log, step}`` mapping from the config.
        field: dotted name used in error messages.
        kind: ``int``, ``float``, ``str`` or ``bool``.
        expected: words for the error message, e.g. ``"odd integers >= 1"``.
        check: predicate every value (or range bound) must satisfy.
    """

    def coerce(v: Any) -> Any:
        if kind is bool:
            if isinstance(v, bool):
                return v
        elif kind is int:
            if isinstance(v, int) and not isinstance(v, bool):
                if abs(v) > MAX_VALUE and check(v):
                    raise ConfigError(field, f"{expected}, each at most {MAX_VALUE:,}", raw)
                return v
        elif kind is float:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if not math.isfinite(v) or (abs(v) > MAX_VALUE and check(v)):
                    raise ConfigError(field, f"{expected}, each finite and at most {MAX_VALUE:,}", raw)
                return float(v)
        elif kind is str:
            if isinstance(v, str):
                return v.lower()
        raise ConfigError(field, expected, raw)

    if isinstance(raw, dict):
        if kind not in (int, float) or not {"low", "high"} <= set(raw) or set(raw) - {"low", "high", "log", "step"}:
            raise ConfigError(field, f"{expected}, as a value, a list or {{low, high, log, step}}", raw)
        low, high = coerce(raw["low"]), coerce(raw["high"])
        log = raw.get("log", False)
        step = raw.get("step")
        if not isinstance(log, bool) or low > high or not (check(low) and check(high)) or (log and low <= 0):
            raise ConfigError(field, f"{expected} with low <= high", raw)
        if step is not None and (not isinstance(step, (int, float)) or not 0 < step <= MAX_VALUE or log):
            raise ConfigError(f"{field}.step", "a positive number, without log", step)
        return Param(low=low, high=high, log=log, step=step, integer=kind is int)
    seq: Sequence = raw if isinstance(raw, list) else [raw]
    if not seq:
        raise ConfigError(field, f"at least one of {expected}", raw)
    values = tuple(coerce(v) for v in seq)
    if not all(check(v) for v in values):
        raise ConfigError(field, expected, raw)
    return Param(values=tuple(dict.fromkeys(values)))


def parse_keys(keys: dict[str, Key], raw: dict | None, field: str) -> dict[str, Param]:
    """Validate a config mapping against ``keys`` into ``{key: Param}``, defaults filled in."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(field, "a mapping of parameters", raw)
    unknown = set(raw) - set(keys)
    if unknown:
        raise ConfigError(f"{field}.{sorted(unknown)[0]}", f"one of the keys {sorted(keys)}")
    out = {}
    for name, key in keys.items():
        value = raw.get(name, key.default)
        check = key.check or (lambda v: True)
        out[name] = parse_param(value, f"{field}.{name}", kind=key.kind, expected=key.expected, check=check)
    return out


def grid_of(prefix: str, params: dict[str, Param]) -> dict[str, list]:
    """Grid points of every non-fixed parameter, named ``<prefix>.<key>`` (per-layer ones tied)."""
    return {f"{prefix}.{k}": p.grid_values() for k, p in params.items() if not p.is_fixed}
