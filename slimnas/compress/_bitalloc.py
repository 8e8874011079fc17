"""Each layer's precision under a size budget, from each layer's sensitivity to each precision
(HAQ, Wang et al. 2019, allocates 2-8 bits per layer under a size or latency budget; NVIDIA Model
Optimizer's AutoQuantize chooses per-layer formats under an effective-bits constraint from
per-layer sensitivities, solved as a linear programme).

Sensitivity is measured, not estimated: for every layer and every candidate precision, the file
with that one layer at that precision (every other layer fp32) is written as it would ship and
its validation accuracy and loss read in ONNX Runtime; its bytes and its weight bytes (the
``bits`` metric's numerator, :mod:`slimnas.measure._bits`) against the fp32 file's are what the
precision saves on that layer. The allocation is the greedy of the Lagrangian relaxation of that
integer programme: from every layer at its costliest allowed precision, the move (a layer to any
cheaper precision) that adds the least validation loss per byte saved is taken until every size
budget is met; then layers are raised again where the budget still has room, most loss taken
back first. Costs are additive estimates (one layer's change measured alone); the file written
from the allocation is measured again, and that measurement is what the budget is checked on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from torch import nn

from slimnas.compress._base import WEIGHTED
from slimnas.compress._prune import executed_layers
from slimnas.compress._prune_layers import split_view
from slimnas.compress._quality import Quality
from slimnas.measure._bits import layer_bits
from slimnas.measure._task_metrics import task_outputs
from slimnas.training import Listener, report_phase

#: the precisions ``--auto`` chooses among per layer under a bits budget unless ``--precision`` says otherwise
MIXED_PRECISIONS = ("fp32", "fp16", "int8", "int4", "palette8", "palette4", "palette2")
#: the size budgets an allocation meets (metric -> what it counts)
SIZE_METRICS = ("bytes", "bits")
#: accuracy (a fraction) counted as lost by a layer taken from 32 bits to 0 when nothing is measured
#: lost: a tie-break, so a budget's room goes to more bits where sensitivities measure equal (a small
#: validation set measures many low-bit layers as free)
BITS_PRIOR = 1e-3
#: bytes held back from a bytes limit: the estimate adds each layer's change measured alone, and
#: what several low-bit layers share in the file (the unpacking's constants, an opset) is not additive
BYTES_MARGIN = 64


@dataclass
class PrecisionSensitivity:
    """What each precision costs and saves on each layer alone.

    Attributes:
        baseline: validation accuracy of the fp32 file; ``baseline_loss``: its validation
            cross-entropy (the allocation weighs precisions by the loss they add: smoother and
            closer to additive across layers than accuracy on a validation set of a few hundred).
        base_bytes: that file's bytes; ``base_weight_bytes``: its layers' weight bytes;
            ``weights``: their weights (``bits`` of the fp32 file is ``8 x base_weight_bytes / weights``).
        n_weights: each layer's weights.
        layers: ``layer -> precision -> {"val_accuracy", "val_loss", "bytes", "weight_bytes"}``,
            the last two the change against the fp32 file (negative: saved).
    """

    baseline: float
    base_bytes: int
    base_weight_bytes: int
    weights: int
    n_weights: dict[str, int] = field(default_factory=dict)
    layers: dict[str, dict[str, dict]] = field(default_factory=dict)
    baseline_loss: float | None = None

    def harm(self, layer: str, precision: str) -> float:
        """What the allocation minimises: the validation loss ``layer`` alone at ``precision``
        adds (accuracy lost where no loss was measured); never below 0."""
        if precision == "fp32":
            return 0.0
        row = self.layers[layer][precision]
        if self.baseline_loss is None or "val_loss" not in row:
            return self.drop(layer, precision)
        return max(0.0, row["val_loss"] - self.baseline_loss)

    def drop(self, layer: str, precision: str) -> float:
        """Validation accuracy lost with ``layer`` alone at ``precision`` (0 at fp32; never below 0)."""
        if precision == "fp32":
            return 0.0
        return max(0.0, self.baseline - self.layers[layer][precision]["val_accuracy"])

    def cost(self, layer: str, precision: str, metric: str) -> float:
        """What ``layer`` at ``precision`` adds to ``metric``'s sum (bytes of the file, or weight
        bytes for bits), against fp32."""
        if precision == "fp32":
            return 0.0
        return float(self.layers[layer][precision]["bytes" if metric == "bytes" else "weight_bytes"])

    def to_dict(self) -> dict:
        return {"baseline": self.baseline, "baseline_loss": self.baseline_loss, "base_bytes": self.base_bytes,
                "base_weight_bytes": self.base_weight_bytes, "weights": self.weights, "n_weights": self.n_weights,
                "layers": self.layers}

    @classmethod
    def from_dict(cls, d: Mapping) -> PrecisionSensitivity:
        return cls(**{k: d[k] for k in ("baseline", "base_bytes", "base_weight_bytes", "weights", "n_weights", "layers")},
                   baseline_loss=d.get("baseline_loss"))


def quantized_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[str]:
    """The layers a precision is chosen for (named as pruning and ``--auto`` name them)."""
    return [n for n, m in executed_layers(split_view(model), input_shape) if isinstance(m, WEIGHTED)]


def _write(model: nn.Module, layer_precision: Mapping[str, str], data, n_calibration: int = 512) -> bytes:
    """The file the quantize step writes for ``model`` (left as it is) at ``layer_precision``."""
    import copy

    from slimnas.compress._quantize import OnnxQuantizer

    q = OnnxQuantizer(mode="fp32", layer_precision=dict(layer_precision), n_calibration=n_calibration)
    return q._quantize(copy.deepcopy(model).eval(), data, data.input_shape)


def _file_figures(model: nn.Module, data, layer_precision: dict[str, str]) -> tuple[float, float, int, int, int]:
    """``(val accuracy and val loss in ONNX Runtime, file bytes, layers' weight bytes, weights)``
    of the file the quantize step writes with ``layer_precision``; for another task than
    classification, its primary metric (negated where lower is better) and its loss (``None``
    for a detector, whose losses need its training mode)."""
    import torch

    from slimnas.export import predict

    onnx = _write(model, layer_precision, data)
    layers = layer_bits(onnx)
    sizes = (len(onnx), sum(lay.weight_bytes for lay in layers), sum(lay.weights for lay in layers))
    quality = Quality.of(getattr(data, "task", None))
    if not quality.is_accuracy:  # the task's primary metric, signed so that higher is better, and its loss
        task = data.task
        out = task_outputs(task, None, onnx, data.x_val)
        value = quality.sign() * float(task.score(out, data.y_val)[quality.metric])
        return (value, None if task.own_losses else float(task.loss(out, data.y_val)), *sizes)
    logits = torch.from_numpy(predict(onnx, data.x_val))
    y = data.y_val.cpu()
    return (float((logits.argmax(1) == y).float().mean()), float(torch.nn.functional.cross_entropy(logits, y)), *sizes)


def precision_sensitivity(model: nn.Module, data, precisions: Sequence[str], *, layers: Sequence[str] | None = None,
                          listener: Listener | None = None) -> PrecisionSensitivity:
    """Each layer of ``layers`` (default: every Linear and convolution) alone at each of
    ``precisions``, written, measured (module docstring). ``listener`` hears of it as the
    ``precision sensitivity`` phase, one step per layer."""
    view = split_view(model)
    names = list(layers) if layers is not None else quantized_layers(model, data.input_shape)
    modules = dict(view.named_modules())
    acc, loss, size, weight_bytes, weights = _file_figures(view, data, {})
    sens = PrecisionSensitivity(acc, size, weight_bytes, weights,
                                n_weights={n: int(modules[n].weight.numel()) for n in names}, baseline_loss=loss)
    others = [p for p in dict.fromkeys(precisions) if p != "fp32"]
    with report_phase(listener, "precision", label="precision sensitivity, each layer alone at each precision",
                      total=len(names), unit="layers") as found:
        for i, name in enumerate(names, 1):
            row = {}
            for p in others:
                a, lo, b, wb, _ = _file_figures(view, data, {name: p})
                row[p] = {"val_accuracy": round(a, 6), "bytes": b - size, "weight_bytes": wb - weight_bytes}
                if lo is not None:
                    row[p]["val_loss"] = round(lo, 6)
            sens.layers[name] = row
            if listener is not None:
                listener.phase_progress("precision", i, {"layer": name})
        found["baseline"] = acc
    return sens


@dataclass
class PrecisionAllocation:
    """Per-layer precisions, whether they meet the limits (as estimated), and why each layer got its own."""

    precision: dict[str, str]
    met: bool
    estimated: dict[str, float]
    limits: dict[str, float]
    reasons: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"precision": self.precision, "met": self.met, "estimated": self.estimated, "limits": self.limits,
                "reasons": self.reasons}


def size_limits(budgets) -> dict[str, float]:
    """The upper limits among ``budgets`` an allocation meets: ``{"bytes": ..., "bits": ...}``."""
    out: dict[str, float] = {}
    for b in budgets:
        if b.metric in SIZE_METRICS and b.op in ("<=", "<") and not b.relative:
            out[b.metric] = min(out.get(b.metric, float("inf")), b.limit)
    return out


def allocate_precision(sens: PrecisionSensitivity, precisions: Sequence[str], limits: Mapping[str, float], *,
                       shares: Mapping[str, float] | None = None,
                       stated: Mapping[str, float] | None = None) -> PrecisionAllocation:
    """Per-layer precisions among ``precisions`` meeting ``limits`` (``{"bytes": ..., "bits":
    ...}``) at the least estimated loss added (module docstring). ``shares``: each layer's
    weights kept by pruning (1 where absent): its costs and savings scale with it. ``stated``:
    the budget's own limits, where ``limits`` aim lower so that the written file meets them (the
    reasons name both)."""
    shares = {n: float((shares or {}).get(n, 1.0)) for n in sens.layers}
    allowed = [p for p in dict.fromkeys(precisions) if p == "fp32" or all(p in row for row in sens.layers.values())]

    def totals(choice: Mapping[str, str]) -> dict[str, float]:
        removed = sum(4 * sens.n_weights[n] * (1 - shares[n]) for n in sens.layers)  # fp32 bytes pruned away
        weights = sens.weights - sum(sens.n_weights[n] * (1 - shares[n]) for n in sens.layers)
        file_bytes = sens.base_bytes - removed + sum(sens.cost(n, p, "bytes") * shares[n] for n, p in choice.items())
        wbytes = sens.base_weight_bytes - removed + sum(sens.cost(n, p, "bits") * shares[n] for n, p in choice.items())
        return {"bytes": file_bytes, "bits": 8 * wbytes / max(weights, 1)}

    room = {m: lim - BYTES_MARGIN if m == "bytes" else lim for m, lim in limits.items()}

    def excess(choice) -> dict[str, float]:
        t = totals(choice)
        return {m: (t[m] - lim) / lim for m, lim in room.items() if t[m] > lim}

    def lost(n: str, p: str) -> float:
        bits = 32 + 8 * sens.cost(n, p, "bits") / max(sens.n_weights[n], 1)
        return sens.harm(n, p) + BITS_PRIOR * max(0.0, 32 - bits) / 32

    def saving(n: str, old: str, new: str, metric: str) -> float:
        return (sens.cost(n, old, metric) - sens.cost(n, new, metric)) * shares[n]

    costliest = max(allowed, key=lambda p: sum(sens.cost(n, p, "bits") for n in sens.layers))
    choice = dict.fromkeys(sens.layers, costliest)
    while excess(choice):
        over = excess(choice)
        metric = max(over, key=over.get)  # the budget missed by the largest share
        best = None
        for n, cur in choice.items():
            for p in allowed:
                saved = saving(n, cur, p, metric)
                if saved <= 0:
                    continue
                rate = (lost(n, p) - lost(n, cur)) / saved
                if best is None or (rate, -saved) < best[:2]:
                    best = (rate, -saved, n, p)
        if best is None:
            break  # nothing cheaper left anywhere
        _, _, n, p = best
        choice[n] = p
    met = not excess(choice)
    if met:  # give back precision where the budget has room, most accuracy regained first
        while True:
            best = None
            for n, cur in choice.items():
                for p in allowed:
                    gain = lost(n, cur) - lost(n, p)
                    if gain <= 0:
                        continue
                    trial = {**choice, n: p}
                    if not excess(trial) and (best is None or gain > best[0]):
                        best = (gain, n, p)
            if best is None:
                break
            choice[best[1]] = best[2]
    reasons = {}
    for n, p in choice.items():
        figures = {q: {"drop": round(sens.drop(n, q), 4), "loss_added": round(sens.harm(n, q), 4),
                       "bits": round(32 + 8 * sens.cost(n, q, "bits") / max(sens.n_weights[n], 1), 3)}
                   for q in allowed}
        if p == costliest:
            why = f"kept at {p}: the budget did not need this layer lower"
        else:
            cheaper = [q for q in allowed if figures[q]["bits"] < figures[p]["bits"]]
            nxt = min(cheaper, key=lambda q: figures[q]["loss_added"], default=None)
            aim = "" if not stated or dict(stated) == dict(limits) else (
                f" (aiming at {', '.join(f'{m}<={lim:.4g}' for m, lim in limits.items())} so the written file meets it)")
            why = (f"{costliest} -> {p} to meet {', '.join(f'{m}<={lim:g}' for m, lim in (stated or limits).items())}"
                   f"{aim}: "
                   f"alone at {p} it loses {100 * figures[p]['drop']:.2f} points (adds "
                   f"{figures[p]['loss_added']:.3f} to the validation loss) for "
                   f"{figures[costliest]['bits'] - figures[p]['bits']:.2f} fewer bits per weight"
                   + (f" (at {nxt}, the least harmful lower one, {100 * figures[nxt]['drop']:.2f} points, "
                      f"+{figures[nxt]['loss_added']:.3f} loss)" if nxt else ""))
        reasons[n] = {"precision": p, "reason": why, "by_precision": figures}
    t = totals(choice)
    return PrecisionAllocation(choice, met, {k: round(v, 3) for k, v in t.items()}, dict(limits), reasons)


def layer_shares(parent: nn.Module, pruned: nn.Module, layers: Sequence[str]) -> dict[str, float]:
    """Each layer's weights in ``pruned`` over its weights in ``parent`` (1 where it is not found)."""
    before, after = dict(split_view(parent).named_modules()), dict(split_view(pruned).named_modules())
    out = {}
    for n in layers:
        a, b = after.get(n), before.get(n)
        if isinstance(a, WEIGHTED) and isinstance(b, WEIGHTED) and b.weight.numel():
            out[n] = a.weight.numel() / b.weight.numel()
    return out


