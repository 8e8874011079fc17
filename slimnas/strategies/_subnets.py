"""Scoring and searching a supernet's sub-networks with per-layer precision (APQ, Wang et al. 2020):
measured pairs for the accuracy predictor, the predictor-ranked search under the budget, and the
choice of candidates across its front.

A point of this search is a sub-network (a spec of its family) and a precision per slot (each
block's Linear/convolution layers, then the classifier). Its accuracy is measured with the
inherited weights after batch-norm recalibration on training samples, on validation data, int8
slots simulated as ONNX Runtime computes them (:func:`slimnas.compress.simulate_quantized`);
its costs (MACs, parameters, file bytes, ...) are measured exactly on the plain model the
family's builder makes, by the metrics' own functions.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import torch

from slimnas.compress import quantize_model
from slimnas.compress._fakequant import simulate_quantized
from slimnas.compress._quality import Quality, file_quality, model_quality
from slimnas.config import MeasureSettings
from slimnas.measure import Artifact, Budget, evaluate_artifact, get_metric
from slimnas.measure._task_metrics import is_classification
from slimnas.models import build_model
from slimnas.spaces._family import arch_to_dict
from slimnas.strategies._base import StrategyContext, make_sampler
from slimnas.strategies._early_stopping import nondominated_rank
from slimnas.training import evaluate, recalibrate_bn

#: training samples that calibrate int8 ranges (as ``quantize_model``'s callers use)
N_CALIBRATION = 512


@dataclass(frozen=True)
class Point:
    """A sub-network of ``family`` and the precision of each of its slots (blocks, then the
    classifier)."""

    family: str
    spec: Any
    precision: tuple[str, ...]

    def key(self) -> str:
        return json.dumps([self.family, arch_to_dict(self.spec), list(self.precision)], sort_keys=True)


def layer_precision(net, point: Point) -> dict[str, str]:
    """``{module name: precision}`` of the plain model, the slots' precisions spread over the
    layers of each slot."""
    groups = net.layer_groups(point.spec)
    return {name: p for group, p in zip(groups, point.precision, strict=True) for name in group}


class Encoder:
    """Points as fixed-length vectors: the family, its supernet's encoding of the sub-network
    (depth, per-layer width and kernel, one-hot) and each slot's precision (one-hot; the
    classifier's slot last, absent blocks all zero)."""

    def __init__(self, nets: dict, precisions: Sequence[str]) -> None:
        self.nets, self.precisions = nets, list(precisions)
        self.families = sorted(nets)
        self.sizes = {f: len(nets[f].encode(nets[f].largest())) for f in self.families}
        self.max_blocks = max(max(nets[f].choices["depth"]) for f in self.families)

    def __call__(self, point: Point) -> list[float]:
        out = [1.0 if point.family == f else 0.0 for f in self.families] if len(self.families) > 1 else []
        for f in self.families:
            out += self.nets[f].encode(point.spec) if f == point.family else [0.0] * self.sizes[f]
        if len(self.precisions) > 1:
            blocks, head = list(point.precision[:-1]), point.precision[-1]
            for i in range(self.max_blocks):
                p = blocks[i] if i < len(blocks) else None
                out += [1.0 if p == c else 0.0 for c in self.precisions]
            out += [1.0 if head == c else 0.0 for c in self.precisions]
        return out


def random_point(nets: dict, precisions: Sequence[str], rng: np.random.Generator,
                 draws: dict | None = None) -> Point:
    """A sub-network drawn uniformly along every elastic dimension (by ``draws[family](rng)``
    where given: inside a budget), its family uniformly; half of the points keep every slot at
    the first precision (fp32), the others draw each slot's."""
    families = sorted(nets)
    family = families[int(rng.integers(len(families)))]
    spec = draws[family](rng) if draws else nets[family].sample(rng)
    n_slots = len(nets[family].layer_groups(spec))
    if len(precisions) == 1 or rng.random() < 0.5:
        return Point(family, spec, (precisions[0],) * n_slots)
    return Point(family, spec, tuple(precisions[int(i)] for i in rng.integers(len(precisions), size=n_slots)))


