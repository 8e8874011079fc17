"""The one place a policy is applied: each step's compressor, in the policy's order, with the
policy's retraining after every step that changes weights; the artifact it leaves (an eager
model and the ONNX file that is deployed), and that artifact's measurements."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch import nn

from slimnas.compress._allocate import fit_to_macs, prune_ratios, pruned_model
from slimnas.compress._distill import FINETUNE_SPEC, Retrain
from slimnas.compress._prune import executed_layers
from slimnas.compress._prune_layers import split_view
from slimnas.compress._quality import Quality, test_scores
from slimnas.compress._quantize import quantize_model
from slimnas.config import MeasureSettings
from slimnas.data import DataSplits
from slimnas.export._proto import size_report
from slimnas.measure import Artifact, count_macs, count_params, evaluate_artifact
from slimnas.spaces import TrainSpec
from slimnas.spaces._policy import COMPRESSORS, CompressionPolicy, list_compressors
from slimnas.training import Callback, Listener, report_phase
from slimnas.training._events import PhaseEpochs

N_CALIBRATION = 512  # training samples that calibrate static int8 when no step quantizes


@dataclass
class CompressedModel(Artifact):
    """The artifact a policy produces: the eager model, its ONNX file (at the policy's
    precision), and what each step did."""

    policy: CompressionPolicy = field(default_factory=CompressionPolicy)
    report: dict = field(default_factory=dict)
    #: step -> {layer: why} for what a step was asked to change and left alone
    not_done: dict[str, dict[str, str]] = field(default_factory=dict)
    #: steps that changed nothing at all
    did_nothing: list[str] = field(default_factory=list)


def make_retrain(policy: CompressionPolicy, *, epochs: int, train: TrainSpec | None = None, seed: int = 0,
                 device: str = "cpu", callbacks: Sequence[Callback] = (), patience: int | None = None,
                 keep_best: bool = False) -> Retrain:
    """The retraining every weight-changing step of ``policy`` gets (with ``patience``,
    ``epochs`` is a cap; ``keep_best``: the best epoch's weights are kept: see :class:`Retrain`)."""
    train = train or FINETUNE_SPEC
    if policy.finetune_lr > 0:
        train = dataclasses.replace(train, lr=policy.finetune_lr)
    return Retrain(epochs=epochs, train=train, distill=policy.distill, temperature=policy.temperature,
                   alpha=policy.alpha, seed=seed, device=device, callbacks=tuple(callbacks), patience=patience,
                   keep_best=keep_best)


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
    patience: int | None = None,
    listener: Listener | None = None,
    phase: str = "compress",
    label: str = "compress",
    keep_best: bool = False,
) -> CompressedModel:
    """Compress a copy of ``model`` as ``policy`` says, step by step, and write its ONNX file.

    ``epochs`` is the retraining length after each step that changes weights (0 for none; with
    ``patience``, a cap: each step retrains until validation accuracy stops improving);
    ``keep_best``: each step keeps its best retraining epoch by validation accuracy, not its last;
    ``teacher`` (for distillation) defaults to ``model``; ``callbacks`` run after every
    retraining epoch (a callback that raises, such as a search's early stopping, ends it). A
    policy without a file-writing step (quantization) is exported at fp32. With a
    ``listener``, each step that runs is a ``phase`` (labelled ``"<label>: <step>"``) with its
    retraining epochs.

    Example:
        >>> from slimnas.data import load_dataset
        >>> from slimnas.models import mnist1d_paper_cnn
        >>> policy = CompressionPolicy.of(prune={"ratio": 0.0, "layer_ratios": {"0": 0.5}})
        >>> art = apply_policy(mnist1d_paper_cnn(), policy, load_dataset("mnist1d"), epochs=0)
        >>> art.model[0].out_channels
        12
    """
    teacher = model if teacher is None else teacher
    reporter = [PhaseEpochs(listener, phase, epochs)] if listener is not None else []
    retrain = make_retrain(policy, epochs=epochs, train=train, seed=seed, device=device,
                           callbacks=(*reporter, *callbacks), patience=patience, keep_best=keep_best)
    current, report, storage, onnx = copy.deepcopy(model).cpu().eval(), {}, None, None
    not_done, did_nothing = {}, []
    for step in policy.steps:
        compressor = step.build(retrain)
        if compressor.is_noop():
            continue
        trains = compressor.retrains and epochs > 0
        with report_phase(listener, phase, label=f"{label}: {step.compressor}", step=step.compressor,
                          epochs=epochs if trains else None, until_plateau=trains and patience is not None):
            compressor.fit(current, data, teacher=teacher)
        current, report[step.compressor] = compressor.model_, getattr(compressor, "report_", {})
        storage = compressor.storage_bytes_ if compressor.storage_bytes_ is not None else storage
        if compressor.writes_file:
            onnx = compressor.onnx_
        if compressor.not_done():
            not_done[step.compressor] = compressor.not_done()
        if compressor.did_nothing():
            did_nothing.append(step.compressor)
    if onnx is None:
        onnx = quantize_model(current, data.input_shape, mode="fp32", calibration=data.x_train[:N_CALIBRATION])
    return CompressedModel(current, onnx, data.input_shape, policy, storage_bytes=storage, report=report,
                           not_done=not_done, did_nothing=did_nothing)


