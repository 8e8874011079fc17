"""Sensitivity analysis: validation accuracy (another task: its primary metric, R², mAP,
perplexity) versus pruning ratio, one layer at a time.

Each prunable layer is pruned alone (no retraining) at each ratio and the validation accuracy
read off, as in Li et al. 2017 ("Pruning Filters for Efficient ConvNets"); layers whose accuracy
falls off early deserve small ratios. The result is plain data, for reports and for the
automated search (``slimnas.report.sensitivity_table`` renders it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from slimnas.compress._base import BaseCompressor, _require_data
from slimnas.compress._prune import StructuredPruner, prunable_layers
from slimnas.compress._quality import Quality, model_quality
from slimnas.measure import count_macs
from slimnas.training import Listener, report_phase

DEFAULT_RATIOS = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass
class SensitivityResult:
    """``curves[layer] = [(ratio, val_accuracy, macs), ...]``; ``baseline`` is the unpruned
    model's validation accuracy and ``baseline_macs`` its MACs. A ratio at which a layer could
    not be pruned (a recurrent layer left alone, a channel group tied to an unpruned layer) has
    no point: the curves hold what was measured."""

    baseline: float
    baseline_macs: int
    ratios: tuple[float, ...]
    curves: dict[str, list[tuple[float, float, int]]] = field(default_factory=dict)
    #: what the curves measure: validation accuracy, or another task's primary metric
    quality: Quality = field(default_factory=Quality)

    def to_dict(self) -> dict:
        out = {"baseline": self.baseline, "baseline_macs": self.baseline_macs, "ratios": list(self.ratios),
               "curves": {k: [list(p) for p in v] for k, v in self.curves.items()}}
        if not self.quality.is_accuracy:  # classification's sensitivity.json stays as it was
            out.update(metric=self.quality.metric, direction=self.quality.direction, display=self.quality.display,
                       relative=self.quality.relative)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> SensitivityResult:
        quality = Quality(d["metric"], d["direction"], d.get("display", d["metric"]), d.get("relative", False)) \
            if "metric" in d else Quality()
        return cls(baseline=d["baseline"], baseline_macs=d["baseline_macs"], ratios=tuple(d["ratios"]),
                   curves={k: [tuple(p) for p in v] for k, v in d["curves"].items()}, quality=quality)

    def drop(self, value: float) -> float:
        """How much worse ``value`` is than the baseline (:meth:`Quality.worse_by`: points of
        accuracy, R², mAP; the relative change of MSE, perplexity)."""
        return self.quality.worse_by(self.baseline, value)

    def max_ratio(self, layer: str, max_drop: float) -> float:
        """The largest ratio whose quality drop stays within ``max_drop`` (0 if none does)."""
        ok = [r for r, acc, _ in self.curves[layer] if self.drop(acc) <= max_drop]
        return max(ok, default=0.0)


def analyze_sensitivity(
    model: nn.Module,
    data,
    *,
    ratios: Sequence[float] = DEFAULT_RATIOS,
    importance: str = "l1",
    layers: Sequence[str] | None = None,
    listener: Listener | None = None,
) -> SensitivityResult:
    """Prune each layer alone at each ratio and measure validation accuracy (no retraining).
    ``listener`` hears of it as the ``sensitivity`` phase, one step per layer.

    Example:
        >>> from slimnas.data import load_dataset
        >>> from slimnas.models import mnist1d_paper_cnn
        >>> res = analyze_sensitivity(mnist1d_paper_cnn(), load_dataset("mnist1d"), ratios=(0.5,))
        >>> sorted(res.curves)
        ['0', '2', '4']
    """
    shape = data.input_shape
    names = list(layers) if layers is not None else [n for n, _ in prunable_layers(model, shape)]
    quality = Quality.of(getattr(data, "task", None))  # accuracy, or the task's primary metric
    result = SensitivityResult(baseline=model_quality(data, model, quality=quality),
                               baseline_macs=count_macs(model, shape), ratios=tuple(ratios), quality=quality)
    with report_phase(listener, "sensitivity", label="sensitivity analysis, each layer pruned alone",
                      total=len(names), unit="layers") as found:
        for i, name in enumerate(names, 1):
            result.curves[name] = _layer_curve(model, data, name, ratios, importance, quality)
            if listener is not None:
                listener.phase_progress("sensitivity", i, {"layer": name})
        found["baseline"] = result.baseline
    return result


def _layer_curve(model: nn.Module, data, name: str, ratios: Sequence[float], importance: str,
                 quality: Quality) -> list[tuple]:
    shape = data.input_shape
    points = []
    for r in ratios:
        pruner = StructuredPruner(ratio=0.0, importance=importance, layer_ratios={name: r}).fit(model, data)
        before, after = pruner.layers_.get(name, (0, 0))
        if after == before:  # nothing could be pruned at this ratio: there is no point to report
            continue
        pruned = pruner.model_
        points.append((float(r), model_quality(data, pruned, quality=quality), count_macs(pruned, shape)))
    return points


class SensitivityAnalyzer(BaseCompressor):
    """:func:`analyze_sensitivity` as a pipeline step; leaves the model unchanged.

    Learned state: ``model_`` (the input, unchanged), ``result_`` (:class:`SensitivityResult`).
    """

    def __init__(self, ratios: Sequence[float] = DEFAULT_RATIOS, importance: str = "l1",
                 layers: Sequence[str] | None = None) -> None:
        self._store(locals())

    def _fit(self, model, data, teacher, input_shape):
        self.result_ = analyze_sensitivity(model, _require_data(data, "sensitivity"), ratios=self.ratios,
                                           importance=self.importance, layers=self.layers)
        self.report_ = self.result_.to_dict()
        return model