def inherited_model(net, point: Point, data, n_recal: int) -> torch.nn.Module:
    """The sub-network as its plain model with inherited weights, batch norm recalibrated on
    the first ``n_recal`` training samples."""
    plain = net.extract(point.spec)
    recalibrate_bn(plain, data.x_train[:n_recal])
    return plain.eval()


def own_task(data):
    """The data's task where it is not classification (``None``: classification, scored by
    top-1 accuracy as always)."""
    task = getattr(data, "task", None)
    return None if is_classification(task) else task


def token_heads(data) -> dict:
    """What a one-shot supernet of the data takes beyond its shape: ``{'vocab_size', 'per_token'}``
    for token ids (text data) or a per-token task (``tokens``, or ``causal`` for a language
    model), else ``{}``."""
    from slimnas.data._tasks import per_token

    task = own_task(data)
    mode = ("causal" if task.causal else "tokens") if task is not None and per_token(task) else ""
    vocab = getattr(data, "vocab_size", None) or 0
    return {"vocab_size": vocab, "per_token": mode} if vocab or mode else {}


@torch.no_grad()
def point_scores(net, point: Point, data, n_recal: int) -> dict[str, float]:
    """Validation scores of ``point`` with inherited weights (int8 slots simulated): accuracy
    and loss, or every metric of the data's task (in the task's own units)."""
    plain = inherited_model(net, point, data, n_recal)
    precision = layer_precision(net, point)
    if any(p == "int8" for p in precision.values()):
        plain = simulate_quantized(plain, precision, data.x_train[:N_CALIBRATION])
    return {k: float(v) for k, v in evaluate(plain, data.x_val, data.y_val, task=own_task(data)).items()}


def measure_point(net, point: Point, data, n_recal: int) -> float:
    """Validation accuracy of ``point`` with inherited weights (int8 slots simulated)."""
    return point_scores(net, point, data, n_recal)["accuracy"]


def measure_pairs(nets: dict, precisions: Sequence[str], data, *, n_pairs: int, n_recal: int, seed: int,
                  draws: dict | None = None, on_pair: Callable[[int], None] | None = None) -> list[dict]:
    """``n_pairs`` measured (point -> validation accuracy) pairs of distinct points drawn from
    ``seed`` (see :func:`random_point`); for another task than classification, every metric of
    the task as ``val_<name>``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919]))
    pairs, seen = [], set()
    tries = 0
    while len(pairs) < n_pairs and tries < 50 * n_pairs:
        tries += 1
        point = random_point(nets, precisions, rng, draws)
        if point.key() in seen:
            continue
        seen.add(point.key())
        scores = point_scores(nets[point.family], point, data, n_recal)
        measured = {"val_accuracy": scores["accuracy"]} if own_task(data) is None else \
            {f"val_{k}": v for k, v in scores.items()}
        pairs.append({"family": point.family, "arch": arch_to_dict(point.spec), "precision": list(point.precision),
                      **measured})
        if on_pair is not None:
            on_pair(len(pairs))
    return pairs


def measured_on_file(names: Sequence[str]) -> bool:
    """Whether any metric of ``names`` is measured past the plain model (on its exported file,
    such as ``bytes`` or latency), so that a point's precision can change it."""
    return any(get_metric(n).when != "model" for n in names)


class PointCosts:
    """Exact costs of points, cached: ``params``, ``macs`` and the other cost metrics of the
    study, measured by the metrics on the plain model (and on its ONNX file at the point's
    precision, for metrics of the file such as ``bytes``)."""

    def __init__(self, nets: dict, names: Sequence[str], data, settings: MeasureSettings | None = None) -> None:
        self.nets, self.names, self.data, self.settings = nets, list(names), data, MeasureSettings.of(settings)
        self.needs_file = measured_on_file(self.names)
        self.cache: dict[str, dict] = {}

    def __call__(self, point: Point) -> dict[str, float]:
        key = point.key() if self.needs_file else json.dumps([point.family, arch_to_dict(point.spec)], sort_keys=True)
        if key not in self.cache:
            shape = self.data.input_shape
            model = build_model(point.spec, shape, self.data.n_classes).eval()
            onnx = None
            if self.needs_file:
                onnx = quantize_model(model, shape, mode="fp32", calibration=self.data.x_train[:64],
                                      layer_precision=layer_precision(self.nets[point.family], point))
            self.cache[key] = dict(evaluate_artifact(Artifact(model, onnx, shape), self.settings, ["params", "macs", *self.names]))
        return self.cache[key]