def retrain_steps(policy: CompressionPolicy) -> int:
    """How many retraining steps :func:`apply_policy` runs for ``policy``."""
    return sum(1 for s in policy.steps if COMPRESSORS.get(s.compressor).retrains and not s.build().is_noop())


#: what :func:`measure_artifact` measures of every artifact, by the metrics' registered rules
ARTIFACT_METRICS = ("params", "macs", "bytes", "bits")


def measure_artifact(
    artifact: Artifact,
    data: DataSplits,
    *,
    splits: Sequence[str] = ("val", "test"),
    latency_batches: Sequence[int] = (1, 64),
    settings: MeasureSettings | None = None,
    names: Sequence[str] = (),
    **changes,
) -> dict[str, float]:
    """Metrics of the artifact itself, each by its registered rule (:func:`~slimnas.measure.evaluate`):
    ``accuracy`` (validation, of its ONNX file in ONNX Runtime) where ``splits`` has ``val``,
    ``params``, ``macs``, ``bytes``, ``bits`` (per weight, of the file) and every metric of ``names``; beside them ``test_accuracy``
    (of the file, where ``splits`` has ``test``), the file's ``weight_bytes`` and
    ``overhead_bytes``, ``storage_bytes`` (clustered encoding, else the file), and ``latency_ms``
    at each batch of ``latency_batches`` as ``latency_ms_b<batch>`` (``latency_ms`` is the first)
    on the runtime ``settings`` name (ONNX runtimes time the file, the others the model).
    ``changes``: settings that differ from ``settings`` (``latency_repeats=5``; default 200 repeats)."""
    settings = MeasureSettings.of(settings if settings is not None else MeasureSettings(latency_repeats=200), **changes)
    quality = Quality.of(getattr(data, "task", None))  # accuracy, or the task's primary metric (all its metrics)
    first = [*([quality.metric] if "val" in splits else []), *ARTIFACT_METRICS, *names]
    if latency_batches:
        settings = MeasureSettings.of(settings, latency_batch=latency_batches[0])
        first.append("latency_ms")
    metrics = evaluate_artifact(artifact, settings, first, data)
    if "test" in splits:
        metrics.update(test_scores(data, artifact.onnx))
    sizes = size_report(artifact.onnx)
    metrics.update(weight_bytes=sizes["weight_bytes"], overhead_bytes=sizes["overhead_bytes"])
    metrics["storage_bytes"] = artifact.storage_bytes if artifact.storage_bytes is not None else metrics["bytes"]
    for b in latency_batches:
        metrics[f"latency_ms_b{b}"] = (metrics["latency_ms"] if b == latency_batches[0] else
                                       evaluate_artifact(artifact, MeasureSettings.of(settings, latency_batch=b), ["latency_ms"])[
                                           "latency_ms"])
    return metrics


def _width(m: nn.Module) -> int:
    if isinstance(m, nn.RNNBase):
        return m.hidden_size
    return int(getattr(m, "out_channels", getattr(m, "out_features", 0)))


def layer_decisions(parent: nn.Module, artifact: CompressedModel) -> list[dict]:
    """Per layer of the parent: width before and after, and each registered compressor's
    per-layer setting (``ratio``, ``rank``, ``precision``; the off value where a step is absent)."""
    shape = artifact.input_shape
    after = dict(artifact.model.named_modules())
    layers = executed_layers(split_view(parent), shape)  # names as pruning reports them
    names = [n for n, _ in layers]
    columns: dict[str, dict] = {}
    for name in list_compressors():  # in the order a policy runs them: a later step's value wins
        cls = COMPRESSORS.get(name)
        if cls.layer_column is None:
            continue
        # several compressors may share a column (int4, palette and quantize all set ``precision``):
        # an absent one leaves the others' values as they are
        column = columns.setdefault(cls.layer_column, dict.fromkeys(names, cls.layer_off))
        step = artifact.policy.step(name)
        if step is not None:
            column.update(step.build().layer_values(names))
    rows = []
    for name, module in layers:
        new = after.get(name)
        if isinstance(new, nn.Sequential) and len(new):  # factorised: the last factor carries the output
            new = new[-1]
        row = {"layer": name, "type": type(module).__name__, "width": _width(module),
               "kept": _width(new) if new is not None else None}
        row.update({col: values[name] for col, values in columns.items()})
        rows.append(row)
    return rows


