"""Latency prediction from a lookup table of operator timings (Once-for-All's latency tables,
Cai et al. 2020; nn-Meter's kernel-level prediction, Zhang et al. 2021): a model's latency is
the calibrated sum of its operators' entries,

    predicted = model_ms + scale * sum(max(0, entry(op) - null_ms)) + per_op_ms * n_ops

where ``entry(op)`` is the time of a session running the operator alone (looked up, or
interpolated across channel counts inside the operator's group, or fitted from the operator's
kind where the table has no group for it), ``null_ms`` that of a session running nothing, and
``model_ms``, ``scale`` and ``per_op_ms`` are fitted on whole models measured on the device
(the per-model overhead, and what running inside one graph changes about each operator).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from slimnas.measure._ops import OpConfig, model_ops

WEIGHTED_OPS = ("conv1d", "conv2d", "linear", "gru", "lstm")


def cond_key(batch: int, precision: str) -> str:
    """A table column: ``"<batch>/<precision>"``."""
    return f"{batch}/{precision}"


@dataclass
class LatencyTable:
    """Operator timings by ``(op, "<batch>/<precision>")``, with lookup that interpolates across
    channel counts. ``measure``, when given, times an op the table lacks (and keeps it): a
    table filled on demand on the machine it runs on."""

    entries: dict[tuple[OpConfig, str], float] = field(default_factory=dict)
    measure: object | None = None  # (op, batch, precision) -> ms

    def add(self, op: OpConfig, cond: str, ms: float) -> None:
        self.entries[(op, cond)] = float(ms)
        self._index = None

    def __len__(self) -> int:
        return len(self.entries)

    def conds(self) -> list[str]:
        return sorted({c for _, c in self.entries})

    @property
    def index(self) -> dict:
        if getattr(self, "_index", None) is None:
            groups: dict = defaultdict(list)
            kinds: dict = defaultdict(list)
            for (op, cond), ms in self.entries.items():
                groups[(op.group, cond)].append((op.cin, op.cout, ms))
                kinds[(op.op, op.act, cond)].append((op, ms))
            self._index = {"groups": dict(groups), "kinds": dict(kinds), "fits": {}}
        return self._index

    def lookup(self, op: OpConfig, batch: int, precision: str = "fp32") -> tuple[float, str]:
        """``(ms, how)``: ``how`` is ``exact``, ``measured`` (timed now), ``interpolated``
        (across channels inside the op's group), ``fitted`` (from the op's kind) or ``missing``."""
        cond = cond_key(batch, precision)
        hit = self.entries.get((op, cond))
        if hit is not None:
            return hit, "exact"
        if self.measure is not None:
            ms = float(self.measure(op, batch, precision))
            self.add(op, cond, ms)
            return ms, "measured"
        points = self.index["groups"].get((op.group, cond))
        if points:
            ms = _interpolate(points, op.cin, op.cout)
            if ms is not None:
                return ms, "interpolated"
        ms = self._kind_fit(op, cond)
        if ms is not None:
            return ms, "fitted"
        return 0.0, "missing"

    def _kind_fit(self, op: OpConfig, cond: str) -> float | None:
        fits = self.index["fits"]
        key = (op.op, op.act, cond)
        if key not in fits:
            rows = self.index["kinds"].get(key) or self.index["kinds"].get((op.op, "", cond)) or []
            fits[key] = None
            if len(rows) >= 4:
                x = np.array([_features(o) for o, _ in rows])
                y = np.array([ms for _, ms in rows])
                coef, *_ = np.linalg.lstsq(x, y, rcond=None)
                fits[key] = (coef, float(min(y)))
        fit = fits[key]
        if fit is None:
            return None
        coef, floor = fit
        return max(floor, float(np.dot(_features(op), coef)))

    def to_entries(self) -> list[dict]:
        """The table as a profile's ``table`` list: one entry per op, its times by column."""
        by_op: dict[OpConfig, dict[str, float]] = defaultdict(dict)
        for (op, cond), ms in self.entries.items():
            by_op[op][cond] = round(ms, 6) if ms >= 1e-6 else 1e-6
        return [{**op.to_dict(), "ms": dict(sorted(times.items()))}
                for op, times in sorted(by_op.items(), key=lambda kv: (kv[0].group, kv[0].cin, kv[0].cout))]

    @classmethod
    def from_entries(cls, entries: Iterable[dict]) -> LatencyTable:
        table = cls()
        for e in entries:
            op = OpConfig.from_dict(e)
            for cond, ms in e["ms"].items():
                table.entries[(op, cond)] = float(ms)
        return table


