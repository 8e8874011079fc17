"""Joint architecture x compression search: trained parents shared by the trials that compress
them, and the full fine-tune a front member gets."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from slimnas.compress import (
    CompressedModel,
    CompressionPolicy,
    analyze_sensitivity,
    attach_sensitivity,
    compress_and_measure,
)
from slimnas.data import DataSplits
from slimnas.export import save_compressed
from slimnas.models import build_model
from slimnas.spaces import Candidate
from slimnas.study._artifacts import RunFolder, write_json

SENSITIVITY_RATIOS = (0.25, 0.5, 0.75)


def parent_key(cand: Candidate) -> str:
    """Trials with the same architecture and recipe share one trained parent."""
    d = cand.to_dict()
    blob = json.dumps({"arch": d["arch"], "train": d["train"]}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cached_parent(folder: Path, cand: Candidate, model: nn.Module,
                  train_fn: Callable[[nn.Module], None]) -> tuple[nn.Module, bool]:
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


def write_artifact(folder: Path, artifact: CompressedModel, decisions: list[dict], extra: dict | None = None) -> None:
    """``model.onnx`` (the measured file), ``policy.json`` (with per-layer decisions) and the
    compressed weights with their structure."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(artifact.onnx)
    write_json(folder / "policy.json", {"policy": artifact.policy.to_dict(), "layers": decisions, **(extra or {})})
    save_compressed(artifact.model, folder)


def final_finetune(plan, run: RunFolder, trial, splits: DataSplits, device: str = "cpu") -> dict:
    """The full fine-tune a front member gets: the same policy on the same parent, retrained for
    ``final_epochs`` instead of the short ranking fine-tune; the trial's files are replaced and
    the search-time figures kept as ``search_*``."""
    cand = Candidate.from_dict(trial.user_attrs["candidate"])
    comp = plan.space.compression
    stored = run.read_metrics(trial.number)
    epochs = comp.value("final_epochs") if comp is not None else 0
    if epochs <= (comp.value("finetune_epochs") if comp is not None else 0):
        return {**stored, "final": True}
    parent = build_model(cand.arch, splits.input_shape, splits.n_classes)
    parent, _ = cached_parent(run.root / "parents", cand, parent, lambda m: None)
    policy = CompressionPolicy.from_dict(trial.user_attrs["policy"])  # already fitted to the budget
    m = plan.config.measure
    artifact, metrics, decisions = compress_and_measure(
        parent, policy, splits, budget=(), epochs=epochs, seed=plan.config.seed * 100_003 + trial.number,
        device=device, latency_batch=m.latency_batch, latency_repeats=m.latency_repeats,
    )
    sens = analyze_sensitivity(parent, splits, ratios=SENSITIVITY_RATIOS)
    write_artifact(run.trial_dir(trial.number), artifact, attach_sensitivity(decisions, sens))
    out = {**stored, **metrics, "final": True, "final_epochs": epochs,
           "search_val_accuracy": stored.get("val_accuracy")}
    run.write_metrics(trial.number, out)
    return out
