"""Joint architecture x compression search: trained parents shared by the trials that compress
them, the full fine-tune a front member gets, and the front chosen after it."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from slimnas.compress import CompressedModel, CompressionPolicy, analyze_sensitivity
from slimnas.compress._apply import attach_sensitivity, compress_and_measure
from slimnas.compress._quality import Quality
from slimnas.data import DataSplits
from slimnas.export._structure import save_compressed
from slimnas.measure._metric import signed
from slimnas.models import build_model
from slimnas.spaces._spec import Candidate
from slimnas.strategies._early_stopping import nondominated_rank
from slimnas.study._artifacts import RunFolder, write_json
from slimnas.study._pareto import feasible, pareto_front

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
    artifact, metrics, decisions = compress_and_measure(
        parent, policy, splits, budget=(), epochs=epochs, seed=plan.config.seed * 100_003 + trial.number,
        device=device, settings=plan.measure_settings, names=plan.tracked,
    )
    sens = analyze_sensitivity(parent, splits, ratios=SENSITIVITY_RATIOS)
    write_artifact(run.trial_dir(trial.number), artifact, attach_sensitivity(decisions, sens))
    key = Quality.of(splits.task).key  # val_accuracy, or the task's primary metric (val_r2, val_perplexity)
    out = {**stored, **metrics, "final": True, "final_epochs": epochs, f"search_{key}": stored.get(key)}
    run.write_metrics(trial.number, out)
    return out


def rerank_front(plan, run: RunFolder, trials: list[FrozenTrial], splits: DataSplits,
                 note: Callable[[str], None] = lambda text: None) -> list[FrozenTrial] | None:
    """The front of a joint search chosen after the full fine-tune: the feasible candidates in
    the first ``rerank_layers`` Pareto layers by the short ranking fine-tune are fine-tuned for
    ``final_epochs`` (:func:`final_finetune`, kept in their metrics, so a resumed run does not
    repeat it), and the front is chosen among them by their figures after it, on validation
    data. The short fine-tune under-rates heavily compressed large parents, which recover the
    most in a longer one, so the most accurate models of the search would be lost without it.
    ``None`` when it does not apply (no compression, ``rerank_layers: 0``, a final fine-tune no
    longer than the short one, or nothing feasible)."""
    comp = plan.space.compression
    if comp is None:
        return None
    layers = comp.value("rerank_layers")
    if layers <= 0 or comp.value("final_epochs") <= comp.value("finetune_epochs"):
        return None
    ok = [t for t in trials if t.state == TrialState.COMPLETE and "metrics" in t.user_attrs
          and "policy" in t.user_attrs and feasible(t.user_attrs["metrics"], plan.budget)]
    if not ok:
        return None
    points = np.array([signed(t.user_attrs["metrics"], plan.objectives) for t in ok])
    rank = nondominated_rank(points)
    order = sorted((int(r), tuple(p), i) for i, (r, p) in enumerate(zip(rank, points, strict=True)) if r < layers)
    chosen = [ok[i] for _, _, i in order]  # layer by layer, by the first objective
    todo = sum("final" not in run.read_metrics(t.number) for t in chosen)
    if todo:
        note(f"full {comp.value('final_epochs')}-epoch fine-tune of {todo} candidate(s) of the first {layers} Pareto "
             "layer(s), to choose the front on validation data after it")
    refined: dict[int, dict] = {}
    for t in chosen:
        stored = run.read_metrics(t.number)
        if "final" not in stored:
            stored = final_finetune(plan, run, t, splits)
        recorded = t.user_attrs["metrics"]
        refined[t.number] = {**recorded, **{k: v for k, v in stored.items() if k in recorded}}
    front, _ = pareto_front(chosen, plan.objectives, plan.budget, metrics=lambda t: refined[t.number])
    return front or None
