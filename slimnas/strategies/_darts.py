"""DARTS: differentiable architecture search (Liu, Simonyan & Yang 2019, ICLR), first order, as a
one-shot strategy.

Before the first trial, the CNN family's choices are relaxed into one supernet
(:class:`~slimnas.strategies._darts_net.DartsSupernet`) and searched by bilevel optimisation:
the network weights descend the training loss on the training split, the architecture weights
(one softmax per choice) descend the loss on the validation split, alternating batch by batch.
First order: the architecture gradient is taken at the current weights, without DARTS's
second-order unrolled step (Liu et al. found first order ~2x faster at a small loss in accuracy).

The architecture loss may add a cost penalty, ``weight * E[cost] / reference``, where ``E[cost]``
is the cost expected under the softmax weights: MACs, or latency predicted from MACs and depth by
a linear model fitted to networks of the space timed on the run's runtime. With a MAC budget the
reference is its limit and exceeding it is penalised too. Each penalty weight of
``strategy.options.penalty_weights`` gives one architecture (weights trained once, shared by all,
then a search per weight), so several weights give a front from accurate to cheap.

Each architecture is discretised (the argmax of every choice), brought under an upper MAC budget
if it is over (the choice whose change loses the least log-probability per MAC saved, repeatedly),
and proposed as one trial: it is trained from scratch, compressed and measured as any other trial,
in the same study and front. Trials after the proposals are regularized evolution's children of
the finished trials (mutations of the DARTS architectures first). The search's result lives in the
study, so a resumed run proposes the same trials without searching again.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import torch
import torch.nn.functional as F
from optuna.trial import FrozenTrial

from slimnas.config import DEFAULT_RUNTIME
from slimnas.errors import ConfigError
from slimnas.measure import RUNTIMES, count_macs
from slimnas.models import CNNSpec, build_model
from slimnas.spaces import TrainSpec
from slimnas.spaces._family import arch_to_dict
from slimnas.strategies._base import StrategyContext, StrategyOption, register_strategy
from slimnas.strategies._darts_net import CnnChoices, DartsSupernet, param_options
from slimnas.strategies._evolution import RegularizedEvolutionSampler
from slimnas.strategies._oneshot import BaseOneShotStrategy, OneShotContext, stored_result
from slimnas.strategies._sequenced import position
from slimnas.strategies._subnets import own_task, token_heads

STATE_KEY = "slimnas:darts-search"
PENALTIES = ("macs", "latency_ms", "none")


def _is_int(lo: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _is_weights(v: Any) -> bool:
    return (isinstance(v, list) and 0 < len(v) <= 16
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in v))


@dataclass(frozen=True)
class DartsSettings:
    """The search's settings (``strategy.options`` of ``darts``)."""

    warmup_epochs: int = 10
    search_epochs: int = 20
    penalty: str = "macs"
    penalty_weights: tuple[float, ...] = (0.0, 0.3, 1.0)
    alpha_lr: float = 0.02
    budget_weight: float = 1.0
    batch_size: int = 0  # 0: the space's recipe


OPTIONS = {
    "warmup_epochs": StrategyOption("an integer >= 0 (epochs training the weights alone first)", _is_int(0), 10),
    "search_epochs": StrategyOption("an integer >= 1 (epochs of bilevel search per penalty weight)", _is_int(1), 20),
    "penalty": StrategyOption(f"one of {list(PENALTIES)}", lambda v: v in PENALTIES, "macs"),
    "penalty_weights": StrategyOption("a list of 1 to 16 numbers >= 0 (one architecture each)", _is_weights,
                                      [0.0, 0.3, 1.0]),
    "alpha_lr": StrategyOption("a number > 0 (Adam's step on the architecture weights)",
                               lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, 0.02),
    "budget_weight": StrategyOption("a number >= 0 (penalty on expected MACs over a MAC budget)",
                                    lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, 1.0),
    "batch_size": StrategyOption("an integer >= 0 (0: the space's recipe)", _is_int(0), 0),
}


