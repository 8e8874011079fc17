"""Structured pruning that physically removes channels, filters, neurons and hidden units.

Wraps torch-pruning's dependency graph (Fang et al. 2023, "DepGraph: Towards Any Structural
Pruning"), which keeps coupled layers consistent: residual sums, concatenations, BatchNorm,
grouped convolutions. Recurrent layers (GRU, LSTM) get a pruning function of our own through
torch-pruning's custom-layer hook; the ones it cannot express are left alone and reported.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from slimnas.compress._base import BaseCompressor, Gene, register_compressor
from slimnas.compress._distill import Retrain
from slimnas.data import DataSplits
from slimnas.errors import ConfigError, SlimnasError
from slimnas.registry import Registry
from slimnas.spaces import Key

#: importance criterion name -> factory of a torch-pruning importance
IMPORTANCES: Registry = Registry("prune.importance")
IMPORTANCES.register("l1")(lambda: tp.importance.MagnitudeImportance(p=1))
IMPORTANCES.register("l2")(lambda: tp.importance.MagnitudeImportance(p=2))
# Molchanov et al. 2019: first-order Taylor expansion of the loss, |gradient x weight|
IMPORTANCES.register("taylor")(lambda: tp.importance.TaylorImportance())
# Liu et al. 2017 (network slimming): |gamma| of the BatchNorm after each channel
IMPORTANCES.register("bn_scale")(lambda: tp.importance.BNScaleImportance())
IMPORTANCES.register("random")(lambda: tp.importance.RandomImportance())

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.GRU, nn.LSTM)
N_GRADIENT_SAMPLES = 512  # training samples whose loss gradient feeds the Taylor criterion


def list_importances() -> list[str]:
    return IMPORTANCES.names()


def linear_schedule(ratio: float, steps: int) -> list[float]:
    """Cumulative ratios ``[0, r/n, 2r/n, ..., r]`` for iterative pruning."""
    return [ratio * i / steps for i in range(steps + 1)]


def agp_schedule(ratio: float, steps: int) -> list[float]:
    """Automated gradual pruning (Zhu & Gupta 2017): ``r * (1 - (1 - i/n)**3)``, fast early, slow late."""
    return [ratio * (1 - (1 - i / steps) ** 3) for i in range(steps + 1)]


SCHEDULES = {"linear": linear_schedule, "agp": agp_schedule}


class RNNHiddenPruningFunc(tp.pruner.function.BasePruningFunc):
    """Removes hidden units of a one-layer, one-direction GRU or LSTM (all its gates' rows)."""

    def _gates(self, layer: nn.RNNBase) -> int:
        return {"GRU": 3, "LSTM": 4}[layer.mode]

    def prune_out_channels(self, layer: nn.RNNBase, idxs: Sequence[int]) -> nn.Module:
        hidden = layer.hidden_size
        keep = torch.tensor(sorted(set(range(hidden)) - {int(i) for i in idxs}), dtype=torch.long)
        rows = torch.cat([keep + g * hidden for g in range(self._gates(layer))])
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            p = getattr(layer, name, None)
            if p is None:
                continue
            data = p.data[rows]
            if name == "weight_hh_l0":
                data = data[:, keep]
            setattr(layer, name, nn.Parameter(data.clone(), requires_grad=p.requires_grad))
        layer.hidden_size = len(keep)
        return layer

    def prune_in_channels(self, layer: nn.RNNBase, idxs: Sequence[int]) -> nn.Module:
        keep = sorted(set(range(layer.input_size)) - {int(i) for i in idxs})
        p = layer.weight_ih_l0
        layer.weight_ih_l0 = nn.Parameter(p.data[:, keep].clone(), requires_grad=p.requires_grad)
        layer.input_size = len(keep)
        return layer

    def get_out_channels(self, layer: nn.RNNBase) -> int:
        return layer.hidden_size

    def get_in_channels(self, layer: nn.RNNBase) -> int:
        return layer.input_size


class FixedRNNPruningFunc(RNNHiddenPruningFunc):
    """Lets the dependency graph trace a recurrent layer it must leave alone (multi-layer or
    bidirectional): reports its true widths and refuses to change it."""

    def prune_out_channels(self, layer, idxs):
        raise SlimnasError(f"cannot prune the hidden units of {layer}")

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer):
        return layer.hidden_size * (2 if layer.bidirectional else 1)


