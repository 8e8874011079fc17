"""Compression in the trial loop: train (or reuse) the parent, apply the sampled policy, measure
the final artifact (accuracy in ONNX Runtime after quantization, real bytes, MACs, latency)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimnas.compress import (
    CompressedModel,
    CompressionPolicy,
    analyze_sensitivity,
    apply_policy,
    list_prunable_layers,
    measure_artifact,
    save_compressed,
    scale_to_macs,
)
from slimnas.compress._prune import executed_layers
from slimnas.config import Budget
from slimnas.data import DataSplits
from slimnas.measure import count_macs, count_params
from slimnas.spaces import Candidate, TrainSpec
from slimnas.study._artifacts import write_json
from slimnas.training import Callback, evaluate

SENSITIVITY_RATIOS = (0.25, 0.5, 0.75)
UNIFORM_SHAPE = 0.3  # ratio shape used when a policy prunes nothing but the MAC budget needs it


def parent_key(cand: Candidate) -> str:
    """Trials with the same architecture and recipe share one trained parent."""
    d = cand.to_dict()
    blob = json.dumps({"arch": d["arch"], "train": d["train"]}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cached_parent(folder: Path, cand: Candidate, model: nn.Module, train_fn) -> tuple[nn.Module, bool]:
    """Load the trained parent for ``cand`` from ``folder`` or train it with ``train_fn(model)``
    and store it; returns ``(model, reused)``."""
    path = folder / f"{parent_key(cand)}.pt"
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model.eval(), True
    train_fn(model)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # workers may train the same parent at once
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    tmp.replace(path)
    return model.cpu().eval(), False


def mac_limits(budget: Sequence[Budget]) -> list[float]:
    """The absolute upper limits on MACs among ``budget``."""
    return [b.limit for b in budget if b.metric == "macs" and b.op in ("<=", "<") and not b.relative]


def fit_to_macs(parent: nn.Module, policy: CompressionPolicy, input_shape: tuple[int, ...],
                budget: tuple[Budget, ...], *, use_full_budget: bool = False, keep: float = 0.0) -> CompressionPolicy:
    """Meet a MAC budget by construction: scale the policy's per-layer ratios (keeping their
    shape) until the pruned parent fits, where pruning alone can reach it. With
    ``use_full_budget`` (when MACs are a constraint but not an objective), ratios that prune
    more than the budget needs are scaled back too, so the sampled ratios set the shape and the
    budget sets the level. ``keep`` (0 = off) adds a target of that share of the parent's MACs,
    met the same way (both ways), so a search samples the level as a gene of its own."""
    limits = mac_limits(budget)
    if keep > 0:
        limits.append(keep * count_macs(parent, input_shape))
        use_full_budget = True
    if not limits:
        return policy
    target = int(min(limits))
    ratios = dict(policy.prune)
    if not any(r > 0 for r in ratios.values()):
        if count_macs(parent, input_shape) <= target:
            return policy
        ratios = {lay.name: UNIFORM_SHAPE for lay in list_prunable_layers(parent, input_shape)}
    elif pruned_macs(parent, ratios, input_shape) <= target and not use_full_budget:
        return policy
    scaled, macs = scale_to_macs(parent, ratios, input_shape, target)
    if macs <= target:
        scaled = fill_to_macs(parent, scaled, input_shape, target)
    return dataclasses.replace(policy, prune={k: v for k, v in scaled.items() if v > 0})


def channel_ratio(n_removed: int, width: int) -> float:
    """The ratio that removes exactly ``n_removed`` of ``width`` channels (torch-pruning keeps
    ``int(width * (1 - ratio))``; the 0.1 keeps float error from costing a channel)."""
    return 0.0 if n_removed <= 0 else (n_removed - 0.1) / width


def removed(ratio: float, width: int) -> int:
    return width - int(width * (1 - ratio)) if ratio > 0 else 0


def pruned_macs(parent: nn.Module, ratios: dict, input_shape) -> int:
    return count_macs(_pruned(parent, {k: v for k, v in ratios.items() if v > 0}, input_shape), input_shape)


def fill_to_macs(parent: nn.Module, ratios: dict[str, float], input_shape, target: int, *,
                 max_steps: int = 64) -> dict[str, float]:
    """Give channels back, one at a time, while the pruned model stays within ``target`` MACs:
    the scaled ratios move in coarse steps and usually leave part of the budget unused. The most
    pruned layer gets its channel back first."""
    widths = {lay.name: lay.out_channels for lay in list_prunable_layers(parent, input_shape)}
    ratios = {k: v for k, v in ratios.items() if k in widths}
    for _ in range(max_steps):
        grown = False
        for name in sorted((k for k, v in ratios.items() if v > 0), key=lambda k: -ratios[k]):
            trial = dict(ratios)
            trial[name] = channel_ratio(removed(ratios[name], widths[name]) - 1, widths[name])
            if pruned_macs(parent, trial, input_shape) <= target:
                ratios, grown = trial, True
                break
        if not grown:
            break
    return ratios


def allocate_by_sensitivity(parent: nn.Module, sens, input_shape, target: int, *, step: float = 0.05,
                            max_ratio: float = 0.9) -> dict[str, float]:
    """Per-layer ratios that reach ``target`` MACs where pruning hurts least: repeatedly prune
    a little more from the layer whose sensitivity curve (validation accuracy when pruned
    alone) shows the smallest drop per MAC saved (in the spirit of Li et al. 2017)."""
    widths = {lay.name: lay.out_channels for lay in list_prunable_layers(parent, input_shape)}
    curves = {k: v for k, v in sens.curves.items() if k in widths}

    def drop(name: str, r: float) -> float:
        xs = [0.0] + [p[0] for p in curves[name]]
        ys = [0.0] + [max(0.0, sens.baseline - p[1]) for p in curves[name]]
        return float(np.interp(r, xs, ys))

    ratios = dict.fromkeys(curves, 0.0)
    macs = pruned_macs(parent, ratios, input_shape)
    while macs > target:
        best = None
        for name, r in ratios.items():
            k = removed(r, widths[name]) + max(1, round(step * widths[name]))
            new_r = channel_ratio(k, widths[name])
            if new_r > max_ratio or k >= widths[name]:
                continue
            trial = {**ratios, name: new_r}
            new_macs = pruned_macs(parent, trial, input_shape)
            if new_macs >= macs:
                continue  # coupled to another layer's group, or no change
            # the drop at the new ratio (not the step's increment: past a layer's collapse the
            # curve flattens and increments would look free)
            cost = (drop(name, new_r) + 1e-3) / (macs - new_macs)
            if best is None or cost < best[0]:
                best = (cost, trial, new_macs)
        if best is None:
            break
        _, ratios, macs = best
    return fill_to_macs(parent, ratios, input_shape, target) if macs <= target else ratios


def _pruned(parent: nn.Module, ratios: dict, input_shape) -> nn.Module:
    if not ratios:
        return parent
    from slimnas.compress import StructuredPruner

    return StructuredPruner(ratio=0.0, layer_ratios=ratios).fit(parent, input_shape=input_shape).model_


def layer_decisions(parent: nn.Module, artifact: CompressedModel) -> list[dict]:
    """Per layer of the parent: width before/after, ratio asked, precision and rank kept."""
    shape = artifact.input_shape
    policy = artifact.policy
    after = dict(artifact.model.named_modules())
    prune, precision, rank = dict(policy.prune), dict(policy.precision), dict(policy.lowrank)
    rows = []
    for name, module in executed_layers(parent, shape):
        new = after.get(name)
        if isinstance(new, nn.Sequential) and len(new):  # factorised: the last factor carries the output
            new = new[-1]
        rows.append({
            "layer": name,
            "type": type(module).__name__,
            "width": _width(module),
            "kept": _width(new) if new is not None else None,
            "ratio": prune.get(name, 0.0),
            "precision": precision.get(name, policy.default_precision),
            "rank": rank.get(name, 1.0),
        })
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


def _width(m: nn.Module) -> int:
    if isinstance(m, nn.RNNBase):
        return m.hidden_size
    return int(getattr(m, "out_channels", getattr(m, "out_features", 0)))


def compress_parent(
    parent: nn.Module,
    policy: CompressionPolicy,
    splits: DataSplits,
    *,
    budget: tuple[Budget, ...],
    epochs: int,
    seed: int,
    device: str,
    latency_batch: int = 1,
    latency_repeats: int = 50,
    eval_splits: tuple[str, ...] = ("val",),
    train: TrainSpec | None = None,
    use_full_budget: bool = False,
    keep: float = 0.0,
    stoppers: Callable[[CompressionPolicy], Sequence[Callback]] | None = None,
) -> tuple[CompressedModel, dict, list[dict]]:
    """Apply ``policy`` (its MAC ratios fitted to the budget and to ``keep``, see
    :func:`fit_to_macs`) and measure the artifact. ``stoppers(fitted_policy)`` gives the
    early-stopping callbacks of the fine-tune (their epochs count on across retraining steps)."""
    policy = fit_to_macs(parent, policy, splits.input_shape, budget, use_full_budget=use_full_budget, keep=keep)
    callbacks = [RunningEpochs(list(stoppers(policy)))] if stoppers is not None else []
    artifact = apply_policy(parent, policy, splits, teacher=parent, epochs=epochs, seed=seed, device=device,
                            train=train, callbacks=callbacks)
    metrics = measure_artifact(artifact, splits, splits=eval_splits, latency_batches=(latency_batch,),
                               repeats=latency_repeats)
    metrics["val_loss"] = evaluate(artifact.model.cpu(), splits.x_val, splits.y_val)["loss"]
    return artifact, metrics, layer_decisions(parent, artifact)


class RunningEpochs(Callback):
    """Numbers fine-tune epochs on across a policy's retraining steps (prune, low rank,
    cluster each restart at epoch 1), so an early-stopping rule sees one curve."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks, self.epoch = callbacks, 0

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.epoch += 1
        for cb in self.callbacks:
            cb.on_epoch_end(self.epoch, metrics)


