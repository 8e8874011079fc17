"""Per-family search spaces: config keys, defaults, and the define-by-run sampling of a spec.

Every parameter is named ``<family>.<key>`` in the Optuna trial, per-layer ones
``<family>.<key>_<i>``. With ``tie_layers`` (used by grid search) one value serves all layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from slimnas.errors import ConfigError
from slimnas.models._layers import ACTIVATIONS
from slimnas.spaces._params import Param, parse_param
from slimnas.spaces._spec import ArchSpec, CNNSpec, ConvLayer, MLPSpec, RNNSpec, TrainSpec


@dataclass(frozen=True)
class Key:
    """One config key of a space: its type, what it accepts, and its default."""

    kind: type
    expected: str
    default: Any
    check: Any = None


_act = Key(str, f"activations from {sorted(ACTIVATIONS)}", ["relu"], lambda v: v in ACTIVATIONS)
_frac = Key(float, "numbers in [0, 1)", 0.0, lambda v: 0 <= v < 1)
_bool = Key(bool, "true/false", [False])

SPACE_KEYS: dict[str, dict[str, Key]] = {
    "mlp": {
        "n_layers": Key(int, "integers >= 1", {"low": 1, "high": 3}, lambda v: v >= 1),
        "width": Key(int, "integers >= 1", [16, 32, 64, 128], lambda v: v >= 1),
        "activation": _act,
        "dropout": _frac,
        "batch_norm": _bool,
    },
    "cnn": {
        "n_layers": Key(int, "integers >= 1", {"low": 2, "high": 5}, lambda v: v >= 1),
        "channels": Key(int, "integers >= 1", [4, 8, 16, 24, 32], lambda v: v >= 1),
        "kernel": Key(int, "odd integers >= 1", [3, 5, 7], lambda v: v >= 1 and v % 2 == 1),
        "stride": Key(int, "integers >= 1", [1, 2], lambda v: v >= 1),
        "dilation": Key(int, "integers >= 1", [1], lambda v: v >= 1),
        "pool": Key(str, "'none', 'max' or 'avg'", ["none"], lambda v: v in ("none", "max", "avg")),
        "activation": _act,
        "batch_norm": Key(bool, "true/false", [True]),
        "residual": Key(bool, "true/false", [False, True]),
        "head": Key(str, "'gap' or 'flatten'", ["gap", "flatten"], lambda v: v in ("gap", "flatten")),
        "dropout": _frac,
    },
    "rnn": {
        "cell": Key(str, "'gru' or 'lstm'", ["gru", "lstm"], lambda v: v in ("gru", "lstm")),
        "hidden": Key(int, "integers >= 1", [16, 32, 64], lambda v: v >= 1),
        "n_layers": Key(int, "integers >= 1", {"low": 1, "high": 2}, lambda v: v >= 1),
        "bidirectional": Key(bool, "true/false", [False, True]),
    },
    "training": {
        "optimizer": Key(str, "'adam', 'adamw' or 'sgd'", ["adam", "adamw"], lambda v: v in ("adam", "adamw", "sgd")),
        "lr": Key(float, "numbers in (0, 10]", {"low": 1e-3, "high": 3e-2, "log": True}, lambda v: 0 < v <= 10),
        "weight_decay": Key(float, "numbers >= 0", 0.0, lambda v: v >= 0),
        "batch_size": Key(int, "integers >= 1", [128], lambda v: v >= 1),
        "epochs": Key(int, "integers >= 1", 20, lambda v: v >= 1),
        "schedule": Key(str, "'cosine' or 'constant'", "cosine", lambda v: v in ("cosine", "constant")),
    },
}


def parse_family(family: str, raw: dict | None, field: str) -> dict[str, Param]:
    """Validate one family's config mapping into ``{key: Param}``, defaults filled in."""
    return parse_keys(SPACE_KEYS[family], raw, field)


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


def _draw(params: dict[str, Param], trial: optuna.Trial, family: str, key: str, i: int | None, tie: bool):
    name = f"{family}.{key}" if i is None or tie else f"{family}.{key}_{i}"
    return params[key].suggest(trial, name)


def sample_arch(family: str, params: dict[str, Param], trial: optuna.Trial, *, tie_layers: bool = False) -> ArchSpec:
    """Ask ``trial`` for one architecture of ``family``, define-by-run."""

    def draw(key: str, i: int | None = None):
        return _draw(params, trial, family, key, i, tie_layers)

    if family == "mlp":
        n = draw("n_layers")
        return MLPSpec(
            widths=tuple(draw("width", i) for i in range(n)),
            activation=draw("activation"),
            dropout=draw("dropout"),
            batch_norm=draw("batch_norm"),
        )
    if family == "cnn":
        n = draw("n_layers")
        layers = tuple(
            ConvLayer(
                channels=draw("channels", i),
                kernel=draw("kernel", i),
                stride=draw("stride", i),
                dilation=draw("dilation", i),
                pool=draw("pool", i),
            )
            for i in range(n)
        )
        return CNNSpec(
            layers=layers,
            activation=draw("activation"),
            batch_norm=draw("batch_norm"),
            residual=draw("residual"),
            head=draw("head"),
            dropout=draw("dropout"),
        )
    return RNNSpec(
        cell=draw("cell"), hidden=draw("hidden"), n_layers=draw("n_layers"), bidirectional=draw("bidirectional")
    )


def sample_training(params: dict[str, Param], trial: optuna.Trial) -> TrainSpec:
    return TrainSpec(**{key: params[key].suggest(trial, f"train.{key}") for key in SPACE_KEYS["training"]})


def grid_of(family: str, params: dict[str, Param]) -> dict[str, list]:
    """Grid points of every non-fixed parameter, per-layer ones tied (see ``tie_layers``)."""
    prefix = "train" if family == "training" else family
    return {f"{prefix}.{k}": p.grid_values() for k, p in params.items() if not p.is_fixed}