def search_points(nets: dict, precisions: Sequence[str], predict: Callable[[list[Point]], np.ndarray],
                  costs: PointCosts, *, objectives: Sequence[str], budget: Sequence[Budget], strategy: str,
                  n_trials: int, seed: int, population_size: int, field: str = "strategy.options.search",
                  key: str = "val_accuracy") -> list[tuple[Point, dict]]:
    """Search points with the registered strategy ``strategy`` on an in-memory study: each
    trial is scored by ``predict`` (accuracy) and ``costs`` (everything else), budgets as
    constraints. Returns every feasible point evaluated with its metrics (predicted accuracy as
    ``val_accuracy``). ``predict`` returns one figure per point, stored under ``key`` (another
    task's metric: ``val_mse``), or ``{key: figures}`` of several predicted metrics."""
    directions = [get_metric(o).direction for o in objectives]
    ctx = StrategyContext(space=None, seed=seed, n_objectives=len(directions), n_startup_trials=population_size,
                          population_size=population_size)
    sampler = make_sampler(strategy, ctx, field)
    families = sorted(nets)
    seen: dict[str, tuple[Point, dict]] = {}

    def objective(trial: optuna.Trial) -> list[float]:
        family = families[0] if len(families) == 1 else trial.suggest_categorical("family", families)
        net, choices = nets[family], nets[family].choices
        depth = trial.suggest_categorical(f"{family}.depth", choices["depth"])
        widths = [trial.suggest_categorical(f"{family}.width_{i}", choices["width"]) for i in range(depth)]
        kernels = None
        if "kernel" in choices:
            kernels = [trial.suggest_categorical(f"{family}.kernel_{i}", choices["kernel"]) for i in range(depth)]
        spec = net.compose(widths, kernels)
        n_slots = len(net.layer_groups(spec))
        if len(precisions) > 1:
            precision = tuple(trial.suggest_categorical(f"{family}.precision_{'head' if i == n_slots - 1 else i}",
                                                        list(precisions)) for i in range(n_slots))
        else:
            precision = (precisions[0],) * n_slots
        point = Point(family, spec, precision)
        predicted = predict([point])
        predicted = predicted if isinstance(predicted, dict) else {key: predicted}
        metrics = {**costs(point), **{k: float(v[0]) for k, v in predicted.items()}}
        violations = [b.violation(metrics) for b in budget]
        for b, v in zip(budget, violations, strict=True):
            trial.set_constraint(str(b), float(v))
        if all(v <= 0 for v in violations):
            seen[point.key()] = (point, metrics)
        return [metrics[get_metric(o).key] for o in objectives]

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(logging.WARNING)  # no line per trial; restored after
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(directions=directions, sampler=sampler)
            study.optimize(objective, n_trials=n_trials, gc_after_trial=False)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return list(seen.values())


