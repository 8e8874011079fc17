"""``supernet``: a once-for-all supernet and an accuracy predictor make the search cheap (OFA: Cai
et al. 2020; APQ: Wang et al. 2020).

Before the trials (:meth:`SupernetStrategy.prepare`, once per run):

1. one supernet per family of the space (CNN, MLP) is trained once, with the sandwich rule and
   in-place distillation (:func:`slimnas.training.train_supernet`); its checkpoint lives in the
   run folder, and a resumed run loads it instead of training again;
2. sub-networks with random per-layer precision are measured with their inherited weights
   after batch-norm recalibration, on validation data (int8 simulated as ONNX Runtime computes
   it, checked against the real files on a few of them);
3. an accuracy predictor is fitted on those pairs (its rank correlation on pairs held out is
   reported);
4. a registered strategy (``evolution`` by default) searches sub-networks and per-layer
   precision, ranked by the predictor, the budget as constraints and costs measured exactly;
5. the candidates, spread across the predicted front, are stored in the study.

Then each trial takes the next candidate (:class:`SupernetSampler`): the plain model of the
family with its inherited weights is fine-tuned briefly, quantized as its precision says, and
exported and measured like any other trial, in the same study and front. Trials past the
candidates continue with the search strategy itself, which trains its candidates from scratch.
Without a prepared supernet (a study driven by other code) the sampler is that strategy alone.

Another task than classification (``data.task``: regression, multi-label, a user's task of one
output vector per sample) trains the supernet with its loss, measures every metric of the task on
the pairs (in the task's units) and predicts the first of its metrics among the objectives
(:func:`predicted_quality`), which the search ranks by that metric's direction. Detection
(the ``centernet`` family's supernet, heads kept whole) trains every sub-network on the detector's
own losses (the task has no distillation term) and predicts ``map50``, highest first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial

from slimnas.compress import CompressionPolicy
from slimnas.compress._fakequant import simulate_quantized
from slimnas.compress._quality import Quality, model_quality
from slimnas.config import precision_names
from slimnas.errors import ConfigError, SlimnasError
from slimnas.measure import get_metric, list_metrics
from slimnas.measure._metric import TASK_METRICS
from slimnas.models._elastic import ELASTIC
from slimnas.spaces import TRAINING_KEYS, TrainSpec, arch_from_dict, get_family
from slimnas.strategies._base import (
    BaseStrategy,
    PrepareContext,
    StrategyContext,
    WarmStart,
    get_strategy,
    register_strategy,
)
from slimnas.strategies._genes import in_distribution
from slimnas.strategies._predictor import PREDICTORS, AccuracyPredictor, held_out_scores
from slimnas.strategies._sequenced import position
from slimnas.strategies._subnets import (
    N_CALIBRATION,
    Encoder,
    Point,
    PointCosts,
    choose,
    inherited_model,
    int8_check,
    measure_pairs,
    measured_on_file,
    own_task,
    search_points,
    token_heads,
)
from slimnas.training import Callback, evaluate, fit
from slimnas.training._supernet import SCHEDULES, SupernetTraining, train_supernet

#: the study system attribute that holds the chosen candidates; the trial attribute of each plan
STUDY_KEY, PLAN_KEY = "slimnas:supernet", "slimnas:supernet-plan"
#: objectives the predictor cannot stand in for
DATA_METRICS = ("loss", "fitness")
#: the families whose supernet takes token ids and has a per-token head (text data, tokens, lm)
TOKEN_FAMILIES = ("cnn",)


def _is_int(v: Any, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


@dataclass(frozen=True)
class SupernetOptions:
    """``strategy.options`` of the ``supernet`` strategy (every key optional).

    Attributes:
        epochs, warmup_epochs, n_random, schedule, distill, kernel_transform: the supernet's
            training (see :class:`slimnas.training.SupernetTraining`; ``warmup_epochs``
            defaults to a sixth of ``epochs``).
        sample_in_budget: the random sub-networks of each training step are drawn inside the
            study's MAC budget (where it has one), where the search will look; the largest and
            smallest train as always.
        balance_depth: those in-budget draws (and the measured pairs) take each depth equally
            often, then the widths and kernels uniformly at that depth. A MAC budget otherwise
            keeps mostly the shallow sub-networks (deep ones fit only when narrow), so the deep,
            narrow ones train least and their inherited accuracy under-rates them.
        fixed: per family, the values of the genes the supernet does not make elastic
            (``{cnn: {stride: [1, 2, 2, 2, 1], dropout: 0.1}}``, ``{centernet: {blocks: [1, 2],
            head: 16}}``); see :mod:`slimnas.models` for the defaults.
        n_pairs: measured (sub-network, precision) -> accuracy pairs the predictor learns from.
        predictor: ``mlp`` (APQ's) or ``ridge``; ``holdout``: share of pairs that score it.
        precision: per-layer precisions searched (``[fp32]``: none). By default (``None``) fp32
            and int8 where an objective or a budget is measured on the exported file (``bytes``,
            latency), else fp32 alone: MACs and parameters do not change with the precision, so
            there an int8 layer could only cost accuracy, and the predictor would rank pairs on a
            gene no objective rewards.
        search: the registered strategy that searches the predictor-ranked space;
            ``search_trials`` its evaluations, ``population_size`` its population.
        n_candidates: the candidates spread across the predicted front that the first trials take.
        per_depth: the first candidates also hold the predicted most accurate sub-network of each
            depth the predicted front lacks (inherited weights under-rate deep, narrow
            sub-networks; a fine-tune recovers them).
        max_candidates: candidates stored in all: after the first ``n_candidates``, the rest of
            the predicted front (and the next layers), farthest from those taken first; trials
            past them go to the search strategy.
        finetune_epochs: each candidate's fine-tune; ``finetune_lr`` its learning rate as a
            share of the recipe's; ``finetune_warmup`` the share of its steps over which that
            rate rises linearly from 1% (0: none). At the recipe's full rate, Adam's first steps
            can throw away the inherited weights: on MNIST-1D, 3-layer sub-networks of 6-8k MACs
            fine-tuned to 79-93% test between seeds without a warm-up, 93-94% with a tenth of
            the steps as one.
        reseed_cheapest: the first this many candidates (the cheapest of the spread, unless
            ``per_depth`` put others first) are fine-tuned once more, under another seed, in
            the trials right after the stored candidates; the front keeps whichever fine-tune
            scores better on validation (a sub-network of 5-8k MACs on MNIST-1D moved 0.1 to 7
            points of validation accuracy between fine-tune seeds).
        recal_samples: training samples that recalibrate batch norm.
        int8_checks: candidates whose simulated int8 accuracy is checked against ONNX Runtime.
        holdout_folds: folds of held-out data the candidates are scored on (1: the validation
            split alone). With ``k > 1``, ``k - 1`` more blocks of training samples, each as large
            as the validation split and stratified by class, are held out in turn; for each, a
            supernet trains once on the rest (the validation split included), and every
            candidate's twin is fine-tuned from it the same way and scored on the block. The
            trial's ``val_accuracy``, which chooses the front, is the mean over the ``k`` folds
            (a cross-validated estimate: on MNIST-1D's 800 validation samples one split alone read
            cheap candidates up to 4 points over their test accuracy, enough to put the wrong one
            on the front). The deployed model is the one trained on the run's training split.
            Each fold costs a supernet's training and a fine-tune per candidate. Trials past the
            candidates (the search strategy's own, trained from scratch) read the split alone.
    """

    epochs: int = 60
    warmup_epochs: int | None = None
    n_random: int = 2
    schedule: str = "sandwich"
    distill: bool = True
    kernel_transform: bool = False
    sample_in_budget: bool = True
    balance_depth: bool = True
    fixed: dict = field(default_factory=dict, hash=False)
    n_pairs: int = 400
    predictor: str = "mlp"
    holdout: float = 0.2
    precision: tuple[str, ...] | None = None
    search: str = "evolution"
    search_trials: int = 1500
    population_size: int = 64
    n_candidates: int = 8
    per_depth: bool = False
    max_candidates: int = 32
    finetune_epochs: int = 20
    finetune_lr: float = 0.3
    finetune_warmup: float = 0.0
    reseed_cheapest: int = 0
    recal_samples: int = 1024
    int8_checks: int = 2
    holdout_folds: int = 1

    @classmethod
    def parse(cls, raw: dict | None, field_name: str = "strategy.options") -> SupernetOptions:
        """Check ``raw``; raises :class:`ConfigError` naming the first wrong key."""
        raw = dict(raw or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - names
        if unknown:
            raise ConfigError(f"{field_name}.{sorted(unknown)[0]}", f"one of the supernet's options {sorted(names)}")
        checks = {
            "epochs": ("an integer >= 1", lambda v: _is_int(v, 1)),
            "warmup_epochs": ("an integer >= 0", lambda v: v is None or _is_int(v)),
            "n_random": ("an integer >= 0", lambda v: _is_int(v)),
            "schedule": (f"one of {list(SCHEDULES)}", lambda v: v in SCHEDULES),
            "distill": ("true/false", lambda v: isinstance(v, bool)),
            "kernel_transform": ("true/false", lambda v: isinstance(v, bool)),
            "sample_in_budget": ("true/false", lambda v: isinstance(v, bool)),
            "balance_depth": ("true/false", lambda v: isinstance(v, bool)),
            "fixed": ("a mapping of family -> {gene: value}", lambda v: isinstance(v, dict)
                      and all(isinstance(x, dict) for x in v.values())),
            "n_pairs": ("an integer >= 10", lambda v: _is_int(v, 10)),
            "predictor": (f"one of {list(PREDICTORS)}", lambda v: v in PREDICTORS),
            "holdout": ("a number in (0, 0.5]", lambda v: isinstance(v, (int, float)) and 0 < v <= 0.5),
            "precision": (f"a list of {list(precision_names('simulated'))}", lambda v: v is None or isinstance(v, list) and v
                          and all(p in precision_names("simulated") for p in v)),
            "search": ("a strategy name", lambda v: isinstance(v, str) and v != "supernet"),
            "search_trials": ("an integer >= 1", lambda v: _is_int(v, 1)),
            "population_size": ("an integer >= 2", lambda v: _is_int(v, 2)),
            "n_candidates": ("an integer >= 1", lambda v: _is_int(v, 1)),
            "per_depth": ("true/false", lambda v: isinstance(v, bool)),
            "max_candidates": ("an integer >= 0", lambda v: _is_int(v)),
            "finetune_epochs": ("an integer >= 0", lambda v: _is_int(v)),
            "finetune_lr": ("a number > 0", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0),
            "finetune_warmup": ("a number in [0, 1)",
                                lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1),
            "reseed_cheapest": ("an integer >= 0", lambda v: _is_int(v)),
            "recal_samples": ("an integer >= 2", lambda v: _is_int(v, 2)),
            "int8_checks": ("an integer >= 0", lambda v: _is_int(v)),
            "holdout_folds": ("an integer >= 1", lambda v: _is_int(v, 1)),
        }
        for key, value in raw.items():
            expected, check = checks[key]
            if not check(value):
                raise ConfigError(f"{field_name}.{key}", expected, value)
        if raw.get("precision") is not None:
            raw["precision"] = tuple(dict.fromkeys(raw["precision"]))
        out = cls(**raw)
        if out.warmup_epochs is not None and out.warmup_epochs >= out.epochs:
            raise ConfigError(f"{field_name}.warmup_epochs", f"fewer than epochs ({out.epochs})", out.warmup_epochs)
        return out

    @property
    def training(self) -> SupernetTraining:
        warmup = self.warmup_epochs if self.warmup_epochs is not None else max(1, self.epochs // 6)
        return SupernetTraining(epochs=self.epochs, warmup_epochs=min(warmup, self.epochs - 1), n_random=self.n_random,
                                schedule=self.schedule, distill=self.distill)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["precision"] = None if self.precision is None else list(self.precision)
        return out

    def resolve(self, objectives, budget) -> SupernetOptions:
        """These options with ``precision`` decided for a study's objectives and budget (see
        :func:`searched_precisions`) where it is left to the default."""
        if self.precision is not None:
            return self
        return dataclasses.replace(self, precision=searched_precisions(objectives, budget))


def is_quality(name: str) -> bool:
    """Whether the objective or budget metric ``name`` is a model's quality that the predictor
    estimates (accuracy, a task's metric such as ``r2`` or ``mse``) rather than a cost."""
    metric = get_metric(name)
    return metric.key == "val_accuracy" or metric.name in TASK_METRICS


def predicted_quality(task, objectives) -> Quality:
    """The figure the accuracy predictor estimates: accuracy for classification (``task``
    ``None``), else the first of ``objectives`` that is the task's metric (its primary where
    none is), in the task's units and with its direction (an ``mse`` is ranked lowest first)."""
    if task is None:
        return Quality()
    named = [get_metric(o).name for o in objectives if is_quality(o)]
    return Quality.of(task, named[0] if named else None)


def searched_precisions(objectives, budget) -> tuple[str, ...]:
    """fp32 and int8 where a cost among ``objectives`` and ``budget`` is measured past the plain
    model (on its exported file: ``bytes``, latency), else fp32 alone."""
    costs = [n for n in (*objectives, *(b.metric for b in budget)) if not is_quality(n)]
    return precision_names("simulated") if measured_on_file(costs) else ("fp32",)


def centre_recipe(training: dict) -> TrainSpec:
    """The recipe at the centre of the space's training genes: a choice's first value, a
    range's (geometric, for ``log``) middle. The supernet trains with it and its candidates'
    recipes are it."""
    values = {}
    for key in TRAINING_KEYS:
        p = training[key]
        if p.values is not None:
            values[key] = p.values[0]
            continue
        v = math.sqrt(p.low * p.high) if p.log else (p.low + p.high) / 2
        if p.step:
            v = p.low + round((v - p.low) / p.step) * p.step
        values[key] = int(round(v)) if p.integer else float(v)
    return TrainSpec(**values)


def stored_candidates(study: optuna.Study) -> dict | None:
    """What :meth:`SupernetStrategy.prepare` stored in the study (``None`` before it ran)."""
    return study._storage.get_study_system_attrs(study._study_id).get(STUDY_KEY)


def _digest(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


class SupernetSampler(optuna.samplers.BaseSampler):
    """Proposes the supernet's stored candidates, one per trial in the study's order (a trial's
    place in the study picks its candidate, so a re-run trial takes the same one), then defers
    to ``inner``, the search strategy's own sampler. Each trial's plan (its candidate or none)
    is a trial system attribute."""

    def __init__(self, inner: optuna.samplers.BaseSampler) -> None:
        self.inner = inner

    def _plan(self, study: optuna.Study, trial: FrozenTrial) -> dict:
        plan = trial.system_attrs.get(PLAN_KEY)
        if plan is None:
            plan = study._storage.get_trial_system_attrs(trial._trial_id).get(PLAN_KEY)
        if plan is None:
            self.before_trial(study, trial)
            plan = study._storage.get_trial_system_attrs(trial._trial_id)[PLAN_KEY]
        return plan

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if PLAN_KEY in trial.system_attrs:
            return
        stored = stored_candidates(study) or {}
        candidates = stored.get("candidates", [])
        place = position(study, trial.number)
        again = place - len(candidates)  # past the stored candidates: the cheapest fine-tuned again
        plan = {"candidate": place if place < len(candidates) else
                again if 0 <= again < min(stored.get("reseed", 0), len(candidates)) else None}
        if plan["candidate"] is not None:
            plan["params"] = candidates[plan["candidate"]]["params"]
        study._storage.set_trial_system_attr(trial._trial_id, PLAN_KEY, plan)
        if plan["candidate"] is None:
            self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        if self._plan(study, trial)["candidate"] is not None:
            return {}
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        if self._plan(study, trial)["candidate"] is not None:
            return {}
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        plan = self._plan(study, trial)
        if plan["candidate"] is not None:
            value = plan["params"].get(param_name)
            if in_distribution(param_distribution, value):
                return value
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        if self._plan(study, trial)["candidate"] is None:
            self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


class _Progress(Callback):
    def __init__(self, note, family: str, epochs: int) -> None:
        self.note, self.family, self.epochs = note, family, epochs
        self.every = max(1, epochs // 5)

    def on_epoch_end(self, epoch: int, metrics: dict) -> None:
        if epoch % self.every == 0 or epoch == self.epochs:
            self.note(f"supernet ({self.family}): epoch {epoch}/{self.epochs}, {metrics['phase']}, "
                      f"train loss {metrics['train_loss']:.3f}")


@register_strategy("supernet")
class SupernetStrategy(BaseStrategy):
    description = "once-for-all supernet + accuracy predictor: search sub-networks and per-layer precision (OFA, APQ)"

    #: supernets loaded by this process, by checkpoint path
    _loaded: dict[str, Any] = {}

    def options(self, ctx: StrategyContext | PrepareContext) -> SupernetOptions:
        opts = SupernetOptions.parse(ctx.options)
        return opts.resolve(ctx.objectives, ctx.budget) if isinstance(ctx, PrepareContext) else opts

    def resolved_options(self, options: dict | None) -> dict:
        return SupernetOptions.parse(options).to_dict()

    def sampler(self, ctx: StrategyContext) -> SupernetSampler:
        opts = self.options(ctx)
        inner = get_strategy(opts.search, "strategy.options.search")
        return SupernetSampler(inner.sampler(dataclasses.replace(ctx, options={})))  # the options are the supernet's

    def check(self, ctx: StrategyContext, field: str = "strategy.name") -> None:
        super().check(ctx, field)
        opts = self.options(ctx)
        inner = get_strategy(opts.search, "strategy.options.search")
        if inner.needs_grid or not inner.sequenced:
            raise ConfigError("strategy.options.search", "a strategy that samples a space of per-layer genes "
                              "(evolution, local, rl, random, tpe, ...)", opts.search)
        inner.check(dataclasses.replace(ctx, options={}), "strategy.options.search")
        if ctx.space is None:
            raise ConfigError(field, f"a strategy other than {self.name!r} here (it searches architectures of a space)",
                              self.name)
        if ctx.space.compression is not None:
            raise ConfigError("space.compression", "no compression section with the supernet strategy (it searches "
                              "per-layer precision itself: strategy.options.precision)")
        for family in ctx.space.families:
            # built once on a stand-in input, so a wrong skeleton is refused before anything runs
            fam = get_family(family)
            stand_in = (3, 16, 16) if fam.data_kinds == ("image",) else (1, 64)  # centernet: images alone
            net = fam.supernet(ctx.space.params[family], stand_in, 2, fixed=opts.fixed.get(family),
                               field=f"strategy.options.fixed.{family}")
            if net is None:
                raise ConfigError("space.family", f"families with a supernet for {self.name!r} (cnn, mlp, centernet)",
                                  family)
        unknown = set(opts.fixed) - set(ctx.space.families)
        if unknown:
            raise ConfigError(f"strategy.options.fixed.{sorted(unknown)[0]}", f"a family of the space {list(ctx.space.families)}")
        for name in ctx.objectives:
            if get_metric(name).name in DATA_METRICS:
                raise ConfigError("objectives", f"accuracy (or the task's metrics) and cost metrics for {self.name!r} "
                                  "(its predictor estimates accuracy only; "
                                  f"{[m for m in list_metrics() if m not in DATA_METRICS]})", name)
        if ctx.objectives and not any(is_quality(o) for o in ctx.objectives):
            raise ConfigError("objectives", f"accuracy (or the task's metric, such as r2) among the objectives for "
                              f"{self.name!r}", list(ctx.objectives))

    # -- before the trials ------------------------------------------------------------------

    def _nets(self, ctx: PrepareContext, opts: SupernetOptions) -> dict:
        data, tokens = ctx.data, token_heads(ctx.data)  # token ids, a head per position
        for f in ctx.space.families:
            if tokens and f not in TOKEN_FAMILIES:
                raise ConfigError("space.family", f"{', '.join(TOKEN_FAMILIES)} for {self.name!r} on token ids or a "
                                  "per-token task (the families whose supernet embeds ids and predicts per token)", f)
        return {f: get_family(f).supernet(ctx.space.params[f], data.input_shape, data.n_classes,
                                          fixed=opts.fixed.get(f), kernel_transform=opts.kernel_transform,
                                          field=f"strategy.options.fixed.{f}", **tokens)
                for f in ctx.space.families}

    def keys(self, ctx: PrepareContext, opts: SupernetOptions) -> dict[str, str]:
        """Digests naming the supernet (its space, data, recipe, training and seed), the pairs
        (also their count, precisions, recalibration) and the candidates (everything)."""
        space, training = ctx.space.to_config()
        data = [ctx.data.summary(), float(ctx.data.x_train.double().sum()), int(ctx.data.y_train.sum())]
        o = opts.to_dict()
        limits = mac_range(ctx.budget) if opts.sample_in_budget else None
        trained = ["epochs", "warmup_epochs", "n_random", "schedule", "distill", "kernel_transform", "fixed"]
        for flag in ("balance_depth", "per_depth"):  # off: the digests of runs that predate the options
            if not o[flag]:
                del o[flag]
        if "balance_depth" in o:
            trained.append("balance_depth")
        del o["reseed_cheapest"], o["holdout_folds"]  # which trials take the candidates / how they are scored
        net = _digest(space, training, data, ctx.seed, limits, {k: o[k] for k in trained})
        pairs = _digest(net, {k: o[k] for k in ("n_pairs", "precision", "recal_samples")})  # net: budget too
        return {"supernet": net, "pairs": pairs, "candidates": _digest(pairs, o, list(ctx.objectives),
                                                                        [str(b) for b in ctx.budget])}

    def load_nets(self, ctx: PrepareContext, opts: SupernetOptions, train: bool = True) -> tuple[dict, dict]:
        """The trained supernets (from the run folder's checkpoints, else trained now and saved)
        and what was done: ``{family: {"reused": bool, "seconds": float}}``."""
        key = self.keys(ctx, opts)["supernet"]
        nets, report = self._nets(ctx, opts), {}
        ctx.folder.mkdir(parents=True, exist_ok=True)
        recipe = centre_recipe(ctx.space.training)
        for i, (family, net) in enumerate(sorted(nets.items())):
            path = ctx.folder / f"{family}-{key}.pt"
            t0 = time.perf_counter()
            if path.is_file():
                net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
                report[family] = {"reused": True, "seconds": 0.0, "checkpoint": path.name}
                continue
            if not train:
                raise SlimnasError(f"the supernet checkpoint {path} is missing (the run folder changed?)")
            task = own_task(ctx.data)
            taught = ("in-place distillation" if opts.distill and (task is None or task.distills) else
                      "labels" if task is None or task.distills else "the task's own losses")  # detection: its losses
            ctx.note(f"supernet ({family}): training {opts.epochs} epochs ({opts.schedule} rule, {taught}) -> {path}")
            torch.manual_seed(ctx.seed * 1_000_003 + i)
            net = self._nets(ctx, opts)[family]  # initialised under the seed
            nets[family] = net
            partial = path.with_suffix(".partial.pt")
            limits = mac_range(ctx.budget) if opts.sample_in_budget else None
            history = train_supernet(net, ctx.data.x_train, ctx.data.y_train, recipe, opts.training,
                                     seed=ctx.seed * 1_000_003 + i, device=ctx.device, state_path=partial,
                                     callbacks=[_Progress(ctx.note, family, opts.epochs)],
                                     sample=None if limits is None else within(net, *limits,
                                                                               by_depth=opts.balance_depth),
                                     task=own_task(ctx.data))
            net.cpu()
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save({"model": net.state_dict(), "family": family, "key": key, "options": opts.to_dict()}, tmp)
            tmp.replace(path)
            partial.unlink(missing_ok=True)
            report[family] = {"reused": False, "seconds": round(time.perf_counter() - t0, 2),
                              "epochs": len(history.epochs), "checkpoint": path.name}
        for net in nets.values():
            net.cpu().eval()
        return nets, report

    def fold_contexts(self, ctx: PrepareContext, opts: SupernetOptions) -> list[PrepareContext]:
        """``ctx`` for each fold past the validation split (``opts.holdout_folds - 1``), its data
        that fold's (:func:`fold_splits`)."""
        if opts.holdout_folds == 1:
            return []
        return [dataclasses.replace(ctx, data=d) for d in fold_splits(ctx.data, opts.holdout_folds, ctx.seed)]

    def load_fold_nets(self, ctx: PrepareContext, opts: SupernetOptions) -> dict:
        """Each further fold's supernets, trained on its training data (or loaded): what was
        done, by fold (``{}`` with one fold)."""
        out = {}
        for i, fold in enumerate(self.fold_contexts(ctx, opts), start=2):
            ctx.note(f"supernet: fold {i} of {opts.holdout_folds}, {len(fold.data.y_val)} samples held out, "
                     "a supernet of its own")
            out[str(i)] = self.load_nets(fold, opts)[1]
        return out

    def _net(self, ctx: PrepareContext, opts: SupernetOptions, family: str):
        """The trained supernet of ``family`` for ``ctx``'s data, loaded once per process."""
        key = self.keys(ctx, opts)["supernet"]
        cache_key = str(ctx.folder / f"{family}-{key}.pt")
        if cache_key not in self._loaded:
            nets, _ = self.load_nets(ctx, opts, train=False)
            self._loaded.update({str(ctx.folder / f"{f}-{key}.pt"): n for f, n in nets.items()})
        return self._loaded[cache_key]

    def prepare(self, study: optuna.Study, ctx: PrepareContext) -> dict:
        opts = self.options(ctx)
        task = own_task(ctx.data)
        if task is not None and opts.holdout_folds > 1:
            raise ConfigError("strategy.options.holdout_folds", f"1 for the {task.name} task (the folds are "
                              "stratified by class and averaged as accuracy: classification only)", opts.holdout_folds)
        keys = self.keys(ctx, opts)
        done = stored_candidates(study)
        if done is not None and done.get("key") == keys["candidates"]:
            ctx.note(f"supernet: {len(done['candidates'])} candidates chosen before; reusing them")
            self.load_fold_nets(ctx, opts)
            if done.get("reseed", 0) != opts.reseed_cheapest:
                study._storage.set_study_system_attr(study._study_id, STUDY_KEY,
                                                     {**done, "reseed": opts.reseed_cheapest})
            return done["report"]
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        nets, trained = self.load_nets(ctx, opts)
        folds = self.load_fold_nets(ctx, opts)
        timings["supernet_s"] = round(time.perf_counter() - t0, 2)
        for family, r in trained.items():
            if r["reused"]:
                ctx.note(f"supernet ({family}): reusing the trained checkpoint {r['checkpoint']}")

        data, precisions = ctx.data, list(opts.precision)
        t1 = time.perf_counter()
        pairs_path = ctx.folder / f"pairs-{keys['pairs']}.json"
        if pairs_path.is_file():
            pairs = json.loads(pairs_path.read_text())
        else:
            ctx.note(f"supernet: measuring {opts.n_pairs} sub-networks with inherited weights (validation data)")
            limits = mac_range(ctx.budget) if opts.sample_in_budget else None
            draws = None if limits is None else {f: _draw(within(net, *limits, by_depth=opts.balance_depth))
                                                 for f, net in nets.items()}
            pairs = measure_pairs(nets, precisions, data, n_pairs=opts.n_pairs, n_recal=opts.recal_samples,
                                  seed=ctx.seed, draws=draws)
            _write_json(pairs_path, pairs)
        timings["pairs_s"] = round(time.perf_counter() - t1, 2)

        t2 = time.perf_counter()
        encode = Encoder(nets, precisions)
        points = [Point(p["family"], arch_from_dict(p["arch"]), tuple(p["precision"])) for p in pairs]
        x = np.array([encode(p) for p in points])
        quality = predicted_quality(task, ctx.objectives)
        y = np.array([p[quality.key] for p in pairs])  # the task's own units; the objective's direction ranks them
        scores = {kind: held_out_scores(x, y, kind=kind, holdout=opts.holdout, seed=ctx.seed) for kind in PREDICTORS}
        predictors = {quality.key: AccuracyPredictor(kind=opts.predictor, seed=ctx.seed).fit(x, y)}
        for b in ctx.budget:  # a budget on another of the task's metrics (r2 searched, mse<=3000): predicted too
            if is_quality(b.metric) and b.key not in predictors:
                predictors[b.key] = AccuracyPredictor(kind=opts.predictor, seed=ctx.seed).fit(
                    x, np.array([p[b.key] for p in pairs]))
        timings["predictor_s"] = round(time.perf_counter() - t2, 2)
        held = scores[opts.predictor]
        ctx.note(f"supernet: {opts.predictor} predictor{'' if task is None else ' of ' + quality.key} on {len(y)} "
                 f"pairs, held-out rank correlation {held['spearman']:.3f} (Spearman), {held['kendall']:.3f} (Kendall)")

        def predict(pts: list[Point]) -> dict:
            z = np.array([encode(p) for p in pts])
            return {k: p.predict(z) for k, p in predictors.items()}

        t3 = time.perf_counter()
        cost_names = [m for m in dict.fromkeys([*ctx.objectives, *(b.metric for b in ctx.budget)]) if not is_quality(m)]
        costs = PointCosts(nets, cost_names, data, ctx.measure_settings)
        found = search_points(nets, precisions, predict, costs, objectives=ctx.objectives, budget=ctx.budget,
                              strategy=opts.search, n_trials=opts.search_trials, seed=ctx.seed,
                              population_size=opts.population_size, key=quality.key)
        chosen = choose(found, ctx.objectives, opts.n_candidates, limit=max(opts.max_candidates, opts.n_candidates),
                        per_depth=opts.per_depth, quality=None if task is None else quality.metric)
        timings["search_s"] = round(time.perf_counter() - t3, 2)
        if not chosen:
            ctx.note("supernet: no sub-network meets the budget; the trials go to the search strategy alone")

        recipe = centre_recipe(ctx.space.training)
        candidates = [self._record(ctx, nets, point, metrics, recipe) for point, metrics in chosen]
        t4 = time.perf_counter()
        quantized = [p for p, _ in chosen if "int8" in p.precision][: opts.int8_checks]
        if not quantized and "int8" in precisions:  # none chosen: check the simulation on measured pairs
            quantized = [p for p in points if "int8" in p.precision][: opts.int8_checks]
        checks = int8_check(nets, quantized, data, n_recal=opts.recal_samples, quality=quality)
        timings["int8_check_s"] = round(time.perf_counter() - t4, 2)
        report = {"options": opts.to_dict(), "recipe": dataclasses.asdict(recipe), "supernets": trained,
                  **({"fold_supernets": folds} if folds else {}),
                  "skeletons": {f: _skeleton(net) for f, net in nets.items()}, "n_pairs": len(pairs),
                  "predictor": {"kind": opts.predictor, "held_out": scores,
                                **({} if task is None else {"metric": quality.metric, "direction": quality.direction})},
                  "search": {"strategy": opts.search, "trials": opts.search_trials, "feasible": len(found),
                             "candidates": len(candidates)},
                  "int8_check": checks, "timings": timings}
        _write_json(ctx.folder / "report.json", {**report, "candidates": candidates})
        study._storage.set_study_system_attr(study._study_id, STUDY_KEY,
                                             {"key": keys["candidates"], "candidates": candidates, "report": report,
                                              "reseed": opts.reseed_cheapest})
        ctx.note(f"supernet: {len(candidates)} candidates across the predicted front ({len(found)} feasible "
                 f"sub-networks scored); the first {min(opts.n_candidates, len(candidates))} trials fine-tune them"
                 + (f", the next {min(opts.reseed_cheapest, len(candidates))} fine-tune the first again under "
                    "another seed" if opts.reseed_cheapest else ""))
        return report

    def _record(self, ctx: PrepareContext, nets: dict, point: Point, metrics: dict, recipe: TrainSpec) -> dict:
        """A candidate as stored: its spec, per-layer precision, predicted figures and the trial
        parameters that sample it from the space."""
        net = nets[point.family]
        params = {f"{point.family}.{k}": v for k, v in net.genes(point.spec).items()}
        params.update({f"train.{k}": getattr(recipe, k) for k in TRAINING_KEYS})
        if len(ctx.space.families) > 1:
            params["arch.family"] = point.family
        groups = net.layer_groups(point.spec)
        precision = {name: p for group, p in zip(groups, point.precision, strict=True) for name in group}
        return {"family": point.family, "spec": get_family(point.family).to_dict(point.spec), "precision": precision,
                "slots": list(point.precision), "predicted": {k: v for k, v in metrics.items()}, "params": params}

    # -- each trial ------------------------------------------------------------------------------

    def warm_start(self, study: optuna.Study, trial: optuna.Trial, candidate: Any,
                   ctx: PrepareContext) -> WarmStart | None:
        plan = study._storage.get_trial_system_attrs(trial._trial_id).get(PLAN_KEY)
        if not plan or plan.get("candidate") is None:
            return None
        opts = self.options(ctx)
        record = stored_candidates(study)["candidates"][plan["candidate"]]
        spec = arch_from_dict(record["spec"])
        if candidate.arch != spec:
            raise SlimnasError(f"the trial's architecture is not its supernet candidate {plan['candidate']} "
                               "(the space changed since the candidates were chosen?)")
        net = self._net(ctx, opts, record["family"])
        point = Point(record["family"], spec, tuple(record["slots"]))
        model = inherited_model(net, point, ctx.data, opts.recal_samples)
        quality = predicted_quality(own_task(ctx.data), ctx.objectives)
        inherited = float(model_quality(ctx.data, model, quality=quality))
        train = dataclasses.replace(candidate.train, lr=candidate.train.lr * opts.finetune_lr,
                                    epochs=opts.finetune_epochs, warmup=opts.finetune_warmup)
        policy = None
        if any(p != "fp32" for p in record["precision"].values()):
            policy = CompressionPolicy.of(quantize={"mode": "fp32", "layer_precision": record["precision"]})
        info = {"supernet_candidate": plan["candidate"], f"inherited_{quality.key}": inherited,
                f"predicted_{quality.key}": record["predicted"].get(quality.key),
                "finetune_epochs": opts.finetune_epochs, "precision": "/".join(record["slots"])}
        if opts.finetune_warmup:
            info["finetune_warmup"] = opts.finetune_warmup
        folds = None
        if opts.holdout_folds > 1:
            def folds(*, seed: int, device: str = "cpu") -> list[float]:
                return [self._fold_accuracy(fold, opts, point, record["precision"], train, seed=seed, device=device)
                        for fold in self.fold_contexts(ctx, opts)]
        return WarmStart(model=model, train=train, policy=policy, info=info, folds=folds)

    def _fold_accuracy(self, fold: PrepareContext, opts: SupernetOptions, point: Point, precision: dict,
                       train: TrainSpec, *, seed: int, device: str) -> float:
        """A candidate's twin on one further fold: inherited from that fold's supernet, fine-tuned
        on its training data as the trial's model is, its precision simulated, scored on the
        fold's held-out block."""
        data = fold.data
        model = inherited_model(self._net(fold, opts, point.family), point, data, opts.recal_samples)
        if train.epochs > 0:
            fit(model, data.x_train, data.y_train, train, device=device, seed=seed)
        model.cpu().eval()
        if any(p == "int8" for p in precision.values()):
            model = simulate_quantized(model, precision, data.x_train[:N_CALIBRATION])
        return float(evaluate(model, data.x_val, data.y_val)["accuracy"])


def fold_splits(data, n_folds: int, seed: int) -> list:
    """The data of folds 2 to ``n_folds`` of the candidates' cross-validated score (fold 1 is
    ``data`` itself). Each holds out a block of ``data``'s training samples as large as its
    validation split, stratified by class, the blocks disjoint (drawn from ``seed``), and
    trains on the rest of the training samples and the validation split. Raises
    :class:`ConfigError` where the training samples hold fewer than ``n_folds - 1`` blocks."""
    n_val, n_train = len(data.y_val), len(data.y_train)
    if data.streamed:
        raise ConfigError("strategy.options.holdout_folds", "1 with data streamed from disk (folds are built in "
                          "memory)", n_folds)
    if (n_folds - 1) * n_val > n_train:
        raise ConfigError("strategy.options.holdout_folds",
                          f"at most {n_train // n_val + 1} with {n_train} training and {n_val} validation samples",
                          n_folds)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 104729]))
    y = data.y_train.numpy()
    share = n_val / n_train
    blocks: list[list[np.ndarray]] = [[] for _ in range(n_folds - 1)]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        size = int(round(share * len(idx)))
        for i, block in enumerate(blocks):
            block.append(idx[i * size : (i + 1) * size])
    out = []
    for block in blocks:
        held = torch.from_numpy(np.sort(np.concatenate(block)))
        keep = torch.ones(n_train, dtype=torch.bool)
        keep[held] = False
        out.append(dataclasses.replace(data, x_train=torch.cat([data.x_train[keep], data.x_val]),
                                       y_train=torch.cat([data.y_train[keep], data.y_val]),
                                       x_val=data.x_train[held], y_val=data.y_train[held]))
    return out


def mac_range(budget) -> tuple[float, float] | None:
    """``(low, high)`` MACs the budget allows (``None`` when it does not limit MACs)."""
    low, high = 0.0, math.inf
    for b in budget:
        if b.metric == "macs" and b.op in ("<=", "<"):
            high = min(high, b.limit)
        elif b.metric == "macs" and b.op in (">=", ">"):
            low = max(low, b.limit)
    return None if (low, high) == (0.0, math.inf) else (low, high)


def within(net, low: float, high: float, tries: int = 100, *, by_depth: bool = False):
    """``sample(rng, dims)`` drawing sub-networks of ``net`` with ``low <= MACs <= high`` (the
    last draw when ``tries`` draws found none). ``by_depth``: a depth first, uniformly among
    those with a sub-network under ``high``, then the other dimensions at that depth (``tries``
    draws per depth; deep sub-networks fit a budget only when narrow, a small share of them)."""
    fits = [d for d in net.choices["depth"] if net.macs(_narrowest(net, d)) <= high]

    def sample(rng, dims):
        if by_depth and "depth" in dims and fits:
            depth = fits[int(rng.integers(len(fits)))]
            for _ in range(tries):
                spec = net.sample(rng, dims, depth=depth)
                if low <= net.macs(spec) <= high:
                    return spec
            return spec
        for _ in range(tries):
            spec = net.sample(rng, dims)
            if low <= net.macs(spec) <= high:
                break
        return spec

    return sample


def _narrowest(net, depth: int):
    kernels = net.choices.get("kernel")
    return net.compose([min(net.choices["width"])] * depth, None if kernels is None else [min(kernels)] * depth)


def _draw(sample):
    return lambda rng: sample(rng, ELASTIC)


def _skeleton(net) -> dict:
    return {"choices": net.choices, "skeleton": json.loads(json.dumps(dataclasses.asdict(net.skeleton)))}


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float))
    tmp.replace(path)