# --- the space's side ------------------------------------------------------------------------------

def central_value(param) -> Any:
    """The middle of a numeric range (geometric for ``log``), on its grid; a choice's first value."""
    if param.values is not None:
        return param.values[0]
    low, high = float(param.low), float(param.high)
    mid = math.sqrt(low * high) if param.log else (low + high) / 2
    if param.step is not None:
        mid = low + round((mid - low) / param.step) * param.step
    return int(round(mid)) if param.integer else float(mid)


def central_recipe(space) -> TrainSpec:
    """The recipe at the centre of the space's training ranges (the supernet trains with it)."""
    return TrainSpec(**{k: central_value(p) for k, p in space.training.items()})


def spec_params(spec: CNNSpec, space) -> dict[str, Any]:
    """The trial parameters (Optuna names) that make ``space`` sample ``spec`` with the central
    recipe. Fixed parameters are left out (they are never asked)."""
    out: dict[str, Any] = {}
    if len(space.families) > 1:
        out["arch.family"] = "cnn"
    params = space.params["cnn"]

    def put(name: str, key: str, value: Any) -> None:
        if not params[key].is_fixed:
            out[name] = value

    # a per-token spec's stride, pooling and head are the per-token head's: any value of the
    # space's serves (the search sets them so), its first (or central) one is taken
    unused = ("stride", "pool", "head") if spec.per_token else ()

    def value(key: str, v: Any) -> Any:
        return central_value(params[key]) if key in unused else v

    put("cnn.n_layers", "n_layers", len(spec.layers))
    for j, layer in enumerate(spec.layers):
        for key in ("channels", "kernel", "stride", "dilation", "pool"):
            put(f"cnn.{key}_{j}", key, value(key, getattr(layer, key)))
    for key in ("activation", "batch_norm", "residual", "head", "dropout"):
        put(f"cnn.{key}", key, value(key, getattr(spec, key)))
    for key, p in space.training.items():
        if not p.is_fixed:
            out[f"train.{key}"] = central_value(p)
    return out


def mac_range(budget: Sequence, space) -> tuple[float, float]:
    """``(low, high)`` MACs an architecture of this search may have: the MAC budgets, with the
    high one stretched by how far compression may shrink a parent in a joint search."""
    hi = min((b.limit for b in budget if b.metric == "macs" and b.op in ("<=", "<") and not b.relative),
             default=math.inf)
    lo = max((b.limit for b in budget if b.metric == "macs" and b.op in (">=", ">") and not b.relative),
             default=0.0)
    comp = getattr(space, "compression", None)
    if comp is not None and math.isfinite(hi):
        hi *= comp.max_shrink() if hasattr(comp, "max_shrink") else 1.0
        lo = 0.0  # a parent is measured compressed, not as it is
    return lo, hi


# --- latency as a cost -----------------------------------------------------------------------------

def fit_latency_model(net: DartsSupernet, settings: dict, *, n: int = 12, seed: int = 0) -> tuple[float, float, float]:
    """``(a, b, c)`` of ``latency_ms ~ a + b * MACs + c * layers``, fitted by least squares to
    ``n`` random networks of the space timed on the run's runtime (``measure.runtime``)."""
    rng = np.random.default_rng(seed)
    runtime = RUNTIMES.get(settings.get("runtime", DEFAULT_RUNTIME))(
        batch_size=settings.get("latency_batch", 1), repeats=max(10, settings.get("latency_repeats", 50) // 2),
        threads=settings.get("threads", 1))
    rows, ys = [], []
    for _ in range(n):
        sel = {k: int(rng.integers(len(a))) for k, a in net.alphas.items()}
        spec, _ = net.discretise(sel)
        model = build_model(spec, net.input_shape, net.n_classes).eval()
        rows.append([1.0, count_macs(model, net.input_shape), len(spec.layers)])
        ys.append(runtime.measure(model, net.input_shape))
    coef, *_ = np.linalg.lstsq(np.array(rows), np.array(ys), rcond=None)
    a, b, c = (float(x) for x in coef)
    return a, max(b, 0.0), max(c, 0.0)


def expected_depth(net: DartsSupernet) -> torch.Tensor:
    c = net.choices
    return sum((net.probs("depth", i)[0] for i in range(c.n_max)), torch.zeros(()))


# --- the search --------------------------------------------------------------------------------------

def _batches(n: int, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    return [perm[i:i + size] for i in range(0, n, size) if len(perm[i:i + size]) >= 2]


def _weight_optimizer(net: DartsSupernet, recipe: TrainSpec, steps: int):
    params = net.weight_parameters()
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, nesterov=True, weight_decay=recipe.weight_decay)
    else:
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[recipe.optimizer]
        opt = cls(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps)) if recipe.schedule == "cosine" else None
    return opt, sched


