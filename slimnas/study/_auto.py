"""``slimnas compress --auto``: search per-layer pruning ratios and precisions of an existing
model under a budget (AMC, He et al. 2018, and HAQ, Wang et al. 2019, search these spaces with
RL; here any strategy by name does), warm-started from the sensitivity analysis, with MAC
budgets met by construction. The chosen policy gets a final, longer distillation fine-tune."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import torch
from rich.console import Console
from torch import nn

from slimnas.compress import (
    CompressedModel,
    CompressionPolicy,
    SensitivityResult,
    analyze_sensitivity,
    apply_policy,
    list_prunable_layers,
    measure_artifact,
)
from slimnas.compress._distill import FINETUNE_SPEC
from slimnas.compress._prune import executed_layers
from slimnas.config import PRUNERS, Budget
from slimnas.data import DataSplits
from slimnas.errors import ConfigError
from slimnas.spaces import TrainSpec
from slimnas.strategies import OptunaReporter, StrategyContext, make_pruner, make_sampler
from slimnas.study._artifacts import write_json
from slimnas.study._compressed import (
    allocate_by_sensitivity,
    attach_sensitivity,
    compress_parent,
    write_artifact,
)
from slimnas.study._pareto import feasible, total_violation

MAX_RATIO = 0.9
WARM_DROPS = (0.01, 0.03, 0.1)  # accuracy drops that seed the sensitivity-guided starting policies
REFINE_LR_FACTORS = (1.0, 3.0)  # fine-tune learning rates tried on the chosen ratios, times the recipe's


@dataclass
class AutoResult:
    """The chosen policy, the input model's and the compressed artifact's metrics, the study."""

    policy: CompressionPolicy
    before: dict
    after: dict
    artifact: CompressedModel
    study: optuna.Study
    sensitivity: SensitivityResult
    decisions: list[dict] = field(default_factory=list)
    budget: tuple[Budget, ...] = ()
    out: Path | None = None
    train: TrainSpec = FINETUNE_SPEC
    refine: list[dict] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        return feasible(self.after, self.budget)


def _policy_from_params(params: dict, layers: list[str], prunable: list[str]) -> CompressionPolicy:
    return CompressionPolicy(
        prune={n: params[f"prune:{n}"] for n in prunable if params.get(f"prune:{n}", 0) > 0},
        importance=params.get("importance", "l1"),
        precision={n: params[f"precision:{n}"] for n in layers if f"precision:{n}" in params},
        distill=True,
    )


def warm_starts(sens: SensitivityResult, prunable: list[str], layers: list[str], precisions: list[str],
                importances: list[str], allocated: dict[str, float] | None = None) -> list[dict]:
    """Starting points: the sensitivity-guided allocation to the MAC target (when there is
    one); for each tolerated accuracy drop, every layer pruned as far as it stays within that
    drop alone (the ratio shape; the MAC budget sets the level); and a uniform policy."""
    cheapest = "int8" if "int8" in precisions else precisions[0]
    points = []
    if allocated:
        points.append({f"prune:{n}": min(MAX_RATIO, allocated.get(n, 0.0)) for n in prunable})
    for drop in WARM_DROPS:
        ratios = {n: min(MAX_RATIO, sens.max_ratio(n, drop)) for n in prunable}
        points.append({**{f"prune:{n}": r for n, r in ratios.items()}})
    points.append({f"prune:{n}": 0.5 for n in prunable})
    out = []
    for p in points:
        p.update({f"precision:{n}": cheapest for n in layers}, importance=importances[0])
        out.append(p)
    return out


def check_early_stopping(name: str) -> None:
    """``--early-stopping`` must name one of the study's pruner rules."""
    if name not in PRUNERS:
        raise ConfigError("--early-stopping", f"one of {list(PRUNERS)}", name)


