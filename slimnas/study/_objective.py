"""One trial: sample a candidate, build, train with early stopping, measure, record."""

from __future__ import annotations

import dataclasses
import math
import time

import optuna
import torch

from slimnas.config import OBJECTIVES, RunConfig
from slimnas.data import DataSplits
from slimnas.export import export_onnx
from slimnas.measure import RUNTIMES, count_macs, count_params
from slimnas.models import build_model
from slimnas.spaces import Candidate
from slimnas.strategies import OptunaReporter, ParetoHalvingStopper
from slimnas.study._artifacts import RunFolder
from slimnas.study._compressed import (
    cached_parent,
    compress_parent,
    mac_limits,
    pruned_costs,
    retrain_steps,
    write_artifact,
)
from slimnas.study._progress import SearchProgress
from slimnas.training import evaluate, fit

STATIC_METRICS = ("params", "macs")  # known before training


def record_constraints(trial: optuna.Trial, config: RunConfig, metrics: dict) -> None:
    """One Optuna constraint per budget, <= 0 when met; constrained samplers (TPE, NSGA-II, GP)
    read them from the trial. Optuna takes each once, so this runs when all metrics are in."""
    values = [b.violation(metrics) if b.key in metrics else 0.0 for b in config.budget]
    for b, v in zip(config.budget, values, strict=True):
        trial.set_constraint(str(b), float(v))
    trial.set_user_attr("constraints", values)


def objective_values(config: RunConfig, metrics: dict) -> list[float]:
    values = []
    for name in config.objectives:
        v = metrics[OBJECTIVES[name].key]
        values.append(v if math.isfinite(v) else math.inf)
    return values


