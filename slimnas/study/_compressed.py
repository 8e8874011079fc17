"""Compression in the trial loop: train (or reuse) the parent, apply the sampled policy, measure
the final artifact (accuracy in ONNX Runtime after quantization, real bytes, MACs, latency)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

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
from slimnas.measure import count_macs
from slimnas.spaces import Candidate, TrainSpec
from slimnas.study._artifacts import write_json
from slimnas.training import evaluate

SENSITIVITY_RATIOS = (0.25, 0.5, 0.75)
UNIFORM_SHAPE = 0.3  # ratio shape used when a policy prunes nothing but the MAC budget needs it


def parent_key(cand: Candidate) -> str:
    """Trials with the same architecture and recipe share one trained parent."""
    blob = json.dumps({k: v for k, v in cand.to_dict().items() if k != "compression"}, sort_keys=True)
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
    tmp = path.with_suffix(".tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    tmp.replace(path)
    return model.cpu().eval(), False


def fit_to_macs(parent: nn.Module, policy: CompressionPolicy, input_shape: tuple[int, ...],
                budget: tuple[Budget, ...]) -> CompressionPolicy:
    """Meet a MAC budget by construction: scale the policy's per-layer ratios (keeping their
    shape) until the pruned parent fits, where pruning alone can reach it."""
    limits = [b.limit for b in budget if b.metric == "macs" and b.op in ("<=", "<") and not b.relative]
    if not limits:
        return policy
    target = int(min(limits))
    ratios = dict(policy.prune)
    if count_macs(_pruned(parent, ratios, input_shape), input_shape) <= target:
        return policy
    if not any(r > 0 for r in ratios.values()):
        ratios = {lay.name: UNIFORM_SHAPE for lay in list_prunable_layers(parent, input_shape)}
    scaled, _ = scale_to_macs(parent, ratios, input_shape, target)
    return dataclasses.replace(policy, prune={k: v for k, v in scaled.items() if v > 0})


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
) -> tuple[CompressedModel, dict, list[dict]]:
    """Apply ``policy`` (its MAC ratios fitted to the budget) and measure the artifact."""
    policy = fit_to_macs(parent, policy, splits.input_shape, budget)
    artifact = apply_policy(parent, policy, splits, teacher=parent, epochs=epochs, seed=seed, device=device,
                            train=train)
    metrics = measure_artifact(artifact, splits, splits=eval_splits, latency_batches=(latency_batch,),
                               repeats=latency_repeats)
    metrics["val_loss"] = evaluate(artifact.model.cpu(), splits.x_val, splits.y_val)["loss"]
    return artifact, metrics, layer_decisions(parent, artifact)


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