def refine_finetune(model: nn.Module, policy: CompressionPolicy, data: DataSplits, *, importances: tuple[str, ...],
                    recipe: TrainSpec, epochs: int, seed: int, device: str,
                    lr_factors: tuple[float, ...] = REFINE_LR_FACTORS) -> tuple[CompressionPolicy, list[dict]]:
    """Choose the criterion and the fine-tune learning rate for the chosen ratios with a
    medium-length fine-tune, on validation data: which channels to keep and how hard to retrain
    them rank differently after a few epochs than after many (a criterion that keeps what helps
    at once, like Taylor, wins short fine-tunes more often than long ones)."""
    rows, best = [], None
    base_lr = policy.finetune_lr or recipe.lr
    for importance in importances:
        for factor in lr_factors:
            cand = dataclasses.replace(policy, importance=importance, finetune_lr=base_lr * factor)
            art = apply_policy(model, cand, data, teacher=model, epochs=epochs, seed=seed, device=device, train=recipe)
            acc = measure_artifact(art, data, splits=("val",), latency_batches=())["val_accuracy"]
            rows.append({"importance": importance, "lr": cand.finetune_lr, "epochs": epochs, "val_accuracy": acc})
            if best is None or acc > best[0]:
                best = (acc, cand)
    return best[1], rows