def _loss(net, x: torch.Tensor, y: torch.Tensor, task) -> torch.Tensor:
    """The training loss of a batch: cross-entropy, or the task's own (``task``: not ``None``)."""
    if task is None:
        return F.cross_entropy(net(x), y)
    return task.loss(task.train_output(net, x, y), y)


def _train_weights(net, x, y, idx, opt, sched, task=None) -> float:
    for p in net.arch_parameters():
        p.requires_grad_(False)
    loss = _loss(net, x[idx], y[idx], task)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if sched is not None:
        sched.step()
    for p in net.arch_parameters():
        p.requires_grad_(True)
    return float(loss.detach())


def run_darts(net: DartsSupernet, data, recipe: TrainSpec, settings: DartsSettings, *, seed: int,
              cost: Callable[[DartsSupernet], torch.Tensor] | None, reference: float, mac_limit: float = math.inf,
              device: str | torch.device = "cpu", note: Callable[[str], None] = lambda text: None) -> list[dict]:
    """Train ``net``'s weights for the warm-up, then, for each penalty weight, search its
    architecture weights (bilevel, first order) from the warmed-up weights. Returns one entry per
    penalty weight: the softmax weights, the supernet's validation accuracy, the expected MACs
    and the seconds it took (the net is left with the last weight's state). For another task than
    classification (``data.task``) both levels descend the task's loss, and the supernet is scored
    by the task's primary metric (``supernet_val_<metric>``, in its units)."""
    task = own_task(data)
    device = torch.device(device)
    net.to(device)
    x_tr, y_tr = data.x_train.to(device), data.y_train.to(device)
    x_va, y_va = data.x_val.to(device), data.y_val.to(device)
    batch = settings.batch_size or recipe.batch_size
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    steps = max(1, math.ceil(len(y_tr) / batch))
    t0 = time.perf_counter()
    net.train()
    if settings.warmup_epochs:
        opt, sched = _weight_optimizer(net, recipe, steps * settings.warmup_epochs)
        for _ in range(settings.warmup_epochs):
            for idx in _batches(len(y_tr), batch, gen):
                _train_weights(net, x_tr, y_tr, idx, opt, sched, task)
        note(f"darts: supernet warmed up for {settings.warmup_epochs} epochs ({time.perf_counter() - t0:.0f} s)")
    warm = copy.deepcopy(net.state_dict())
    out = []
    for weight in settings.penalty_weights:
        t1 = time.perf_counter()
        net.load_state_dict(warm)
        opt, sched = _weight_optimizer(net, recipe, steps * settings.search_epochs)
        arch_opt = torch.optim.Adam(net.arch_parameters(), lr=settings.alpha_lr, betas=(0.5, 0.999), weight_decay=1e-3)
        for _ in range(settings.search_epochs):
            val_batches = _batches(len(y_va), batch, gen)
            for k, idx in enumerate(_batches(len(y_tr), batch, gen)):
                # architecture step on a validation batch, at the current weights (first order)
                vidx = val_batches[k % len(val_batches)]
                for p in net.weight_parameters():
                    p.requires_grad_(False)
                loss = _loss(net, x_va[vidx], y_va[vidx], task)
                if cost is not None and weight > 0:
                    loss = loss + weight * cost(net) / reference
                if math.isfinite(mac_limit) and settings.budget_weight > 0:
                    loss = loss + settings.budget_weight * F.relu(net.expected_macs() / mac_limit - 1.0)
                arch_opt.zero_grad(set_to_none=True)
                loss.backward()
                arch_opt.step()
                for p in net.weight_parameters():
                    p.requires_grad_(True)
                _train_weights(net, x_tr, y_tr, idx, opt, sched, task)
        net.eval()
        with torch.no_grad():
            if task is None:
                name, val_acc = "accuracy", float((net(x_va).argmax(1) == y_va).float().mean())
            else:
                name = task.primary
                val_acc = float(task.score(net(x_va).cpu(), y_va.cpu())[name])
            probs = {k: [round(float(p), 6) for p in F.softmax(a, 0)] for k, a in net.alphas.items()}
            selection = net.selection()
            e_macs = float(net.expected_macs())
        net.train()
        out.append({"penalty_weight": float(weight), "probs": probs, "selection": selection,
                    f"supernet_val_{name}": round(val_acc, 6), "expected_macs": round(e_macs, 1),
                    "seconds": round(time.perf_counter() - t1, 1)})
        shown = "acc" if task is None else task.metric(name).display
        note(f"darts: penalty weight {weight:g}: supernet val {shown} {val_acc:.3f}, expected MACs {e_macs:,.0f} "
             f"({time.perf_counter() - t1:.0f} s)")
    return out


