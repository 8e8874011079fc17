"""Per-layer compression policies: the value an automated compression search proposes.

A :class:`CompressionPolicy` says, per layer, how much to prune, at what precision to store it,
how much rank to keep, and whether to cluster weights and distil. :func:`apply_policy` turns it
into a compressed artifact (an eager model plus its ONNX file) and :func:`measure_artifact`
measures that artifact with the backbone's metric names. :func:`list_prunable_layers` and
:func:`scale_to_macs` give a search what it needs to place ratios under a MAC budget (AMC,
He et al. 2018, searches exactly this per-layer ratio space).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from slimnas.compress import _onnx
from slimnas.compress._cluster import WeightClusterer
from slimnas.compress._distill import FINETUNE_SPEC, Retrain
from slimnas.compress._lowrank import LowRank, LowRankFactorizer
from slimnas.compress._prune import IMPORTANCES, StructuredPruner, check_ratio, executed_layers
from slimnas.compress._quantize import MODES, quantize_model
from slimnas.data import DataSplits
from slimnas.errors import ConfigError
from slimnas.measure import OnnxRuntimeLatency, count_macs, count_params
from slimnas.spaces import TrainSpec
from slimnas.training import Callback

PRECISIONS = ("fp32", "fp16", "int8")
MAX_RATIO = 0.95  # scale_to_macs never removes more than this share of a layer's channels


def _pairs(value, field_name: str, check) -> tuple:
    if isinstance(value, Mapping):
        value = value.items()
    try:
        pairs = tuple(sorted((str(k), v) for k, v in value))
    except (TypeError, ValueError):
        raise ConfigError(f"compression.{field_name}", "a mapping of layer name -> value", value) from None
    for k, v in pairs:
        check(v, f"compression.{field_name}.{k}")
    return pairs


def _check_precision(v, where):
    if v not in PRECISIONS:
        raise ConfigError(where, f"one of {list(PRECISIONS)}", v)


def _check_rank(v, where):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
        raise ConfigError(where, "a kept-rank ratio in (0, 1]", v)


@dataclass(frozen=True)
class CompressionPolicy:
    """What to do to each layer. Mappings may be passed as dicts; they are stored as sorted
    ``(name, value)`` tuples so the policy stays hashable.

    Attributes:
        prune: module name -> structured pruning ratio in ``[0, 1)``.
        importance: pruning criterion (``l1``, ``l2``, ``taylor``, ``bn_scale``, ``random``).
        precision: module name -> ``fp32``/``fp16``/``int8``.
        default_precision: for layers not in ``precision``: ``fp32``, ``fp16``, ``int8`` or
            ``int8-dynamic`` (the last for the whole model only).
        lowrank: module name -> kept-rank ratio in ``(0, 1]``.
        cluster: k-means clusters per layer; 0 leaves weights unclustered.
        distill: distil from the uncompressed model in every retraining step.
        temperature, alpha: distillation temperature and soft-loss weight.
        finetune_lr: learning rate of every retraining step; 0 keeps the fine-tune recipe's.

    Example:
        >>> p = CompressionPolicy(prune={"0": 0.5}, default_precision="int8", distill=True)
        >>> CompressionPolicy.from_dict(p.to_dict()) == p
        True
    """

    prune: tuple[tuple[str, float], ...] = ()
    importance: str = "l1"
    precision: tuple[tuple[str, str], ...] = ()
    default_precision: str = "fp32"
    lowrank: tuple[tuple[str, float], ...] = ()
    cluster: int = 0
    distill: bool = False
    temperature: float = 4.0
    alpha: float = 0.9
    finetune_lr: float = 0.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "prune", _pairs(self.prune, "prune", check_ratio))
        set_(self, "precision", _pairs(self.precision, "precision", _check_precision))
        set_(self, "lowrank", _pairs(self.lowrank, "lowrank", _check_rank))
        IMPORTANCES.get(self.importance)
        if self.default_precision not in MODES:
            raise ConfigError("compression.default_precision", f"one of {list(MODES)}", self.default_precision)
        if isinstance(self.cluster, bool) or not isinstance(self.cluster, int) or self.cluster < 0 or self.cluster == 1:
            raise ConfigError("compression.cluster", "0 (off) or an integer >= 2", self.cluster)
        if not self.temperature > 0 or not 0 <= self.alpha <= 1:
            raise ConfigError("compression.temperature/alpha", "temperature > 0 and alpha in [0, 1]",
                              (self.temperature, self.alpha))
        if not 0 <= self.finetune_lr <= 10:
            raise ConfigError("compression.finetune_lr", "0 (the recipe's) or a learning rate in (0, 10]",
                              self.finetune_lr)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("prune", "precision", "lowrank"):
            out[key] = dict(out[key])
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> CompressionPolicy:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"compression.{sorted(unknown)[0]}", f"one of the keys {sorted(known)}")
        return cls(**d)


@dataclass
class CompressedModel:
    """The artifact a policy produces: the eager model, its ONNX file (at the policy's
    precision), and what each step did."""

    model: nn.Module
    onnx: bytes
    input_shape: tuple[int, ...]
    policy: CompressionPolicy
    report: dict = field(default_factory=dict)
    storage_bytes: int | None = None  # bytes of the clustered encoding, when clustering ran


@dataclass(frozen=True)
class PrunableLayer:
    name: str
    kind: str
    out_channels: int
    macs: int


def list_prunable_layers(model: nn.Module, input_shape: tuple[int, ...]) -> list[PrunableLayer]:
    """Layers whose output channels structured pruning can remove, in forward order, with their
    widths and MACs per sample (the output layer is left out: its width is the class count)."""
    shapes: dict[str, tuple] = {}
    layers = executed_layers(model, input_shape)[:-1]

    def record(name: str):
        def hook(mod, args, out) -> None:  # returns None: a value would replace the output
            shapes.setdefault(name, tuple(args[0].shape[1:]))

        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in layers]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    out = []
    for name, m in layers:
        width = m.hidden_size if isinstance(m, nn.RNNBase) else getattr(m, "out_channels", getattr(m, "out_features", 0))
        out.append(PrunableLayer(name, type(m).__name__, int(width), count_macs(m, shapes[name])))
    return out


def _prune_copy(model: nn.Module, ratios: Mapping[str, float], input_shape) -> nn.Module:
    return StructuredPruner(ratio=0.0, layer_ratios=dict(ratios)).fit(model, input_shape=input_shape).model_


def scale_to_macs(
    model: nn.Module,
    ratios: Mapping[str, float],
    input_shape: tuple[int, ...],
    target_macs: int,
    *,
    n_iter: int = 14,
) -> tuple[dict[str, float], int]:
    """Scale per-layer ratios by one multiplier so the pruned model has about ``target_macs``.

    Bisection on the multiplier; each probe prunes a copy and counts its real MACs (which depend
    on channel counts only, so magnitude importance stands in for any criterion).

    Returns:
        ``(ratios, macs)``: the scaled ratios (each below 0.95, and keeping a channel) and the MACs they give, the
        closest at or below the target when it can be reached, else the smallest reachable.
    """
    ratios = {k: float(v) for k, v in ratios.items() if v > 0}
    if not ratios:
        raise ConfigError("scale_to_macs.ratios", "at least one layer with a ratio > 0", ratios)
    base = count_macs(model, input_shape)
    if target_macs >= base:
        return {k: 0.0 for k in ratios}, base

    # torch-pruning skips a layer whose ratio would leave no channel, which would make MACs
    # jump back up: cap every ratio so that at least one channel stays
    widths = {layer.name: layer.out_channels for layer in list_prunable_layers(model, input_shape)}
    caps = {k: min(MAX_RATIO, 1 - 1.5 / widths[k]) if k in widths else MAX_RATIO for k in ratios}

    def scaled(mult: float) -> dict[str, float]:
        return {k: max(0.0, min(caps[k], v * mult)) for k, v in ratios.items()}

    lo, hi = 0.0, MAX_RATIO / min(ratios.values())
    best = (scaled(hi), count_macs(_prune_copy(model, scaled(hi), input_shape), input_shape))
    if best[1] > target_macs:
        return best
    for _ in range(n_iter):
        mid = (lo + hi) / 2
        macs = count_macs(_prune_copy(model, scaled(mid), input_shape), input_shape)
        if macs <= target_macs:
            hi, best = mid, (scaled(mid), macs)
        else:
            lo = mid
    return best


def apply_policy(
    model: nn.Module,
    policy: CompressionPolicy,
    data: DataSplits,
    *,
    teacher: nn.Module | None = None,
    epochs: int = 1,
    train: TrainSpec | None = None,
    seed: int = 0,
    device: str = "cpu",
    callbacks: Sequence[Callback] = (),
) -> CompressedModel:
    """Compress a copy of ``model`` as ``policy`` says: prune -> retrain -> low-rank -> retrain ->
    cluster -> quantize to ONNX. ``epochs`` is the retraining length after each step that changes
    weights (0 for none); ``teacher`` defaults to ``model``; ``callbacks`` run after every
    retraining epoch (a callback that raises, such as a search's early stopping, ends it).

    Example:
        >>> from slimnas.data import load_dataset
        >>> from slimnas.models import mnist1d_paper_cnn
        >>> art = apply_policy(mnist1d_paper_cnn(), CompressionPolicy(prune={"0": 0.5}),
        ...                    load_dataset("mnist1d"), epochs=0)
        >>> art.model[0].out_channels
        12
    """
    teacher = model if teacher is None else teacher
    train = train or FINETUNE_SPEC
    if policy.finetune_lr > 0:
        train = dataclasses.replace(train, lr=policy.finetune_lr)
    retrain = Retrain(epochs=epochs, train=train, distill=policy.distill,
                      temperature=policy.temperature, alpha=policy.alpha, seed=seed, device=device,
                      callbacks=tuple(callbacks))
    shape = data.input_shape
    current, report = copy.deepcopy(model).cpu().eval(), {}
    if any(r > 0 for _, r in policy.prune):
        step = StructuredPruner(ratio=0.0, importance=policy.importance, layer_ratios=dict(policy.prune),
                                retrain=retrain).fit(current, data, teacher=teacher)
        current, report["prune"] = step.model_, step.report_
    if policy.lowrank:
        step = LowRankFactorizer(layer_ratios=dict(policy.lowrank), retrain=retrain).fit(current, data, teacher=teacher)
        current, report["lowrank"] = step.model_, step.report_
    storage = None
    if policy.cluster:
        step = WeightClusterer(n_clusters=policy.cluster, retrain=retrain).fit(current, data, teacher=teacher)
        current, report["cluster"], storage = step.model_, step.report_, step.encoded_bytes_
    precision = _expand_precision(current, dict(policy.precision))
    calib = data.x_train[:512]
    onnx = quantize_model(current, shape, mode=policy.default_precision, calibration=calib, layer_precision=precision)
    report["quantize"] = {"default_precision": policy.default_precision, "precision": precision}
    return CompressedModel(current, onnx, shape, policy, report, storage)


def _expand_precision(model: nn.Module, precision: dict[str, str]) -> dict[str, str]:
    """Precision of a factorised layer applies to each of its factors."""
    modules = dict(model.named_modules())
    out = {}
    for name, p in precision.items():
        if isinstance(modules.get(name), LowRank):
            out.update({f"{name}.{i}": p for i in range(len(modules[name]))})
        else:
            out[name] = p
    return out


def measure_artifact(
    artifact: CompressedModel,
    data: DataSplits,
    *,
    splits: Sequence[str] = ("val", "test"),
    latency_batches: Sequence[int] = (1, 64),
    repeats: int = 200,
) -> dict[str, float]:
    """Metrics of the artifact itself: accuracy from running its ONNX file in ONNX Runtime,
    ``params``, ``macs``, ``bytes`` (the file; also split into ``weight_bytes`` and
    ``overhead_bytes``), ``storage_bytes`` (clustered encoding, else the file), and ONNX Runtime
    latency ``latency_ms_b<batch>`` (``latency_ms`` is the first batch size)."""
    import tempfile
    from pathlib import Path

    metrics: dict[str, float] = {}
    for split in splits:
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        metrics[f"{split}_accuracy"] = _onnx.accuracy(artifact.onnx, x, y)
    metrics["params"] = count_params(artifact.model)
    metrics["macs"] = count_macs(artifact.model, artifact.input_shape)
    metrics.update(_onnx.size_report(artifact.onnx))
    metrics["storage_bytes"] = artifact.storage_bytes if artifact.storage_bytes is not None else metrics["bytes"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(artifact.onnx)
        for i, b in enumerate(latency_batches):
            ms = OnnxRuntimeLatency(batch_size=b, repeats=repeats).measure(path, artifact.input_shape)
            metrics[f"latency_ms_b{b}"] = ms
            if i == 0:
                metrics["latency_ms"] = ms
    return metrics