def retrain_steps(policy: CompressionPolicy) -> int:
    """How many retraining steps ``apply_policy`` runs for ``policy``."""
    return sum((any(r > 0 for _, r in policy.prune), bool(policy.lowrank), bool(policy.cluster)))


def pruned_costs(parent: nn.Module, policy: CompressionPolicy, input_shape) -> dict[str, int]:
    """Parameters and MACs of ``parent`` pruned as ``policy`` says (before low rank)."""
    model = _pruned(parent, {k: v for k, v in policy.prune if v > 0}, input_shape)
    return {"params": count_params(model), "macs": count_macs(model, input_shape)}


def write_artifact(folder: Path, artifact: CompressedModel, decisions: list[dict], extra: dict | None = None) -> None:
    """``model.onnx`` (the measured file), ``policy.json`` (with per-layer decisions) and the
    compressed weights with their structure."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(artifact.onnx)
    write_json(folder / "policy.json", {"policy": artifact.policy.to_dict(), "layers": decisions, **(extra or {})})
    save_compressed(artifact.model, folder)


def final_finetune(cfg, run, trial, splits: DataSplits) -> dict:
    """The full fine-tune a front member gets: the same policy on the same parent, retrained for
    ``final_epochs`` instead of the short ranking fine-tune; the trial's files are replaced and
    the search-time figures kept as ``search_*``."""
    from slimnas.models import build_model

    cand = Candidate.from_dict(trial.user_attrs["candidate"])
    comp = cfg.space.compression
    stored = run.read_metrics(trial.number)
    epochs = comp.value("final_epochs") if comp is not None else 0
    if epochs <= (comp.value("finetune_epochs") if comp is not None else 0):
        return {**stored, "final": True}
    parent = build_model(cand.arch, splits.input_shape, splits.n_classes)
    parent, _ = cached_parent(run.root / "parents", cand, parent, lambda m: None)
    policy = CompressionPolicy.from_dict(trial.user_attrs["policy"])  # already fitted to the budget
    artifact, metrics, decisions = compress_parent(
        parent, policy, splits, budget=(), epochs=epochs, seed=cfg.seed * 100_003 + trial.number,
        device="cpu", latency_batch=cfg.measure.latency_batch, latency_repeats=cfg.measure.latency_repeats,
    )
    sens = analyze_sensitivity(parent, splits, ratios=SENSITIVITY_RATIOS)
    write_artifact(run.trial_dir(trial.number), artifact, attach_sensitivity(decisions, sens))
    out = {**stored, **metrics, "final": True, "final_epochs": epochs,
           "search_val_accuracy": stored.get("val_accuracy")}
    run.write_metrics(trial.number, out)
    return out