def one_hot_macs(net: DartsSupernet, selection: dict[str, int]) -> float:
    """The MACs of the network ``selection`` picks (the expected MACs at one-hot weights)."""
    saved = {k: a.detach().clone() for k, a in net.alphas.items()}
    try:
        net.set_one_hot(selection)
        with torch.no_grad():
            return float(net.expected_macs())
    finally:
        with torch.no_grad():
            for k, a in net.alphas.items():
                a.copy_(saved[k])


def fit_selection(net: DartsSupernet, probs: dict[str, list[float]], selection: dict[str, int],
                  low: float, high: float) -> dict[str, int]:
    """Bring the selection's MACs into ``[low, high]`` one changed choice at a time: the change
    that lands in the range losing the least log-probability, or, while none does, the one that
    moves the MACs towards it at the least log-probability per MAC."""
    sel = dict(selection)
    for _ in range(64):
        macs = one_hot_macs(net, sel)
        if low <= macs <= high:
            break
        landing, towards = [], []
        for key, p in probs.items():
            for j in range(len(p)):
                if j == sel[key]:
                    continue
                moved = one_hot_macs(net, {**sel, key: j})
                loss = max(0.0, math.log(max(p[sel[key]], 1e-12)) - math.log(max(p[j], 1e-12)))
                if low <= moved <= high:
                    landing.append((loss, abs(moved - macs), key, j))
                gain = (macs - moved) if macs > high else (moved - macs)
                if gain > 0:
                    towards.append((-gain / (loss + 1e-3), key, j))
        if landing:
            _, _, key, j = min(landing)
            sel[key] = j
            break
        if not towards:
            break
        _, key, j = min(towards)
        sel[key] = j
    return sel


# --- the strategy ---------------------------------------------------------------------------------------

class DartsSampler(RegularizedEvolutionSampler):
    """Proposes the DARTS architectures stored in the study (trial ``k`` of the sequence gets
    proposal ``k``), then regularized evolution's children of the finished trials."""

    plan_key = "slimnas:darts"

    def plan(self, study: optuna.Study, trial: FrozenTrial, others: list[FrozenTrial], *, enqueued: bool) -> dict:
        result = stored_result(study, STATE_KEY)
        if result is None:
            raise ConfigError("strategy.name", "a study whose differentiable search has run (slimnas.search runs "
                              "it before the first trial)", "darts")
        place = position(study, trial.number)
        proposals = result["proposals"]
        if not enqueued and place < len(proposals):
            return {"proposal": place, "parent": None, "params": proposals[place]["params"]}
        return super().plan(study, trial, others, enqueued=enqueued)