def auto_compress(
    model: nn.Module,
    data: DataSplits,
    *,
    budget: list[str] | tuple[str, ...],
    n_trials: int = 60,
    strategy: str = "tpe",
    precisions: tuple[str, ...] = ("fp32", "int8"),
    importances: tuple[str, ...] = ("l1", "taylor"),
    finetune_epochs: int = 2,
    final_epochs: int = 10,
    seed: int = 0,
    out: str | Path | None = None,
    storage: str | None = None,
    device: str = "cpu",
    console: Console | None = None,
    latency_repeats: int = 50,
    train: TrainSpec | None = None,
    early_stopping: str = "median",
    refine_epochs: int | None = None,
) -> AutoResult:
    """Search a per-layer policy for ``model`` that meets ``budget`` with the best validation
    accuracy (measured in ONNX Runtime after quantization), then fine-tune it longer.

    Args:
        budget: constraints such as ``"macs<=50%"`` (relative to ``model``) or ``"bytes<=8KB"``.
        finetune_epochs: the short distilled fine-tune that ranks candidates.
        final_epochs: the fine-tune the chosen policy gets.
        train: the fine-tune recipe (optimizer, learning rate, batch size); the compression
            toolkit's default when ``None``.
        early_stopping: ``median``, ``hyperband`` or ``none``: stops a ranking fine-tune whose
            validation accuracy falls behind the other trials' at the same epoch.
        refine_epochs: before the final fine-tune, the chosen ratios are fine-tuned this long
            with each criterion in ``importances`` and each of two learning rates, and the best
            on validation data is kept (``None``: a third of ``final_epochs``; 0: off).

    Example:
        >>> res = auto_compress(net, load_dataset("mnist1d"), budget=["macs<=50%"], n_trials=20)  # doctest: +SKIP
        >>> res.after["macs"] <= 0.5 * res.before["macs"]  # doctest: +SKIP
        True
    """
    console = console or Console()
    if not budget:
        raise ConfigError("--budget", "at least one budget such as 'macs<=50%'", budget)
    for p in precisions:
        if p not in ("fp32", "fp16", "int8"):
            raise ConfigError("--precision", "fp32, fp16 or int8", p)
    optuna.logging.set_verbosity(logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    model = model.cpu().eval()
    shape = data.input_shape
    out = Path(out) if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    empty = apply_policy(model, CompressionPolicy(), data, epochs=0)
    before = measure_artifact(empty, data, splits=("val", "test"), latency_batches=(1,), repeats=latency_repeats)
    budgets = tuple(Budget.parse(b, "--budget").resolve(before) for b in budget)
    console.print(f"[bold]slimnas compress --auto[/]: {data.summary()}; budget "
                  + ", ".join(f"{b}" for b in budgets) + f"; input model: val {before['val_accuracy']:.3f}, "
                  f"{before['macs']:,} MACs, {before['bytes']:,} bytes")

    sens = analyze_sensitivity(model, data, ratios=(0.1, 0.3, 0.5, 0.7, 0.9))
    console.print(sens.table())
    prunable = [lay.name for lay in list_prunable_layers(model, shape)]
    layers = [n for n, _ in executed_layers(model, shape)]

    ctx = StrategyContext(space=None, seed=seed, n_objectives=1, n_startup_trials=len(WARM_DROPS) + 2,
                          population_size=max(4, min(20, n_trials // 3)))
    sampler = make_sampler(strategy, ctx)
    storage = storage or (f"sqlite:///{out / 'study.db'}" if out is not None else None)
    check_early_stopping(early_stopping)
    pruner = make_pruner(early_stopping, n_objectives=1, max_epochs=max(1, finetune_epochs), strategy=strategy)
    study = optuna.create_study(study_name="auto", storage=storage, sampler=sampler, pruner=pruner,
                                direction="maximize", load_if_exists=True)
    if not study.trials:
        mac_limits = [b.limit for b in budgets if b.metric == "macs" and b.op in ("<=", "<")]
        allocated = (allocate_by_sensitivity(model, sens, shape, int(min(mac_limits)), max_ratio=MAX_RATIO)
                     if mac_limits else None)
        for params in warm_starts(sens, prunable, layers, list(precisions), list(importances), allocated):
            study.enqueue_trial(params, skip_if_exists=True)

    def objective(trial: optuna.Trial) -> float:
        params = {f"prune:{n}": trial.suggest_float(f"prune:{n}", 0.0, MAX_RATIO) for n in prunable}
        params.update({f"precision:{n}": trial.suggest_categorical(f"precision:{n}", list(precisions)) for n in layers})
        params["importance"] = trial.suggest_categorical("importance", list(importances))
        policy = _policy_from_params(params, layers, prunable)
        artifact, metrics, decisions = compress_parent(
            model, policy, data, budget=budgets, epochs=finetune_epochs, seed=seed * 100_003 + trial.number,
            device=device, latency_repeats=latency_repeats, use_full_budget=True, train=train,
            stoppers=lambda _: [OptunaReporter(trial, lambda m: m["val_accuracy"])],
        )
        for b in budgets:
            trial.set_constraint(str(b), float(b.violation(metrics)))
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("policy", artifact.policy.to_dict())
        ok = "ok" if feasible(metrics, budgets) else "over budget"
        console.print(f"trial {trial.number:>3}  val_acc {metrics['val_accuracy']:.3f}  macs {metrics['macs']:,}  "
                      f"bytes {metrics['bytes']:,}  {ok}", highlight=False)
        return metrics["val_accuracy"]

    n_todo = max(0, n_trials - len([t for t in study.trials if t.state.is_finished()]))
    try:
        study.optimize(objective, n_trials=n_todo, gc_after_trial=False)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: completed trials are kept; run the same command to resume[/]")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ConfigError("--n-trials", "at least one completed trial", 0)
    ok = [t for t in done if feasible(t.user_attrs["metrics"], budgets)]
    best = (max(ok, key=lambda t: t.value) if ok
            else min(done, key=lambda t: total_violation(t.user_attrs["metrics"], budgets)))
    if not ok:
        console.print(f"[yellow]No policy meets the budget; the closest one (trial {best.number}) follows.[/]")

    policy = CompressionPolicy.from_dict(best.user_attrs["policy"])
    recipe = train or FINETUNE_SPEC
    refine_epochs = final_epochs // 3 if refine_epochs is None else refine_epochs
    rows: list[dict] = []
    if refine_epochs > 0 and ok:
        policy, rows = refine_finetune(model, policy, data, importances=tuple(importances), recipe=recipe,
                                       epochs=refine_epochs, seed=seed, device=device)
        console.print("criterion and fine-tune learning rate for the chosen ratios ("
                      f"{refine_epochs}-epoch fine-tunes, validation accuracy): "
                      + ", ".join(f"{r['importance']} lr {r['lr']:g}: {r['val_accuracy']:.3f}" for r in rows)
                      + f" -> {policy.importance}, lr {policy.finetune_lr:g}", highlight=False)
    if policy.finetune_lr > 0:
        recipe = dataclasses.replace(recipe, lr=policy.finetune_lr)
    torch.manual_seed(seed)
    artifact, after, decisions = compress_parent(
        model, policy, data, budget=(), epochs=final_epochs, seed=seed, device=device,
        eval_splits=("val", "test"), latency_repeats=latency_repeats, train=recipe,
    )
    decisions = attach_sensitivity(decisions, sens)
    result = AutoResult(policy, before, after, artifact, study, sens, decisions, budgets, out, recipe, rows)
    if out is not None:
        write_artifact(out, artifact, decisions, {"trial": best.number, "budget": [str(b) for b in budgets]})
        write_json(out / "sensitivity.json", sens.to_dict())
        write_json(out / "report.json", {"before": before, "after": after, "budget": [str(b) for b in budgets],
                                         "feasible": result.feasible, "trial": best.number,
                                         "n_trials": len(done), "finetune": dataclasses.asdict(recipe),
                                         "refine": rows})
    return result