def rnn_unsupported_reason(layer: nn.Module) -> str | None:
    """Why a recurrent layer is left alone, or ``None`` if its hidden units can be pruned."""
    if not isinstance(layer, nn.RNNBase):
        return None
    if layer.mode not in ("GRU", "LSTM"):
        return f"{layer.mode} cells are not supported"
    if layer.num_layers != 1 or layer.bidirectional or getattr(layer, "proj_size", 0):
        return "only one-layer, one-direction GRU/LSTM hidden units are pruned"
    return None


@torch.no_grad()
def executed_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[str, nn.Module]]:
    """Prunable-type layers in the order a forward pass runs them (unused ones are left out)."""
    order: list[tuple[str, nn.Module]] = []
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(lambda mod, a, o: order.append((names[mod], mod)))
             for m in model.modules() if isinstance(m, PRUNABLE_TYPES)]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(2, *input_shape))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(order))


def resolve_modules(model: nn.Module, names: Sequence[str], field: str) -> list[nn.Module]:
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        candidates = [n for n, m in modules.items() if isinstance(m, PRUNABLE_TYPES)]
        raise ConfigError(field, f"layer names of the model ({candidates})", missing[0])
    return [modules[n] for n in names]


def check_ratio(ratio: float, field: str) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise ConfigError(field, "a ratio in [0, 1)", ratio)
    return float(ratio)