def attach_sensitivity(decisions: list[dict], sens) -> list[dict]:
    """Add each layer's validation accuracy when pruned alone (no retraining) at a few ratios:
    the evidence for why a layer was pruned hard or left alone."""
    out = []
    for row in decisions:
        curve = sens.curves.get(row["layer"])
        extra = {"sensitivity": {f"{r:g}": round(acc, 4) for r, acc, _ in curve}} if curve else {}
        out.append({**row, **extra})
    return out


class RunningEpochs(Callback):
    """Numbers fine-tune epochs on across a policy's retraining steps (prune, low rank,
    cluster each restart at epoch 1), so an early-stopping rule sees one curve."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks, self.epoch = callbacks, 0

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epoch += 1
        for cb in self.callbacks:
            cb.on_epoch_end(self.epoch, metrics)


def compress_and_measure(
    parent: nn.Module,
    policy: CompressionPolicy,
    splits: DataSplits,
    *,
    budget: Sequence = (),
    epochs: int,
    seed: int,
    device: str,
    settings: MeasureSettings | None = None,
    names: Sequence[str] = (),
    eval_splits: tuple[str, ...] = ("val",),
    train: TrainSpec | None = None,
    use_full_budget: bool = False,
    keep: float = 0.0,
    rounding: int = 1,
    stoppers: Callable[[CompressionPolicy], Sequence[Callback]] | None = None,
    listener: Listener | None = None,
    phase: str = "compress",
    label: str = "compress",
    keep_best: bool = False,
    refit: Callable[[CompressionPolicy], CompressionPolicy] | None = None,
    **changes,
) -> tuple[CompressedModel, dict, list[dict]]:
    """Apply ``policy`` (its MAC ratios fitted to the budget and to ``keep``, see
    :func:`~slimnas.compress.fit_to_macs`; ``rounding`` > 1: the scaled layers keep multiples of
    it) and measure the artifact (:func:`measure_artifact`: latency at ``settings``' batch and runtime,
``names`` beside its own metrics; ``changes``: settings that differ). ``stoppers(fitted_policy)``
    gives the early-stopping callbacks of the fine-tune (their epochs count on across retraining
    steps). With a ``listener``, the steps are reported as :func:`apply_policy` says, the
    measurement as a ``measure`` phase; ``keep_best``: see :func:`apply_policy`; ``refit``: applied to
    the fitted policy (per-layer precisions allocated for its pruned sizes). Returns ``(artifact, metrics, per-layer decisions)``."""
    policy = fit_to_macs(parent, policy, splits.input_shape, budget, use_full_budget=use_full_budget, keep=keep,
                         rounding=rounding)
    if refit is not None:
        policy = refit(policy)
    callbacks = [RunningEpochs(list(stoppers(policy)))] if stoppers is not None else []
    artifact = apply_policy(parent, policy, splits, teacher=parent, epochs=epochs, seed=seed, device=device,
                            train=train, callbacks=callbacks, listener=listener, phase=phase, label=label,
                            keep_best=keep_best)
    with report_phase(listener, "measure", label="measuring the compressed model in ONNX Runtime") as found:
        settings = MeasureSettings.of(settings, **changes)
        artifact.model.cpu()
        metrics = measure_artifact(artifact, splits, splits=eval_splits, latency_batches=(settings.latency_batch,),
                                   settings=settings, names=[*_loss(splits), *names])
        key = Quality.of(getattr(splits, "task", None)).key
        found.update({key: metrics[key]}, macs=metrics["macs"], bytes=metrics["bytes"])
    return artifact, metrics, layer_decisions(parent, artifact)


def _loss(splits) -> list[str]:
    """``['loss']`` where the data's task reports its loss on held-out data (a detector's losses
    need its training mode and the targets: no ``val_loss``)."""
    task = getattr(splits, "task", None)
    return ["loss"] if task is None or "loss" in task.metric_names() or task.name == "classification" else []


def pruned_costs(parent: nn.Module, policy: CompressionPolicy, input_shape) -> dict[str, int]:
    """Parameters and MACs of ``parent`` pruned as ``policy`` says (before low rank)."""
    model = pruned_model(parent, prune_ratios(policy), input_shape)
    return {"params": count_params(model), "macs": count_macs(model, input_shape)}