#: files written to correct an allocation's estimate against the file's measured sizes
MAX_REFITS = 4


def file_sizes(model: nn.Module, layer_precision: Mapping[str, str], data) -> dict[str, float]:
    """``{"bytes", "bits"}`` of the file the quantize step writes for ``model`` at ``layer_precision``
    (a file's sizes follow from its structure: the weights' values only set a palette's table
    when a layer has fewer distinct values than entries)."""
    onnx = _write(model, layer_precision, data, n_calibration=64)
    layers = layer_bits(onnx)
    n = sum(lay.weights for lay in layers)
    return {"bytes": len(onnx), "bits": 8.0 * sum(lay.weight_bytes for lay in layers) / max(n, 1)}


def fit_precision(parent: nn.Module, pruned: nn.Module, sens: PrecisionSensitivity, precisions: Sequence[str],
                  limits: Mapping[str, float], data) -> PrecisionAllocation:
    """The allocation for ``pruned`` (``parent`` with channels removed) under ``limits``, checked
    on its file: where the file's measured sizes miss a limit the estimate met, the limit the
    allocation aims at is lowered by the miss and the allocation made again (at most
    :data:`MAX_REFITS` files). The allocation's ``estimated`` figures are the last file's."""
    shares = layer_shares(parent, pruned, list(sens.layers))
    target = dict(limits)
    alloc = allocate_precision(sens, precisions, target, shares=shares)
    for _ in range(MAX_REFITS):
        measured = file_sizes(pruned, alloc.precision, data)
        miss = {m: measured[m] - lim for m, lim in limits.items() if measured[m] > lim}
        if not miss or not alloc.met:
            break
        target = {m: t - max(0.0, measured[m] - alloc.estimated[m]) if m in miss else t for m, t in target.items()}
        alloc = allocate_precision(sens, precisions, target, shares=shares, stated=limits)
    else:
        measured = file_sizes(pruned, alloc.precision, data)
    alloc.estimated = {k: round(float(v), 3) for k, v in measured.items()}
    alloc.met = all(measured[m] <= lim for m, lim in limits.items())
    alloc.limits = dict(limits)
    return alloc

