"""How a search trial makes the artifact it is measured by: trained from scratch, a trained
parent compressed as the candidate's policy says, or a strategy's weights fine-tuned (and
compressed as the strategy says). Whatever made it, :meth:`SearchObjective.record` measures it
with :func:`~slimnas.measure.evaluate` and writes it."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import optuna
import torch

from slimnas.compress import (
    COMPRESSORS,
    apply_policy,
    list_compressors,
    measure_artifact,
    prune_ratios,
)
from slimnas.compress._allocate import fit_to_macs, mac_limits
from slimnas.compress._apply import (
    compress_and_measure,
    layer_decisions,
    pruned_costs,
    retrain_steps,
)
from slimnas.compress._hardware import MacRounding, choose_mac_rounding
from slimnas.compress._quality import Quality, model_quality
from slimnas.data._tasks import per_token
from slimnas.export import export_onnx
from slimnas.measure import Artifact
from slimnas.measure._profile import profile_precision
from slimnas.spaces import CompressionPolicy, TrainSpec, get_family
from slimnas.spaces._spec import Candidate
from slimnas.strategies import WarmStart
from slimnas.study._events import EpochReporter
from slimnas.study._joint import cached_parent
from slimnas.training import Callback, fit


@dataclass
class Made:
    """A trial's artifact, with the per-layer decisions of a compressed one (``None``: not
    compressed) and, from a warm start, its accuracy on more held-out folds."""

    artifact: Artifact
    decisions: list[dict] | None = None
    folds: list[float] | None = None


def sample_candidate(obj, trial: optuna.Trial) -> Candidate:
    """The trial's candidate, with the config's epochs and the data's vocabulary (and head),
    which its compression genes are placed on."""
    vocab, task = getattr(obj.splits, "vocab_size", None), obj.splits.task

    def built(arch):
        if vocab and getattr(arch, "vocab_size", None) == 0:  # token ids: the data's vocabulary
            arch = dataclasses.replace(arch, vocab_size=vocab)
        if per_token(task):  # a prediction per position; a language model's sees only the past
            arch = get_family(arch.family).per_token(arch, "causal" if task.causal else "tokens")
        return arch

    cand = obj.plan.space.sample(trial, tie_layers=obj.config.strategy.name == "grid",
                                  input_shape=obj.splits.input_shape, n_classes=obj.splits.n_classes, adapt=built)
    if obj.config.epochs is not None:
        cand = dataclasses.replace(cand, train=dataclasses.replace(cand.train, epochs=obj.config.epochs))
    return cand


def train(obj, trial: optuna.Trial, model: torch.nn.Module, spec: TrainSpec, *, early_stopping: bool = True,
          augment: bool = True) -> None:
    """Train ``model`` with ``spec``, the trial's seed, its epochs reported, its time limit
    and (``early_stopping``) the study's rule that stops weak trials."""
    obj.phase = "training"
    callbacks: list[Callback] = [EpochReporter(obj.listener, trial.number), *obj.limits()]
    if early_stopping:
        callbacks += obj.stoppers(trial, spec.epochs)
    obj.listener.trial_started(trial.number, spec.epochs)
    fit(model, obj.splits.x_train, obj.splits.y_train, spec, x_val=obj.splits.x_val,
        y_val=obj.splits.y_val, device=obj.device, seed=obj.seed(trial), callbacks=callbacks,
        **({"augment": obj.splits.augment} if augment else {}),
        **({} if obj.splits.is_classification else {"task": obj.splits.task}))


def skip(obj, trial: optuna.Trial, metrics: dict) -> list[float]:
    """A candidate over a budget known before training: not trained, and nothing of it
    kept that could pass for a trained model (no weights, no ONNX file, no accuracy).
    It stays a complete trial in the study, so the samplers learn from its costs and
    constraints; it is marked skipped (the ``skipped`` user attribute, ``state: skipped``
    in its metrics.json) and its unmeasured objectives are the worst of their direction."""
    missed = [str(b) for b in obj.budget if b.key in metrics and not b.is_met(metrics)]
    metrics.update(trained=False, skipped="over the budget before training: " + (", ".join(missed) or
                                                                                   "beyond compression's reach"))
    trial.set_user_attr("skipped", True)
    obj.finish(trial, metrics, "skipped")
    return obj.values(metrics)


def worth_training(obj, cand: Candidate, costs: dict, static: list[str]) -> bool:
    """Whether a candidate of these costs (known before training) is trained: it meets the
    budgets on them, or compression within ``space.compression.keep_macs`` can bring it under
    the MAC budget (a parent 10x over a budget with ``keep_macs`` from 0.3 is not trained: the
    space says the search may shrink it 3.3x at most); or the config trains every candidate."""
    if cand.compression is not None:
        limits = mac_limits(obj.budget)
        fits = not limits or costs["macs"] <= min(limits) * obj.plan.space.compression.max_shrink()
    else:
        fits = all(b.is_met(costs) for b in obj.budget if b.metric in static)
    return fits or not obj.config.skip_infeasible


def exported(obj, trial: optuna.Trial, model: torch.nn.Module) -> Artifact:
    """The trained model and its ONNX file in the trial's folder (verified against eager)."""
    obj.phase = "exporting and measuring the trained model"
    model.cpu().eval()
    shape = obj.splits.input_shape
    return Artifact(model, export_onnx(model, obj.run.onnx_path(trial.number), shape, verify=True, atol=1e-3), shape)