@register_strategy("darts")
class DartsStrategy(BaseOneShotStrategy):
    description = "differentiable search of the CNN family (DARTS, first order, Liu et al. 2019), then evolution"
    state_key = STATE_KEY
    option_keys = OPTIONS

    def check(self, ctx: StrategyContext, field: str = "strategy.name") -> None:
        super().check(ctx, field)
        if ctx.space is None or "cnn" not in getattr(ctx.space, "families", ()):
            where = "a search space" if ctx.space is None else f"space.family {list(ctx.space.families)}"
            raise ConfigError(field, f"a space with the 'cnn' family for 'darts' (it relaxes the CNN's choices; "
                              f"got {where})", self.name)

    def sampler(self, ctx: StrategyContext) -> DartsSampler:
        return DartsSampler(seed=ctx.seed, population_size=ctx.population_size, n_startup_trials=1)

    def settings(self, options: dict) -> DartsSettings:
        o = self.resolved_options(options)
        return DartsSettings(warmup_epochs=o["warmup_epochs"], search_epochs=o["search_epochs"], penalty=o["penalty"],
                             penalty_weights=tuple(float(w) for w in o["penalty_weights"]),
                             alpha_lr=float(o["alpha_lr"]), budget_weight=float(o["budget_weight"]),
                             batch_size=o["batch_size"])

    def search(self, ctx: OneShotContext) -> dict:
        t0 = time.perf_counter()
        settings = self.settings(ctx.options)
        space, data = ctx.space, ctx.data
        choices = CnnChoices.from_params(space.params["cnn"])
        torch.manual_seed(ctx.seed)
        net = DartsSupernet(choices, data.input_shape, data.n_classes, **token_heads(data))
        low, high = mac_range(ctx.budget, space)
        cost, reference = None, 1.0
        if settings.penalty == "macs":
            cost = DartsSupernet.expected_macs
        elif settings.penalty == "latency_ms":
            a, b, c = fit_latency_model(net, ctx.measure_settings, seed=ctx.seed)
            cost = lambda n: a + b * n.expected_macs() + c * expected_depth(n)  # noqa: E731
        if cost is not None:
            with torch.no_grad():
                reference = float(cost(net))  # the cost at uniform weights
            if settings.penalty == "macs" and math.isfinite(high):
                reference = high
        ctx.note(f"darts: searching {len(net.alphas)} choices of the CNN family "
                 f"({sum(p.numel() for p in net.weight_parameters()):,} supernet weights), "
                 f"{len(settings.penalty_weights)} penalty weight(s)")
        runs = run_darts(net, data, central_recipe(space), settings, seed=ctx.seed, cost=cost,
                         reference=max(reference, 1e-12), mac_limit=high, device=ctx.device, note=ctx.note)
        proposals, seen = [], set()
        for run in runs:
            net.load_probs(run["probs"])
            sel = fit_selection(net, run["probs"], run["selection"], low, high)
            spec, _ = net.discretise(sel)
            params = spec_params(spec, space)
            key = str(sorted(params.items()))
            macs = count_macs(build_model(spec, data.input_shape, data.n_classes), data.input_shape)
            run.update(arch=arch_to_dict(spec), macs=macs, argmax_macs=round(one_hot_macs(net, run["selection"])),
                       params=params, repaired=sel != run["selection"])
            if key not in seen:
                seen.add(key)
                proposals.append({"params": params, "arch": run["arch"], "macs": macs,
                                  "penalty_weight": run["penalty_weight"]})
        return {"options": self.resolved_options(ctx.options), "choices": {k: list(v) if isinstance(v, tuple) else v
                for k, v in vars(choices).items()}, "runs": runs, "proposals": proposals,
                "seconds": round(time.perf_counter() - t0, 1)}


__all__ = ["DartsSampler", "DartsSettings", "DartsStrategy", "central_recipe", "fit_selection", "mac_range",
           "param_options", "run_darts", "spec_params"]