def choose(points: list[tuple[Point, dict]], objectives: Sequence[str], n_candidates: int, *,
           limit: int = 64, per_depth: bool = False, quality: str | None = None) -> list[tuple[Point, dict]]:
    """Candidates to fine-tune, in the order trials take them: the first ``n_candidates`` spread
    evenly across the predicted front (by the first cost objective; both ends included), then
    the rest of the front and the next layers, farthest from those taken first; at most ``limit``.

    ``per_depth``: the first ``n_candidates`` start with the predicted most accurate point of each
    family and depth that the front lacks (the spread takes the places left, at least 2).
    Inherited weights under-rate deep, narrow sub-networks, which a fine-tune recovers; without
    this, a predicted front of shallow sub-networks never fine-tunes a deeper one. ``quality``:
    the objective those are best on (default the first maximised one; ``mse`` is minimised)."""
    if not points:
        return []
    signed = np.array([[m[get_metric(o).key] * (-1 if get_metric(o).direction == "maximize" else 1)
                        for o in objectives] for _, m in points], dtype=float)
    rank = nondominated_rank(signed)
    cost_col = next((j for j, o in enumerate(objectives) if get_metric(o).direction == "minimize"), None)
    order = _depth_tops(points, signed, rank, objectives, quality) if per_depth else []
    n_candidates = max(min(2, n_candidates), n_candidates - len(order))
    for r in np.unique(rank):
        layer = [int(i) for i in np.flatnonzero(rank == r) if int(i) not in order]
        if cost_col is None:
            layer.sort(key=lambda i: signed[i, 0])
            order += layer
            continue
        layer.sort(key=lambda i: (signed[i, cost_col], signed[i, 0]))
        if r == rank.min():  # the front: first an even spread, then the others farthest-first
            n = min(n_candidates, len(layer))
            spread = sorted({round(k * (len(layer) - 1) / max(1, n - 1)) for k in range(n)})
            first = [layer[k] for k in spread]
            order += first
            layer = [i for i in layer if i not in first]
        order += _farthest_first(layer, order, signed[:, cost_col])
        if len(order) >= limit:
            break
    return [points[i] for i in order[:limit]]


def _depth_tops(points: list[tuple[Point, dict]], signed: np.ndarray, rank: np.ndarray,
                objectives: Sequence[str], quality: str | None = None) -> list[int]:
    """Per (family, depth) missing from the front: its point best on ``quality`` (default the first
    maximised objective); ``signed`` is lower-is-better, whatever the direction."""
    col = next((j for j, o in enumerate(objectives) if (o == quality if quality else
                                                          get_metric(o).direction == "maximize")), None)
    if col is None:
        return []
    groups: dict[tuple[str, int], list[int]] = {}
    for i, (point, _) in enumerate(points):
        groups.setdefault((point.family, len(point.precision)), []).append(i)
    front = rank.min()
    tops = [min(members, key=lambda i: (signed[i, col], i)) for members in groups.values()
            if not any(rank[i] == front for i in members)]
    return sorted(tops, key=lambda i: signed[i, col])


def _farthest_first(candidates: list[int], taken: list[int], cost: np.ndarray) -> list[int]:
    out, left = [], list(candidates)
    ref = [float(cost[i]) for i in taken]
    while left:
        best = max(left, key=lambda i: (min((abs(float(cost[i]) - c) for c in ref), default=math.inf), -i))
        out.append(best)
        ref.append(float(cost[best]))
        left.remove(best)
    return out


def int8_check(nets: dict, points: list[Point], data, *, n_recal: int, quality: Quality | None = None) -> list[dict]:
    """The simulated int8 accuracy of ``points`` (inherited weights) against the accuracy of the
    ONNX file ONNX Runtime runs, quantized with the same per-layer precision (``quality``: the
    figure compared, by default accuracy or the data's task's primary metric)."""
    quality = quality or Quality.of(own_task(data))
    out = []
    for point in points:
        net = nets[point.family]
        t0 = time.perf_counter()
        plain = inherited_model(net, point, data, n_recal)
        precision = layer_precision(net, point)
        calibration = data.x_train[:N_CALIBRATION]
        simulated = float(model_quality(data, simulate_quantized(plain, precision, calibration), quality=quality))
        onnx = quantize_model(plain, data.input_shape, mode="fp32", calibration=calibration, layer_precision=precision)
        real = float(file_quality(data, onnx, quality=quality))
        out.append({"arch": arch_to_dict(point.spec), "precision": list(point.precision), "simulated": simulated,
                    "onnxruntime": real, "seconds": round(time.perf_counter() - t0, 3)})
    return out