def trained_artifact(obj, trial: optuna.Trial, cand: Candidate, model: torch.nn.Module, metrics: dict) -> Made:
    """The candidate trained from scratch; one the study's rule stops early is recorded as
    pruned, with what it reached."""
    try:
        train(obj, trial, model, cand.train)
    except optuna.TrialPruned:
        metrics["trained"] = True
        obj.record(trial, Made(exported(obj, trial, model)), metrics, "pruned")
        raise
    metrics["trained"] = True
    return Made(exported(obj, trial, model))


def compressed_artifact(obj, trial: optuna.Trial, cand: Candidate, model: torch.nn.Module, metrics: dict) -> Made:
    """Train (or reuse) the parent, compress it as the candidate's policy says. The parent is
    trained in full (no early stopping: siblings reuse it); the short ranking fine-tune stops
    early by the study's rule."""
    splits, policy, costs = obj.splits, cand.compression, dict(trial.user_attrs["costs"])
    parent, reused = cached_parent(obj.run.root / "parents", cand, model,
                                   lambda m: train(obj, trial, m, cand.train, early_stopping=False))
    quality = Quality.of(splits.task)  # accuracy, or the task's primary metric (parent_val_r2, parent_val_perplexity)
    parent_metrics = {f"parent_{quality.key}": model_quality(splits, parent, quality=quality),
                      "parent_params": costs["params"], "parent_macs": costs["macs"], "parent_reused": reused}
    epochs = obj.plan.space.compression.value("finetune_epochs")
    use_full_budget = "macs" not in obj.objectives
    rounding = mac_rounding(obj, parent, policy, use_full_budget, cand.keep_macs, costs["macs"])
    pruned: dict = {}

    def stoppers(fitted: CompressionPolicy):  # the compressed structure's costs rank it among its peers
        if not obj.stops_early():
            return obj.limits()
        pruned.update(pruned_costs(parent, fitted, splits.input_shape))
        trial.set_user_attr("costs", dict(pruned))
        return [*obj.stoppers(trial, epochs * max(1, retrain_steps(fitted))), *obj.limits()]

    obj.phase = "compressing and fine-tuning"
    try:
        artifact, measured, decisions = compress_and_measure(
            parent, policy, splits, budget=obj.budget, epochs=epochs, seed=obj.seed(trial), device=str(obj.device),
            settings=obj.settings, use_full_budget=use_full_budget, keep=cand.keep_macs, stoppers=stoppers,
            rounding=rounding.rounding if rounding is not None else 1)
    except optuna.TrialPruned:
        done = {**parent_metrics, **pruned, "trained": True, "curve": trial.user_attrs.get("curve", [])}
        obj.run.write_metrics(trial.number, {**done, "state": "pruned"})
        obj.listener.trial_finished(trial.number, "pruned", done, round(time.perf_counter() - obj.t0, 3))
        raise
    metrics.clear()  # the costs before training were the parent's: the artifact's replace them
    metrics.update(measured, **parent_metrics, trained=True)
    if rounding is not None:
        metrics.update(mac_rounding=rounding.rounding, mac_rounding_reason=rounding.reason)
    return Made(artifact, decisions)


def mac_rounding(obj, parent: torch.nn.Module, policy: CompressionPolicy, use_full_budget: bool, keep: float,
                 parent_macs: int) -> MacRounding | None:
    """On a device profile with a latency table, the channel rounding that makes this
    candidate's allocation at its MAC target fastest on the device
    (:func:`~slimnas.compress.choose_mac_rounding`, predicted from the table: no timing per
    trial); ``None`` where the policy's ratios are not scaled to a MAC target."""
    predictor, profile, shape = obj.plan.predictor, obj.plan.profile, obj.splits.input_shape
    if predictor is None or profile is None:
        return None
    limits = mac_limits(obj.budget)
    if keep > 0:
        limits.append(keep * parent_macs)
    if not limits:
        return None
    fitted = fit_to_macs(parent, policy, shape, obj.budget, use_full_budget=use_full_budget, keep=keep)
    ratios = prune_ratios(fitted)
    if fitted is policy or not any(r > 0 for r in ratios.values()):
        return None
    return choose_mac_rounding(parent, shape, predictor, ratios, int(min(limits)), batch=profile.batch[0],
                               precision=profile_precision(profile))


def warm_artifact(obj, trial: optuna.Trial, warm: WarmStart, metrics: dict) -> Made:
    """A candidate the strategy has weights for (a supernet's sub-network): fine-tuned from
    them as ``warm.train`` says, then compressed by ``warm.policy`` (per-layer precision) when
    it has one."""
    model, splits = warm.model, obj.splits
    metrics.update(warm.info)
    if warm.train.epochs > 0:
        train(obj, trial, model, warm.train, early_stopping=False, augment=False)
    metrics["trained"] = True
    folds = None if warm.folds is None else warm.folds(seed=obj.seed(trial), device=obj.device)
    if warm.policy is None:
        return Made(exported(obj, trial, model), folds=folds)
    model.cpu().eval()
    artifact = apply_policy(model, warm.policy, splits, epochs=0, seed=obj.seed(trial))
    metrics.update(measure_artifact(artifact, splits, splits=("val",), settings=obj.settings,
                                    latency_batches=(obj.settings.latency_batch,)))
    steps = {step.compressor for step in artifact.policy.steps}
    absent = ({COMPRESSORS.get(c).layer_column for c in list_compressors() if c not in steps}
              - {COMPRESSORS.get(c).layer_column for c in steps})  # a column a present step shares
    decisions = [{k: v for k, v in row.items() if k not in absent} for row in layer_decisions(model, artifact)]
    return Made(artifact, decisions, folds)