@register_compressor("prune")
class StructuredPruner(BaseCompressor):
    """Remove whole channels (conv filters, Linear neurons, recurrent hidden units).

    Args:
        ratio: share of channels removed from every prunable group (``0 <= ratio < 1``).
        importance: criterion by name: ``l1``, ``l2``, ``taylor``, ``bn_scale``, ``random``.
        global_pruning: rank channels across layers instead of within each layer.
        layer_ratios: per-layer ratios by module name; they override ``ratio``.
        ignored: module names left alone (the output layer always is).
        steps: number of pruning steps (with ``retrain`` between them).
        schedule: how the ratio grows over the steps: ``linear`` or ``agp``.
        retrain: retraining after each step (``Retrain(epochs=0)`` for none).

    Learned state: ``model_``; ``layers_`` (name -> [channels before, after]); ``removed_``
    (per step, name -> removed output indices); ``left_alone_`` (name -> why it was not pruned).

    Example:
        >>> from slimnas.models import mnist1d_paper_cnn
        >>> p = StructuredPruner(ratio=0.5).fit(mnist1d_paper_cnn(), input_shape=(1, 40))
        >>> p.layers_["0"]
        [25, 12]
    """

    def __init__(
        self,
        ratio: float = 0.5,
        importance: str = "l1",
        *,
        global_pruning: bool = False,
        layer_ratios: Mapping[str, float] | None = None,
        ignored: Sequence[str] = (),
        steps: int = 1,
        schedule: str = "linear",
        retrain: Retrain | None = None,
    ) -> None:
        self.ratio = ratio
        self.importance = importance
        self.global_pruning = global_pruning
        self.layer_ratios = layer_ratios
        self.ignored = ignored
        self.steps = steps
        self.schedule = schedule
        self.retrain = retrain

    order = 10
    layer_column = "ratio"
    layer_off = 0.0
    genes = {
        "prune": Gene(Key(float, "ratios in [0, 0.95]", {"low": 0.0, "high": 0.8}, lambda v: 0 <= v <= 0.95),
                      layers="prunable", tied_by="per_layer"),
        "per_layer": Gene(Key(bool, "true/false", True), fixed=True),
        "importance": Gene(Key(str, "criteria from " + ", ".join(repr(n) for n in IMPORTANCES.names()), ["l1"],
                               lambda v: v in IMPORTANCES)),
    }

    @classmethod
    def options_from_genes(cls, values):
        ratios = {k: float(v) for k, v in values["prune"].items() if v > 0}
        return {"ratio": 0.0, "importance": values["importance"], "layer_ratios": ratios}

    conformance_options = {"ratio": 0.5}

    def validate(self) -> None:
        self._validate()

    def reference_model(self, original: nn.Module) -> nn.Module | None:
        """The original with the removed channels zeroed (one step without retraining)."""
        if len(self.removed_) != 1 or self.history_:
            return None
        return masked_copy(original, self.removed_[0])

    def is_noop(self) -> bool:
        return self.ratio == 0 and not any(r > 0 for r in (self.layer_ratios or {}).values())

    def not_done(self) -> dict[str, str]:
        return dict(self.left_alone_)

    def did_nothing(self) -> bool:
        return all(before == after for before, after in self.layers_.values())

    def layer_values(self, layers):
        ratios = self.layer_ratios or {}
        return {n: float(ratios.get(n, self.ratio)) for n in layers}

    def _validate(self) -> None:
        check_ratio(self.ratio, "prune.ratio")
        for name, r in (self.layer_ratios or {}).items():
            check_ratio(r, f"prune.layer_ratios.{name}")
        IMPORTANCES.get(self.importance)  # raises ConfigError naming the choices
        if self.schedule not in SCHEDULES:
            raise ConfigError("prune.schedule", f"one of {sorted(SCHEDULES)}", self.schedule)
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError("prune.steps", "an integer >= 1", self.steps)

    def _fit(self, model, data, teacher, input_shape):
        self._validate()
        names = {m: n for n, m in model.named_modules()}
        executed = executed_layers(model, input_shape)
        if not executed:
            raise SlimnasError("the model has no Linear, Conv or GRU/LSTM layer to prune")
        ignored = resolve_modules(model, list(self.ignored), "prune.ignored")
        ignored.append(executed[-1][1])  # the output layer: its width is the number of classes
        self.left_alone_ = {}
        # torch-pruning takes custom pruners per layer type: one unsupported GRU (or LSTM) means
        # every GRU (or LSTM) of the model is left alone
        custom: dict = {nn.GRU: RNNHiddenPruningFunc(), nn.LSTM: RNNHiddenPruningFunc()}
        rnns = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.GRU, nn.LSTM))]
        for _, mod in rnns:
            if rnn_unsupported_reason(mod):
                custom[type(mod)] = FixedRNNPruningFunc()
        for name, mod in rnns:
            if isinstance(custom[type(mod)], FixedRNNPruningFunc):
                ignored.append(mod)
                self.left_alone_[name] = rnn_unsupported_reason(mod) or (
                    f"left alone with the model's other {mod.mode} layers (one of them is unsupported)")
        ratio_dict = {m: r for m, r in zip(resolve_modules(model, list(self.layer_ratios or {}),
                                                           "prune.layer_ratios"),
                                           (self.layer_ratios or {}).values(), strict=True)}
        before = {n: _width(m) for n, m in executed}
        if not self.global_pruning:
            # torch-pruning leaves a layer whole when its ratio would remove every channel: cap
            # each ratio so that one channel stays, rather than silently not pruning
            for name, mod in executed[:-1]:
                target = ratio_dict.get(mod, self.ratio)
                cap = max(0.0, 1 - 1.5 / max(before[name], 1))
                if target > cap and mod not in ignored:
                    ratio_dict[mod] = cap
        importance = IMPORTANCES.get(self.importance)()
        example = torch.randn(2, *input_shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch-pruning warns about unwrapped parameters it skips
            pruner = _build_pruner(
                model, example, importance=importance, global_pruning=self.global_pruning,
                pruning_ratio=float(self.ratio), pruning_ratio_dict=ratio_dict or None,
                iterative_steps=self.steps, iterative_pruning_ratio_scheduler=SCHEDULES[self.schedule],
                ignored_layers=ignored, customized_pruners=custom,
                root_module_types=[tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR, nn.GRU, nn.LSTM],
            )
        retrain = self.retrain or Retrain()
        self.removed_ = []
        self.history_ = []
        epochs_run = 0
        for step in range(self.steps):
            if self.importance == "taylor":
                _accumulate_gradients(model, data, example)
            torch.manual_seed(retrain.seed + step)  # the random criterion draws from torch's RNG
            removed: dict[str, list[int]] = {}
            for group in pruner.step(interactive=True):
                for dep, idxs in group:
                    if dep.handler.__name__ == "prune_out_channels" and dep.target.module in names:
                        removed[names[dep.target.module]] = sorted(int(i) for i in idxs)
                group.prune()
            model.zero_grad(set_to_none=True)
            self.removed_.append(removed)
            history = retrain.run(model, data, teacher)
            if history is not None:
                self.history_.append(history.last)
                epochs_run += len(history.epochs)
        self.layers_ = {n: [before[n], _width(m)] for n, m in executed}
        for name, (b, a) in self.layers_.items():
            target = (self.layer_ratios or {}).get(name, self.ratio)
            if a == b and target > 0 and name not in self.left_alone_ and name != executed[-1][0]:
                self.left_alone_[name] = f"no channel removed ({self.importance!r} scores none, or a coupled layer is ignored)"
        self.report_ = {"importance": self.importance, "ratio": self.ratio, "layers": self.layers_,
                        "left_alone": self.left_alone_, "steps": self.steps, "epochs_run": epochs_run}
        return model.eval()


@torch.no_grad()
def masked_copy(original: nn.Module, removed: Mapping[str, Sequence[int]]) -> nn.Module:
    """The original with the given output channels zeroed (weights, biases; every gate's rows of
    a recurrent layer): what structured pruning of those channels must compute."""
    model = copy.deepcopy(original)
    modules = dict(model.named_modules())
    for name, idxs in removed.items():
        m, idx = modules[name], torch.tensor(list(idxs), dtype=torch.long)
        if isinstance(m, nn.RNNBase):
            rows = torch.cat([idx + g * m.hidden_size for g in range({"GRU": 3, "LSTM": 4}[m.mode])])
            for pname in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                if getattr(m, pname, None) is not None:
                    getattr(m, pname)[rows] = 0
            # a GRU unit whose gates are all zero keeps h = z * h_prev = 0 from h0 = 0
        else:
            m.weight[idx] = 0
            if m.bias is not None:
                m.bias[idx] = 0
    return model.eval()


def _build_pruner(model: nn.Module, example: torch.Tensor, **kwargs) -> tp.pruner.BasePruner:
    try:
        return tp.pruner.BasePruner(model, example, **kwargs)
    except (TypeError, ValueError, RuntimeError, AssertionError, KeyError, IndexError) as e:
        raise SlimnasError(
            f"torch-pruning cannot trace this model for structured pruning ({type(e).__name__}: {e}); "
            "list the layers it trips on in prune.ignored, or use unstructured pruning"
        ) from None


def _width(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.RNNBase):
        return module.hidden_size
    return module.out_channels


def _accumulate_gradients(model: nn.Module, data: DataSplits | None, example: torch.Tensor) -> None:
    """Loss gradients on training samples, for the Taylor criterion."""
    if data is None:
        raise ConfigError("prune.importance", "dataset splits for 'taylor' (it needs loss gradients)", "taylor")
    model.zero_grad(set_to_none=True)
    was_training = model.training
    model.eval()
    n = min(len(data.y_train), N_GRADIENT_SAMPLES)
    for i in range(0, n, 128):
        xb, yb = data.x_train[i : min(i + 128, n)], data.y_train[i : min(i + 128, n)]
        loss = F.cross_entropy(model(xb), yb, reduction="sum") / n
        loss.backward()
    model.train(was_training)
    if not math.isfinite(float(loss.detach())):
        raise SlimnasError("the loss is not finite; Taylor importance cannot be computed")