def _features(op: OpConfig) -> list[float]:
    out_elems = op.cout
    for s in op.size:
        out_elems *= max(1, s // max(1, op.stride))
    return [1.0, op.macs / 1e3, op.elements / 1e3, out_elems / 1e3]


def _interp1(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """Linear interpolation, extrapolated from the two nearest points (never below 0)."""
    order = np.argsort(xs)
    xs, ys = np.asarray(xs, float)[order], np.asarray(ys, float)[order]
    if len(xs) == 1:
        return float(ys[0] * (x / xs[0]) ** 0.5) if xs[0] > 0 else float(ys[0])
    if xs[0] <= x <= xs[-1]:
        return float(np.interp(x, xs, ys))
    i = (0, 1) if x < xs[0] else (-2, -1)
    x0, x1, y0, y1 = xs[i[0]], xs[i[1]], ys[i[0]], ys[i[1]]
    y = y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 != x0 else y0
    return float(max(y, 0.5 * min(ys)))


def _interpolate(points: list[tuple[int, int, float]], cin: int, cout: int) -> float | None:
    """Across channel counts inside one group: along ``cout`` among entries of the same ``cin``
    (or along ``cin`` at the same ``cout``), else bilinearly between the nearest ``cin`` rows."""
    rows: dict[int, list[tuple[int, float]]] = defaultdict(list)
    cols: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for ci, co, ms in points:
        rows[ci].append((co, ms))
        cols[co].append((ci, ms))
    if cin in rows:
        pts = rows[cin]
        return _interp1([p[0] for p in pts], [p[1] for p in pts], cout)
    if cout in cols:
        pts = cols[cout]
        return _interp1([p[0] for p in pts], [p[1] for p in pts], cin)
    if not rows:
        return None
    # value at cout in each cin row, then across the rows
    cins = sorted(rows)
    lower = [c for c in cins if c <= cin][-2:] or cins[:2]
    upper = [c for c in cins if c >= cin][:2] or cins[-2:]
    chosen = sorted(set(lower[-1:] + upper[:1])) if lower and upper else cins[:2]
    if len(chosen) == 1:
        chosen = sorted(set(lower + upper))[:2]
    vals = [_interp1([p[0] for p in rows[c]], [p[1] for p in rows[c]], cout) for c in chosen]
    return _interp1(chosen, vals, cin)


@dataclass(frozen=True)
class Overhead:
    """The calibrated per-model terms of one table column (see the module docstring)."""

    null_ms: float
    model_ms: float
    scale: float = 1.0
    per_op_ms: float = 0.0
    n_models: int = 0

    def to_dict(self) -> dict:
        return {"null_ms": round(self.null_ms, 6), "model_ms": round(self.model_ms, 6), "scale": round(self.scale, 5),
                "per_op_ms": round(self.per_op_ms, 6), "n_models": self.n_models}

    @classmethod
    def from_dict(cls, d: dict) -> Overhead:
        return cls(null_ms=float(d.get("null_ms", 0.0)), model_ms=float(d.get("model_ms", 0.0)),
                   scale=float(d.get("scale", 1.0)), per_op_ms=float(d.get("per_op_ms", 0.0)),
                   n_models=int(d.get("n_models", 0)))


@dataclass(frozen=True)
class Prediction:
    """A predicted latency, with its parts: per op ``(op, entry ms, how it was found)``."""

    ms: float
    batch: int
    precision: str
    ops: tuple[tuple[OpConfig, float, str], ...] = ()

    @property
    def coverage(self) -> float:
        """Share of the ops found in the table as they are (not interpolated, fitted or missing)."""
        if not self.ops:
            return 1.0
        return sum(how in ("exact", "measured") for _, _, how in self.ops) / len(self.ops)


class LatencyPredictor:
    """Predicts a model's latency on a device from its table, without running the model.

    Example:
        >>> from slimnas.models import mnist1d_paper_cnn
        >>> table = LatencyTable(measure=lambda op, b, p: 0.001 * (1 + op.macs / 1e4))
        >>> pred = LatencyPredictor(table, {"1/fp32": Overhead(null_ms=0.001, model_ms=0.002)})
        >>> round(pred.predict(mnist1d_paper_cnn(), (1, 40)).ms, 4)
        0.0054
    """

    def __init__(self, table: LatencyTable, overhead: dict[str, Overhead], *, info: dict | None = None) -> None:
        self.table, self.overhead, self.info = table, dict(overhead), dict(info or {})

    def supports(self, batch: int, precision: str = "fp32") -> bool:
        return cond_key(batch, precision) in self.overhead

    def predict_ops(self, ops: Sequence[OpConfig], *, batch: int = 1, precision: str = "fp32",
                    op_precision: Sequence[str] | None = None) -> Prediction:
        """Latency of a model that runs ``ops`` (``op_precision``: per op, else ``precision``)."""
        terms = self.overhead.get(cond_key(batch, precision))
        if terms is None:
            raise KeyError(f"the table has no calibrated column {cond_key(batch, precision)!r} "
                           f"(it has {sorted(self.overhead)})")
        parts, total = [], 0.0
        for i, op in enumerate(ops):
            p = op_precision[i] if op_precision is not None else precision
            ms, how = self.table.lookup(op, batch, p)
            null = self.overhead.get(cond_key(batch, p), terms).null_ms
            parts.append((op, ms, how))
            total += max(0.0, ms - null)
        ms = terms.model_ms + terms.scale * total + terms.per_op_ms * len(ops)
        return Prediction(max(ms, 1e-6), batch, precision, tuple(parts))

    def predict(self, model: nn.Module | Sequence[OpConfig], input_shape: tuple[int, ...] | None = None, *,
                batch: int = 1, precision: str = "fp32") -> Prediction:
        """Latency of ``model`` (or its op list) on one batch."""
        ops = model if isinstance(model, (list, tuple)) else model_ops(model, input_shape)
        return self.predict_ops(ops, batch=batch, precision=precision)

    def describe(self) -> dict:
        """What a prediction is labelled with: the profile, its runtime and machine, its accuracy."""
        return dict(self.info)


def calibrate(raw: Sequence[tuple[float, float, int]], null_ms: float) -> Overhead:
    """Fit ``model_ms``, ``scale`` and ``per_op_ms`` by non-negative least squares on
    ``(measured ms, sum of max(0, entry - null), n_ops)`` of whole models (relative errors weigh
    equally: each row is divided by its measured figure). None of the three is ever negative (a
    negative per-operator cost fits a handful of models and predicts nonsense for the next);
    falls back to ``scale = 1`` when the fit is not sensible."""
    from scipy.optimize import nnls

    y = np.array([r[0] for r in raw], dtype=float)
    s = np.array([r[1] for r in raw], dtype=float)
    n = np.array([r[2] for r in raw], dtype=float)
    w = 1.0 / np.maximum(y, 1e-9)
    x = np.stack([np.ones_like(y), s, n], axis=1)
    coef, _ = nnls(x * w[:, None], y * w)
    c0, scale, k = (float(v) for v in coef)
    if not (scale > 0.2 and math.isfinite(c0)):
        (c0, scale), _ = nnls(x[:, :2] * w[:, None], y * w)
        c0, scale, k = float(c0), float(scale), 0.0
        if not scale > 0.2:
            scale = 1.0
            c0 = float(np.median(y - s))
    return Overhead(null_ms=null_ms, model_ms=max(c0, 0.0), scale=scale, per_op_ms=k, n_models=len(raw))


#: a profile whose predictor misses its held-out models by more than this (mean absolute error,
#: relative to the measured latency) is not used: its predictions would skip good candidates
MAX_PROFILE_ERROR = 1.0


def untrusted(accuracy_by_column: dict) -> tuple[str, dict] | None:
    """The first column (``"<batch>/<precision>"``, its accuracy) of a profile whose held-out
    error is over :data:`MAX_PROFILE_ERROR`, or ``None`` when every measured column is within it."""
    for key, a in (accuracy_by_column or {}).items():
        mape = (a or {}).get("mape")
        if mape is not None and not (float(mape) <= MAX_PROFILE_ERROR):
            return key, a
    return None


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    if len(a) < 3:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def accuracy(predicted: Sequence[float], measured: Sequence[float]) -> dict:
    """How well predictions match measurements: Spearman rank correlation, the share within
    +-10% and +-15% of the measured median, the mean absolute percentage error."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    rel = np.abs(p - m) / m
    return {"spearman": round(spearman(p, m), 4), "within_10pct": round(float(np.mean(rel <= 0.10)), 4),
            "within_15pct": round(float(np.mean(rel <= 0.15)), 4), "mape": round(float(np.mean(rel)), 4),
            "n_models": int(len(p))}