class TrialObjective:
    """The callable handed to ``study.optimize``: evaluates one candidate honestly."""

    def __init__(self, config: RunConfig, splits: DataSplits, run: RunFolder, progress: SearchProgress,
                 device: torch.device) -> None:
        self.config, self.splits, self.run, self.progress, self.device = config, splits, run, progress, device
        cost_keys = {OBJECTIVES[o].key for o in config.objectives} | {b.key for b in config.budget}
        if "fitness" in config.objectives:
            cost_keys.add(config.fitness.cost)
        self.need_latency = "latency_ms" in cost_keys
        #: the running trial's result is computed and being recorded (a Ctrl-C now waits for it)
        self.recording = False

    def sample(self, trial: optuna.Trial) -> Candidate:
        cand = self.config.space.sample(trial, tie_layers=self.config.strategy.name == "grid",
                                        input_shape=self.splits.input_shape, n_classes=self.splits.n_classes)
        if self.config.epochs is not None:
            cand = dataclasses.replace(cand, train=dataclasses.replace(cand.train, epochs=self.config.epochs))
        return cand

    def __call__(self, trial: optuna.Trial) -> list[float]:
        self.recording = False
        t0 = time.perf_counter()
        cand = self.sample(trial)
        self.run.write_candidate(trial.number, cand)
        trial.set_user_attr("candidate", cand.to_dict())
        shape, n_classes = self.splits.input_shape, self.splits.n_classes
        torch.manual_seed(self.config.seed * 100_003 + trial.number)
        model = build_model(cand.arch, shape, n_classes)
        metrics: dict = {"params": count_params(model), "macs": count_macs(model, shape)}
        trial.set_user_attr("costs", dict(metrics))
        if cand.compression is not None:
            fits = self._reachable(metrics)
        else:
            fits = all(b.is_met(metrics) for b in self.config.budget if b.key in STATIC_METRICS)
        worth_training = fits or not self.config.skip_infeasible
        if cand.compression is not None and worth_training:
            return self._compressed_trial(trial, cand, model, t0)
        state = "complete"
        try:
            if worth_training:
                self._train(trial, model, cand)
                metrics["trained"] = True
            else:  # over a params/MACs budget (or beyond keep_macs' reach): measured honestly, not trained
                metrics["trained"] = False
                state = "skipped"
        except optuna.TrialPruned:
            metrics["trained"] = True
            self._record(trial, model, metrics, "pruned", t0)
            raise
        self._record(trial, model, metrics, state, t0)
        return objective_values(self.config, metrics)

    def _reachable(self, costs: dict) -> bool:
        """Whether compression within ``space.compression.keep_macs`` can bring an architecture
        of these costs under the MAC budget (a parent 10x over a budget with ``keep_macs`` from
        0.3 is not trained: the space says the search may shrink it 3.3x at most)."""
        limits = mac_limits(self.config.budget)
        return not limits or costs["macs"] <= min(limits) * self.config.space.compression.max_shrink()

    def _compressed_trial(self, trial: optuna.Trial, cand: Candidate, model: torch.nn.Module, t0: float) -> list[float]:
        """Train (or reuse) the parent, compress it as the candidate's policy says, measure the
        artifact. The parent is trained in full (no early stopping: siblings reuse it); the
        short ranking fine-tune stops early by the study's rule (``strategy.pruner``)."""
        cfg, splits = self.config, self.splits
        parent, reused = cached_parent(self.run.root / "parents", cand, model,
                                       lambda m: self._train(trial, m, cand, early_stopping=False))
        parent_metrics = {"parent_val_accuracy": evaluate(parent, splits.x_val, splits.y_val)["accuracy"],
                          "parent_params": count_params(parent), "parent_macs": count_macs(parent, splits.input_shape),
                          "parent_reused": reused}
        epochs = cfg.space.compression.value("finetune_epochs")
        costs: dict = {}

        def stoppers(policy):  # the compressed structure's costs rank it among its peers
            if not self._stops_early():
                return []
            costs.update(pruned_costs(parent, policy, splits.input_shape))
            trial.set_user_attr("costs", dict(costs))
            return self._stoppers(trial, epochs * max(1, retrain_steps(policy)))

        try:
            artifact, metrics, decisions = compress_parent(
                parent, cand.compression, splits, budget=cfg.budget, epochs=epochs,
                seed=cfg.seed * 100_003 + trial.number, device=str(self.device),
                latency_batch=cfg.measure.latency_batch, latency_repeats=cfg.measure.latency_repeats,
                use_full_budget="macs" not in cfg.objectives, keep=cand.keep_macs, stoppers=stoppers,
            )
        except optuna.TrialPruned:
            metrics = {**parent_metrics, **costs, "trained": True, "curve": trial.user_attrs.get("curve", [])}
            self.run.write_metrics(trial.number, {**metrics, "state": "pruned"})
            self.progress.end_trial(trial.number, "pruned", metrics, round(time.perf_counter() - t0, 3))
            raise
        metrics.update(parent_metrics, trained=True)
        write_artifact(self.run.trial_dir(trial.number), artifact, decisions)
        trial.set_user_attr("policy", artifact.policy.to_dict())
        self._finish_metrics(trial, metrics, "complete", t0)
        return objective_values(self.config, metrics)

    def _record(self, trial: optuna.Trial, model: torch.nn.Module, metrics: dict, state: str, t0: float) -> None:
        """Measure the final model and write its metrics, weights and ONNX file."""
        model.cpu().eval()
        val = evaluate(model, self.splits.x_val, self.splits.y_val)
        metrics.update(val_accuracy=val["accuracy"], val_loss=val["loss"])
        metrics.update(self._measure_artifact(trial.number, model))
        self.run.write_weights(trial.number, model)
        self._finish_metrics(trial, metrics, state, t0)

    def _finish_metrics(self, trial: optuna.Trial, metrics: dict, state: str, t0: float) -> None:
        self.recording = True
        if "fitness" in self.config.objectives:  # f = loss + lambda * cost
            fit_cfg = self.config.fitness
            metrics["fitness"] = metrics["val_loss"] + fit_cfg.weight * metrics[fit_cfg.cost]
        metrics["seconds"] = round(time.perf_counter() - t0, 3)
        trial.set_user_attr("metrics", metrics)
        record_constraints(trial, self.config, metrics)
        self.run.write_metrics(trial.number, {**metrics, "state": state})
        self.progress.end_trial(trial.number, state, metrics, metrics["seconds"])

    def _train(self, trial: optuna.Trial, model: torch.nn.Module, cand: Candidate, *, early_stopping: bool = True) -> None:
        callbacks = [self.progress.epoch_callback()]
        if early_stopping:
            callbacks += self._stoppers(trial, cand.train.epochs)
        self.progress.start_trial(trial.number, cand.train.epochs)
        fit(model, self.splits.x_train, self.splits.y_train, cand.train, x_val=self.splits.x_val,
            y_val=self.splits.y_val, device=self.device, seed=self.config.seed * 100_003 + trial.number,
            callbacks=callbacks)

    def _rule(self) -> str:
        """The early-stopping rule: ``strategy.pruner``, Hyperband for BOHB."""
        cfg = self.config
        return "hyperband" if cfg.strategy.name == "bohb" else cfg.strategy.pruner

    def _stops_early(self) -> bool:
        """Whether a rule is set that can stop this study's trials."""
        objectives = self.config.objectives
        return self._rule() != "none" and (len(objectives) > 1 or objectives[0] in ("accuracy", "loss", "fitness"))

    def _stoppers(self, trial: optuna.Trial, max_epochs: int) -> list:
        """Early stopping: Pareto-rank halving for several objectives, Optuna's pruner for one."""
        cfg = self.config
        if len(cfg.objectives) > 1:
            rule = self._rule()
            if rule == "none":
                return []
            costs = {k: trial.user_attrs["costs"][k] for k in STATIC_METRICS}
            return [ParetoHalvingStopper(trial, costs, rule=rule, max_epochs=max_epochs)]
        key = cfg.objectives[0]
        if key not in ("accuracy", "loss", "fitness"):
            return []
        cost = trial.user_attrs["costs"].get(cfg.fitness.cost, 0.0)
        value_fn = {
            "accuracy": lambda m: m["val_accuracy"],
            "loss": lambda m: m["val_loss"],
            "fitness": lambda m: m["val_loss"] + cfg.fitness.weight * cost,
        }[key]
        return [OptunaReporter(trial, value_fn)]

    def _measure_artifact(self, number: int, model: torch.nn.Module) -> dict:
        """Bytes of the exported ONNX file (verified against eager) and, if asked, its latency."""
        shape = self.splits.input_shape
        path = export_onnx(model, self.run.onnx_path(number), shape, verify=True, atol=1e-3)
        out = {"bytes": path.stat().st_size}
        if self.need_latency:
            m = self.config.measure
            runtime = RUNTIMES.get(m.runtime)(batch_size=m.latency_batch, repeats=m.latency_repeats, threads=m.threads)
            out["latency_ms"] = runtime.measure(path if m.runtime == "onnxruntime" else model, shape)
        return out
