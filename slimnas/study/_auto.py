"""``slimnas compress --auto``: search per-layer pruning ratios and precisions of an existing
model under a budget (AMC, He et al. 2018, and HAQ, Wang et al. 2019, search these spaces with
RL; here any strategy by name does), warm-started from the sensitivity analysis, with MAC
budgets met by construction. The chosen policy gets a final, longer distillation fine-tune.

The study runs through the same driver as a search; only its trial objective differs."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import torch
from torch import nn

from slimnas._files import check_not_interrupted
from slimnas.compress import (
    FINETUNE_SPEC,
    CompressedModel,
    CompressionPolicy,
    SensitivityResult,
    StructuredPruner,
    analyze_sensitivity,
    apply_policy,
    latency_change,
    list_prunable_layers,
    measure_artifact,
    quantize_model,
)
from slimnas.compress._allocate import (
    allocate_by_sensitivity,
    mac_limits,
    prune_ratios,
    pruned_macs,
    pruned_model,
    uniform_at_macs,
)
from slimnas.compress._apply import attach_sensitivity, compress_and_measure, layer_decisions
from slimnas.compress._base import WEIGHTED, precision_steps
from slimnas.compress._bitalloc import (
    MIXED_PRECISIONS,
    PrecisionAllocation,
    PrecisionSensitivity,
    allocate_precision,
    fit_precision,
    precision_sensitivity,
    size_limits,
)
from slimnas.compress._compress import staged_result
from slimnas.compress._distill import no_distillation_note
from slimnas.compress._prune import executed_layers
from slimnas.compress._prune_layers import attention_heads, split_view
from slimnas.compress._quality import Quality, check_task_outputs, test_scores, with_task
from slimnas.compress._speed import slower_warning
from slimnas.compress._user_data import takes_user_data
from slimnas.config import DEFAULT_RUNTIME, MeasureSettings, precision_names
from slimnas.config._names import DEFAULT_PRECISIONS, get_precision
from slimnas.data import DataSplits
from slimnas.errors import ConfigError, SlimnasError
from slimnas.measure import Budget, one_thread
from slimnas.measure._profile import load_profile
from slimnas.measure._task_metrics import check_task_objectives
from slimnas.models._hf import as_slimnas_model
from slimnas.spaces import TrainSpec
from slimnas.strategies import StrategyContext, check_early_stopping, get_strategy
from slimnas.strategies._early_stopping import early_stopping_rule
from slimnas.study._after import AfterStudy
from slimnas.study._artifacts import write_json
from slimnas.study._driver import StudySpec, n_finished, open_study, quiet_optuna, run_study
from slimnas.study._events import EpochReporter, Listener
from slimnas.study._hardware import (
    HardwareTarget,
    bytes_limit,
    choose_final_precision,
    knee_choice,
    latency_limits,
    prepare_target,
)
from slimnas.study._joint import write_artifact
from slimnas.study._objective import BaseTrialObjective, trial_place
from slimnas.study._pareto import feasible
from slimnas.study._progress import progress_rows
from slimnas.study._resume import keep_setting, resumed_setting
from slimnas.study._search import resolve_device
from slimnas.tasks import Task
from slimnas.training import report_phase
from slimnas.training._events import PhaseEpochs

MAX_RATIO = 0.9
WARM_DROPS = (0.01, 0.03, 0.1)  # accuracy drops that seed the sensitivity-guided starting policies
REFINE_LR_FACTORS = (1.0, 3.0)  # fine-tune learning rates tried on the chosen ratios, times the recipe's
SENSITIVITY_RATIOS = (0.1, 0.3, 0.5, 0.7, 0.9)
OLD_EARLY_STOPPING = "median"  # --auto's default until it became search's ("none"): what older studies resume with


@dataclass(frozen=True)
class AutoSettings:
    """How ``compress --auto`` searches; every field is checked when it is made.

    Attributes:
        budget: constraints such as ``"macs<=50%"`` (relative to the input model) or ``"bytes<=8KB"``.
        n_trials: policies to try (the study's total: a resumed study runs the missing ones).
        strategy: any registered strategy that works without a finite grid.
        precisions, importances: per-layer precisions and pruning criteria to choose from
            (``None``: every precision of ``MIXED_PRECISIONS``, fp32 to 2-bit palettes, under a
            ``bits`` budget, else fp32 and int8). Under a ``bits`` budget, or a ``bytes`` budget
            with a precision other than fp32 and int8 to choose from, each layer's precision is
            allocated, not searched: from each layer's measured sensitivity to each precision,
            for each candidate's pruned sizes, to meet the size budget (:mod:`slimnas.compress._bitalloc`).
        finetune_epochs: the short distilled fine-tune that ranks candidates.
        final_epochs: the fine-tune the chosen policy gets.
        refine_epochs: before the final fine-tune, the chosen ratios are fine-tuned this long
            with each criterion in ``importances`` and each of two learning rates, and the best
            on validation data is kept (``None``: half of ``final_epochs``, :attr:`refine_horizon`;
            0: off).
        refine_top: how many of the study's best in-budget trials (distinct channel counts, best
            first) the refinement fine-tunes, each with every criterion and learning rate; the
            best on validation data is kept. The trials are ranked by ``finetune_epochs``-long
            fine-tunes, which can rank shapes differently from longer ones: on the pysource
            decoder (benchmarks/tasks.py --sections lm) 3 took two seeds whose chosen shape ended
            0.13 perplexity above uniform pruning's to within 0.01 of it (both then kept the
            uniform shape), at three times the refinement's cost. 1: the chosen trial alone. The
            result's ``trial`` stays the study's best; its ``refine`` rows name the trial each
            fine-tune started from, and the kept one is the best of them.
        early_stopping: ``median``, ``hyperband`` or ``none`` (the strategy's own: hyperband for
            BOHB): stops a ranking fine-tune whose validation accuracy falls behind the other
            trials' at the same epoch. ``None``: what a resumed study was started with (``median``
            for one started before this default was ``none``), else ``none``, as in a search.
        train: the fine-tune recipe (optimizer, learning rate, batch size); the compression
            toolkit's default when ``None``.
        distill, temperature: distil from the input model in every fine-tune, at this temperature.
        device_profile: a device profile (path or built-in name) the result must run well on:
            its runtime, threads and batch time latency, its table predicts it, its limits join
            the budget.
        hardware_aware: choose channel counts by predicted latency on the target (HALP-style:
            warm start from a latency allocation, every candidate's ratios scaled to the latency
            budget, channels rounded to multiples that help on the runtime) and int8 only where
            it is faster or the byte budget needs it (without a profile, latency is predicted from
            a table measured here). On by default (``None``: on where the latency table can
            time the model's operators, else off with a note; ``True``: required); ``False``
            turns it off (``--no-hardware-aware``): odd channel counts and int8 kernels can make
            a model with fewer MACs slower than its input.
    """

    budget: tuple[str, ...]
    n_trials: int = 60
    strategy: str = "tpe"
    precisions: tuple[str, ...] | None = None  # None: MIXED_PRECISIONS under a bits budget, else DEFAULT_PRECISIONS
    importances: tuple[str, ...] = ("l1", "taylor")
    finetune_epochs: int = 2
    final_epochs: int = 10
    refine_epochs: int | None = None
    refine_top: int = 1
    early_stopping: str | None = None  # None: a resumed study's own, else "none" (the strategy's own rule)
    seed: int = 0
    device: str = "cpu"
    latency_repeats: int = 50
    train: TrainSpec | None = None
    distill: bool = True
    temperature: float = 4.0
    device_profile: str | None = None
    hardware_aware: bool | None = None
    timeout: float | None = None  # seconds after which no further policy is tried

    def __post_init__(self) -> None:
        from slimnas.compress import IMPORTANCES

        if not self.budget:
            raise ConfigError("--budget", "at least one budget such as 'macs<=50%'", list(self.budget))
        metrics = {Budget.parse(b, "--budget").metric for b in self.budget}
        if self.precisions is None:
            mixed = tuple(p for p in MIXED_PRECISIONS if p in precision_names("layer"))
            object.__setattr__(self, "precisions", mixed if "bits" in metrics else DEFAULT_PRECISIONS)
        for p in self.precisions:
            if p not in precision_names("layer"):
                raise ConfigError("--precision", f"one of {list(precision_names('layer'))}", p)
        for name in self.importances:
            if name not in IMPORTANCES:
                raise ConfigError("--importance", f"one of {IMPORTANCES.names()}", name)
        for key in ("n_trials", "finetune_epochs", "final_epochs", "refine_epochs", "refine_top"):
            value, low = getattr(self, key), 1 if key in ("n_trials", "refine_top") else 0
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ConfigError(f"--{key.replace('_', '-')}", f"an integer >= {low}", value)
        if self.early_stopping is not None:
            check_early_stopping(self.early_stopping, "--early-stopping")
        if self.device_profile is not None:
            load_profile(self.device_profile, "--device-profile")
        get_strategy(self.strategy, "--strategy").check(StrategyContext(space=None, seed=self.seed, n_objectives=1),
                                                        "--strategy")

    @property
    def refine_horizon(self) -> int:
        """The refinement's epochs: ``refine_epochs``, else half of ``final_epochs``. Each learning
        rate's fine-tune anneals to zero over this horizon, and the shorter it is against the
        final fine-tune the more it favours the lower rate: on the pysource decoder (benchmarks/
        tasks.py --sections lm, 10 final epochs) 3-epoch fine-tunes kept the recipe's rate and
        5-epoch ones three times it, which took the final test perplexity from 11.5% above the
        unpruned decoder's to under 10% on both seeds."""
        return self.final_epochs // 2 if self.refine_epochs is None else self.refine_epochs

    @property
    def recipe(self) -> TrainSpec:
        return self.train or FINETUNE_SPEC


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
    trial: int | None = None
    interrupted: bool = False
    #: aimed at a device: the predictor, latency allocation, precision choice, predicted vs measured
    hardware: dict | None = None
    #: the latency change on the measured runtime (:func:`~slimnas.compress.latency_change`)
    latency: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: the per-layer precision allocation under a size budget, with the sensitivities behind it
    precision: dict | None = None

    @property
    def feasible(self) -> bool:
        return feasible(self.after, self.budget)


def warm_starts(sens: SensitivityResult, prunable: list[str], layers: list[str], precisions: list[str],
                importances: list[str], allocated: dict[str, float] | None = None,
                uniform: dict[str, float] | None = None) -> list[dict]:
    """Starting points: the sensitivity-guided allocation to the MAC target (when there is
    one); for each tolerated accuracy drop, every layer pruned as far as it stays within that
    drop alone (the ratio shape; the MAC budget sets the level); and a uniform policy: one
    ratio for every layer, or ``uniform``'s ratios where given (a model with attention:
    :func:`uniform_start`)."""
    cheapest = "int8" if "int8" in precisions else precisions[0]
    points = []
    if allocated:
        points.append({f"prune:{n}": min(MAX_RATIO, allocated.get(n, 0.0)) for n in prunable})
    for drop in WARM_DROPS:
        ratios = {n: min(MAX_RATIO, sens.max_ratio(n, drop)) for n in prunable}
        points.append({**{f"prune:{n}": r for n, r in ratios.items()}})
    points.append({f"prune:{n}": 0.5 if uniform is None else uniform.get(n, 0.0) for n in prunable})
    out = []
    for p in points:
        p.update({f"precision:{n}": cheapest for n in layers}, importance=importances[0])
        out.append(p)
    return out


def uniform_start(model: nn.Module, input_shape, budget: Sequence[Budget]) -> dict[str, float] | None:
    """The uniform warm start's ratios for a model with attention under a MAC budget: whole
    heads, the same share of every attention's heads, and one ratio for every other layer
    solved so the MACs just fit (:func:`~slimnas.compress._allocate.uniform_at_macs`). One
    ratio for every layer, rescaled to the budget, cannot land there: heads go whole, and a
    ratio a hair above half removes 3 of 4 heads. ``None`` without attention or a MAC limit
    (the uniform start stays one ratio for every layer)."""
    limits = mac_limits(budget)
    if not limits or not attention_heads(model):
        return None
    found = uniform_at_macs(model, input_shape, int(min(limits)))
    return None if found is None else found["ratios"]


def with_finetune(policy: CompressionPolicy, *, importance: str, lr: float) -> CompressionPolicy:
    """``policy`` with its pruning criterion and fine-tune learning rate replaced."""
    prune = {"ratio": 0.0, **policy.options("prune"), "importance": importance}
    return dataclasses.replace(policy.with_step("prune", prune), finetune_lr=lr)


def refine_finetune(model: nn.Module, policy: CompressionPolicy, data: DataSplits, *, importances: tuple[str, ...],
                    recipe: TrainSpec, epochs: int, seed: int, device: str,
                    lr_factors: tuple[float, ...] = REFINE_LR_FACTORS,
                    listener: Listener | None = None) -> tuple[CompressionPolicy, list[dict], float]:
    """Choose the criterion and the fine-tune learning rate for the chosen ratios with a
    medium-length fine-tune, on validation data: which channels to keep and how hard to retrain
    them rank differently after a few epochs than after many (a criterion that keeps what helps
    at once, like Taylor, wins short fine-tunes more often than long ones). ``listener`` hears
    of it as the ``refine`` phase, one step per fine-tune. Returns the best policy, every
    fine-tune's row and the best one's validation figure."""
    rows, best, quality = [], None, Quality.of(data.task)
    base_lr = policy.finetune_lr or recipe.lr
    reporter = [PhaseEpochs(listener, "refine", epochs)] if listener is not None else []
    with report_phase(listener, "refine", label="choosing the criterion and fine-tune learning rate",
                      total=len(importances) * len(lr_factors), unit="fine-tunes", epochs=epochs) as found:
        for importance in importances:
            for factor in lr_factors:
                cand = with_finetune(policy, importance=importance, lr=base_lr * factor)
                art = apply_policy(model, cand, data, teacher=model, epochs=epochs, seed=seed, device=device,
                                   train=recipe, callbacks=reporter)
                acc = measure_artifact(art, data, splits=("val",), latency_batches=())[quality.key]
                rows.append({"importance": importance, "lr": cand.finetune_lr, "epochs": epochs, quality.key: acc})
                if best is None or quality.better(acc, best[0]):
                    best = (acc, cand)
                if listener is not None:
                    listener.phase_progress("refine", len(rows), rows[-1])
        found.update({"importance": best[1].options("prune").get("importance"), "lr": best[1].finetune_lr,
                      quality.key: best[0]})
    return best[1], rows, best[0]


class AutoObjective(BaseTrialObjective):
    """One ``--auto`` trial: per-layer ratios, precisions and the criterion from the strategy;
    the MAC budget met by scaling the ratios; a short distilled fine-tune stopped early when it
    falls behind; validation accuracy of the quantized file in ONNX Runtime."""

    def __init__(self, model: nn.Module, data: DataSplits, settings: AutoSettings, budget: tuple[Budget, ...],
                 rule: str, listener: Listener | None = None, hardware: HardwareTarget | None = None, *,
                 measure: MeasureSettings, precision: PrecisionSensitivity | None = None) -> None:
        self.quality = Quality.of(data.task)  # validation accuracy, or the task's primary metric
        super().__init__(objectives=(self.quality.metric,), budget=budget, early_stopping=rule, listener=listener,
                         settings=measure)  # where latency is timed (runtime, threads, repeats)
        self.watched = (self.quality.key, self.quality.direction)
        self.model, self.data, self.auto, self.hardware = model, data, settings, hardware
        self.prunable = objective_layers(model, data)
        self.heads = attention_heads(model)  # attention (its query's name) -> heads: they go whole
        # precision genes for the layers quantization acts on (not GRU/LSTM: those stay fp32)
        # (named as pruning names them: split attention projections, GPT-2's Conv1D as Linear)
        self.layers = [n for n, m in executed_layers(split_view(model), data.input_shape) if isinstance(m, WEIGHTED)]
        # aimed at a device, int8 is decided for the chosen policy by what runs faster there
        self.precisions = list(settings.precisions) if hardware is None else ["fp32"]
        #: under a size budget the precisions allow meeting, each layer's precision is allocated
        #: per candidate from this (:meth:`fit_precision`) rather than searched
        self.mixed = precision

    def fit_precision(self, policy: CompressionPolicy) -> tuple[CompressionPolicy, PrecisionAllocation]:
        """``policy`` with each layer's precision allocated under the size budget for its pruned sizes."""
        pruned = pruned_model(self.model, prune_ratios(policy), self.data.input_shape)
        alloc = fit_precision(self.model, pruned, self.mixed, self.auto.precisions, size_limits(self.budget),
                              self.data)
        options = {**policy.options("quantize"), "mode": "fp32", "layer_precision": alloc.precision}
        policy = policy.with_step("quantize", options)
        # a palettized layer is clustered to its palette's size first: the fine-tune trains the
        # values its table will hold (the palette then keeps them exactly)
        steps = precision_steps()
        palettes = {n: 2 ** get_precision(p).bits for n, p in alloc.precision.items()
                    if p in steps and steps[p][0] == "palette"}
        if palettes:
            policy = policy.with_step("cluster", {"n_clusters": 2, "layer_clusters": palettes})
        return policy, alloc

    def policy(self, trial: optuna.Trial) -> CompressionPolicy:
        s = self.auto
        ratios = {n: trial.suggest_float(f"prune:{n}", 0.0, MAX_RATIO) for n in self.prunable}
        # a ratio removes ratio x heads rounded up (at least one head for any ratio > 0, and the
        # MAC budget's scaling keeps it > 0): one asking for less than half a head removes none,
        # so a trial can keep every head of an attention (with 4 heads: below 0.125)
        ratios = {n: 0.0 if n in self.heads and r * self.heads[n] < 0.5 else r for n, r in ratios.items()}
        precision = {} if self.mixed else {n: trial.suggest_categorical(f"precision:{n}", self.precisions)
                                           for n in self.layers}
        importance = trial.suggest_categorical("importance", list(s.importances))
        return CompressionPolicy.of(
            prune={"ratio": 0.0, "importance": importance, "layer_ratios": {n: r for n, r in ratios.items() if r > 0}},
            quantize={"mode": "fp32", "layer_precision": precision}, distill=s.distill, temperature=s.temperature)

    def __call__(self, trial: optuna.Trial) -> float:
        self.recording = False
        return self.guard(trial, lambda: self._evaluate(trial))

    def _evaluate(self, trial: optuna.Trial) -> float:
        t0, s = time.perf_counter(), self.auto
        self.listener.trial_started(trial.number, s.finetune_epochs)
        policy, predicted, batch = self.policy(trial), {}, 1
        if self.hardware is not None:  # the latency budget met by construction, on predicted latency
            policy, ms = self.hardware.fit(self.model, policy, self.data.input_shape, self.budget)
            predicted, batch = {"predicted_latency_ms": ms}, self.hardware.batch
        try:
            artifact, metrics, _ = compress_and_measure(
                self.model, policy, self.data, budget=self.budget, epochs=s.finetune_epochs,
                seed=s.seed * 100_003 + trial_place(trial), device=s.device, settings=self.settings,
                latency_batch=batch, names=self.tracked, use_full_budget=self.hardware is None, train=s.train,
                refit=(lambda p: self.fit_precision(p)[0]) if self.mixed else None,
                stoppers=lambda _: [EpochReporter(self.listener, trial.number), *self.stoppers(trial, s.finetune_epochs)])
        except optuna.TrialPruned:
            curve = trial.user_attrs.get("curve", [])
            self.listener.trial_finished(trial.number, "pruned", {self.quality.key: curve[-1]} if curve else {},
                                         round(time.perf_counter() - t0, 3))
            raise
        self.recording = True
        metrics.update(predicted)
        metrics["seconds"] = round(time.perf_counter() - t0, 3)
        self.record_constraints(trial, metrics)
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("policy", artifact.policy.to_dict())
        state = "complete" if feasible(metrics, self.budget) else "over budget"
        self.listener.trial_finished(trial.number, state, metrics, metrics["seconds"])
        return metrics[self.quality.key]


FLOOR_RATIO = 0.95  # the most a MAC budget's scaling removes from a layer (fit_to_macs)


def objective_layers(model: nn.Module, data: DataSplits) -> list[str]:
    """The layers --auto prunes: the same list the one-shot pruner and the sensitivity analysis use."""
    return [lay.name for lay in list_prunable_layers(model, data.input_shape)]


def _int8_layers(policy: CompressionPolicy) -> list[str]:
    options = policy.options("quantize") or {}
    if options.get("mode") == "int8":
        return ["*"]
    return [n for n, p in (options.get("layer_precision") or {}).items() if p == "int8"]


def _fp32_if_faster(artifact: CompressedModel, after: dict, latency: dict, data: DataSplits,
                    measure: MeasureSettings, names: Sequence[str] = ()) -> tuple[CompressedModel, dict, dict, str]:
    """The fine-tuned model as an fp32 file where its int8 file is slower than the input model and
    the fp32 file is faster than the int8 one (no byte budget asks for int8); with the reason."""
    options = dict(artifact.policy.options("quantize") or {})
    options.update(mode="fp32", layer_precision=dict.fromkeys(options.get("layer_precision") or {}, "fp32"))
    options.pop("int8_format", None)
    policy = artifact.policy.with_step("quantize", options)
    plain = CompressedModel(artifact.model, quantize_model(artifact.model, data.input_shape, mode="fp32"),
                            artifact.input_shape, policy, report=artifact.report, not_done=artifact.not_done,
                            did_nothing=artifact.did_nothing)
    batch = measure.latency_batch
    metrics = measure_artifact(plain, data, splits=("val",), latency_batches=(batch,), settings=measure, names=names)
    key = f"latency_ms_b{batch}"
    if metrics[key] < after[key]:
        metrics["val_loss"] = after.get("val_loss")
        change = latency_change({key: latency["batches"][str(batch)]["before_ms"]}, metrics,
                                runtime=latency["runtime"], threads=latency["threads"])
        return plain, metrics, change, (f"fp32 kept: the int8 file is slower than the input model "
                                        f"({latency['batches'][str(batch)]['ratio']:.2f}x its latency at batch "
                                        f"{batch}), the fp32 file of the same weights {change['batches'][str(batch)]['ratio']:.2f}x")
    return artifact, after, latency, (f"int8 kept: slower than the input model at batch {batch}, but the fp32 file "
                                      "of the same weights is slower still")


@takes_user_data  # train= / val= / test= Datasets or DataLoaders, train_step=, score_fn= (slimnas.compress._user_data)
def auto_compress(model: nn.Module, data: DataSplits, *, budget: list[str] | tuple[str, ...],
                  out: str | Path | None = None, storage: str | None = None, listener: Listener | None = None,
                  task: str | Task | None = None, **options) -> AutoResult:
    """Search a per-layer policy for ``model`` that meets ``budget`` with the best validation
    accuracy (measured in ONNX Runtime after quantization), then fine-tune it longer.

    Args:
        budget: constraints such as ``"macs<=50%"`` (relative to ``model``) or ``"bytes<=8KB"``.
        out: folder for ``report.json``, ``policy.json``, ``sensitivity.json``, ``model.onnx``,
            the compressed weights and the study (resumed when it exists).
        storage: an Optuna storage URL for the study (default: SQLite in ``out``, else in memory).
        listener: told about the run's progress; nothing is printed otherwise.
        task: what the model is trained for (a name, ``file.py:callable`` or a
            :class:`~slimnas.tasks.Task`; by default the data's own): the fine-tunes minimise its
            loss and distil with its term, the search maximises (or minimises) its primary metric
            (``val_r2``, ``val_mean_ap``, ``val_perplexity``), the sensitivity analysis and its
            tolerated drops read that metric (points of R² or mAP; the relative change of MSE or
            perplexity), and a budget may bound it (``"r2>=0.4"``); another task's metric is refused.
        **options: the fields of :class:`AutoSettings` (``n_trials``, ``strategy``,
            ``finetune_epochs``, ``final_epochs``, ...). The caller's model is left as it was.

    Example:
        >>> res = auto_compress(net, load_dataset("mnist1d"), budget=["macs<=50%"], n_trials=20)  # doctest: +SKIP
        >>> res.after["macs"] <= 0.5 * res.before["macs"]  # doctest: +SKIP
        True
    """
    s = AutoSettings(budget=tuple(budget), **options)
    s = dataclasses.replace(s, device=str(resolve_device(s.device)))  # 'auto' becomes what it picks
    data = with_task(data, task)
    check_task_objectives(data.task, [Budget.parse(b, "--budget").metric for b in s.budget], "--budget")
    model = as_slimnas_model(model, data.input_shape)  # token ids for a raw Hugging Face model; a dict's logits
    check_task_outputs(model, data)
    listener = listener or Listener()
    if s.distill and (note := no_distillation_note(data.task)):  # a detector's losses need its targets
        listener.note(note)
    model = copy.deepcopy(model).cpu().eval()
    out = Path(out) if out is not None else None
    storage = storage or (f"sqlite:///{out / 'study.db'}" if out is not None else None)
    stopping, note = resumed_setting(storage, "auto", "early_stopping", s.early_stopping, before=OLD_EARLY_STOPPING,
                                     default="none")
    rule = early_stopping_rule(stopping or "none", s.strategy)
    if note:
        listener.note(note)
    if out is not None:
        check_not_interrupted(out)  # a result cut short while being replaced: its backup holds the study
        out.mkdir(parents=True, exist_ok=True)
    profile = load_profile(s.device_profile, "--device-profile") if s.device_profile is not None else None
    measure, before, budgets = measure_input(model, data, s, profile, listener)
    listener.started({"kind": "auto", "data": data.summary(), "budget": [str(b) for b in budgets], "before": before,
                      "n_total": s.n_trials, "objectives": [Quality.of(data.task).metric]})
    sens = analyze_sensitivity(model, data, ratios=SENSITIVITY_RATIOS, listener=listener)
    listener.sensitivity(sens)
    check_reach(model, data, budgets, before, sens)
    allocated = allocate_macs(model, data, budgets, sens, listener)
    hardware = None
    if s.hardware_aware is not False:
        hardware = hardware_target(model, data, s, profile, budgets, before, sens, allocated, listener)
    mixed = None
    if mixed_precision(s.precisions, budgets):
        mixed = precision_sensitivity(model, data, s.precisions, listener=listener)
        first = allocate_precision(mixed, s.precisions, size_limits(budgets))
        listener.note("unpruned, " + allocation_summary(first, "estimated"))
    objective = AutoObjective(model, data, s, budgets, rule, listener, hardware=hardware, measure=measure,
                              precision=mixed)
    study, interrupted = search_policies(objective, sens, allocated, storage, out, stopping=stopping or "none")
    result = after_auto_study(objective, study, before, sens, out)
    result.interrupted = interrupted
    listener.finished({"kind": "auto", "interrupted": interrupted})
    return result


def measure_input(model: nn.Module, data: DataSplits, s: AutoSettings, profile,
                  listener: Listener) -> tuple[MeasureSettings, dict, tuple[Budget, ...]]:
    """Where latency is timed (the profile's runtime, threads and batch), the input model's
    metrics, and the budgets resolved against them (a share of the input model becomes its figure;
    the profile's limits join them)."""
    batch = profile.batch[0] if profile is not None else 1
    measure = MeasureSettings(runtime=profile.runtime if profile is not None else DEFAULT_RUNTIME,
                              threads=profile.threads if profile is not None else 1, latency_batch=batch,
                              latency_repeats=s.latency_repeats)
    texts = list(s.budget) + [b for b in (profile.limits if profile is not None else ()) if b not in s.budget]
    with report_phase(listener, "measure", label="measuring the input model in ONNX Runtime") as found:
        before = measure_artifact(apply_policy(model, CompressionPolicy(), data, epochs=0), data,
                                  splits=("val", "test"), latency_batches=(batch,), settings=measure,
                                  names=[Budget.parse(b, "--budget").metric for b in texts])
        key = Quality.of(data.task).key
        found.update({key: before[key]}, macs=before["macs"], bytes=before["bytes"])
    budgets = tuple(Budget.parse(b, "--budget").resolve(before) for b in texts)
    if latency_limits(budgets) and min(latency_limits(budgets)) > before["latency_ms"]:
        # under a latency budget the result is never slower than the input model
        budgets += (Budget("latency_ms", "<=", before["latency_ms"]),)
        listener.note(f"the latency budget allows more than the input model's {before['latency_ms']:.4f} ms: a "
                      "policy slower than the input model counts as over budget")
    return measure, before, budgets


def check_reach(model: nn.Module, data: DataSplits, budgets: tuple[Budget, ...], before: dict,
                sens: SensitivityResult) -> None:
    """Refuse, in one line, a MAC budget structured pruning cannot reach on this model."""
    limits = mac_limits(budgets)
    if not limits or min(limits) >= before["macs"]:
        return
    if not any(sens.curves.values()):
        probe = StructuredPruner(ratio=0.5).fit(model, input_shape=data.input_shape)
        why = "; ".join(f"{layer}: {reason}" for layer, reason in probe.not_done().items()) or "no prunable layer"
        raise ConfigError("--budget", "a MAC budget structured pruning can reach (it can remove nothing from this "
                          f"model: {why})", [str(b) for b in budgets])
    floor = pruned_macs(model, dict.fromkeys(objective_layers(model, data), FLOOR_RATIO), data.input_shape)
    if floor > min(limits):
        raise ConfigError("--budget", f"a MAC budget structured pruning can reach (with {FLOOR_RATIO:.0%} of every "
                          f"prunable layer's channels removed this model still has {floor:,} MACs, "
                          f"{floor / before['macs']:.0%} of its {before['macs']:,})", [str(b) for b in budgets])


def allocate_macs(model: nn.Module, data: DataSplits, budgets: tuple[Budget, ...], sens: SensitivityResult,
                  listener: Listener) -> dict[str, float] | None:
    """Per-layer ratios that meet the MAC budget, allocated by sensitivity (``None``: no MAC budget)."""
    limits = mac_limits(budgets)
    if not limits:
        return None
    with report_phase(listener, "allocate", label="allocating channels to the MAC budget by sensitivity",
                      total=100, unit="% of the cut") as found:
        allocated = allocate_by_sensitivity(
            model, sens, data.input_shape, int(min(limits)), max_ratio=MAX_RATIO,
            progress=lambda done, info: listener.phase_progress("allocate", done, info))
        found["macs"] = pruned_macs(model, allocated, data.input_shape)
    return allocated


def hardware_target(model: nn.Module, data: DataSplits, s: AutoSettings, profile, budgets: tuple[Budget, ...],
                    before: dict, sens: SensitivityResult, allocated: dict[str, float] | None,
                    listener: Listener) -> HardwareTarget | None:
    """The latency predictor, allocation and channel rounding the search aims at (``None``, with
    a note, where the latency table cannot time the model and hardware-awareness was not required)."""
    batch = profile.batch[0] if profile is not None else 1
    with report_phase(listener, "hardware", label="choosing channel counts and precisions the runtime runs fast "
                      f"(batch {batch})") as found:
        try:
            hardware = prepare_target(model, data, profile=profile, budgets=budgets, before=before, sens=sens,
                                      batch=batch, threads=profile.threads if profile is not None else 1,
                                      mac_ratios=allocated)
        except (ValueError, RuntimeError, SlimnasError) as e:  # an operator the latency table cannot time
            if s.hardware_aware:
                raise ConfigError("--hardware-aware", "a model whose operators the latency table can time",
                                  f"{type(e).__name__}: {e}") from None
            found["off"], hardware = f"{type(e).__name__}: {e}", None
    if hardware is None:
        listener.note(f"runtime-friendly channel counts are off: the latency table cannot time this model "
                      f"({found['off']}); channel counts and precisions are the search's", level="warning")
    elif hardware.allocation is not None:
        listener.note(allocation_note(hardware.allocation, batch))
    if hardware is not None and hardware.mac_rounding is not None:
        r = hardware.mac_rounding.rounding
        listener.note(f"channel rounding under the MAC budget (batch {batch}): "
                      f"{'none' if r == 1 else f'multiples of {r}'} ({hardware.mac_rounding.reason})")
    return hardware


def allocation_note(a, batch: int) -> str:
    """The latency allocation on the target, in words."""
    return (f"latency allocation on the target (batch {batch}): predicted {a.base_ms:.4f} -> "
            f"{a.predicted_ms:.4f} ms (target {a.target_ms:.4f}), channels "
            + ", ".join(f"{k} {a.original[k]}->{v}" for k, v in a.widths.items())
            + f", rounding to multiples of {a.rounding}"
            + ("" if a.measured_share is None else
               f"; timed here at {a.measured_share:.0%} of the input model's latency (target "
               f"{a.target_ms / a.base_ms:.0%}, {len(a.checks)} allocation(s) timed)")
            + ("" if a.met else f"; the target is {'measured' if a.measured_share is not None else 'predicted'} "
               "out of reach by pruning alone"
               + (": the fastest allocation timed is kept" if a.floor_ms is None else
                  f" (the fastest pruning reaches is predicted at {a.floor_ms / a.base_ms:.0%} of the "
                  "input model's latency): pruning stops at the knee, where 1% more of the latency would "
                  "cost more than 1% of the accuracy (by the sensitivity analysis)")))


def search_policies(objective: AutoObjective, sens: SensitivityResult, allocated: dict[str, float] | None,
                    storage: str | None, out: Path | None, *, stopping: str) -> tuple[optuna.Study, bool]:
    """Run (or resume) the study of per-layer policies, warm-started from the sensitivity
    analysis; returns the study and whether a Ctrl-C stopped it (``stopping``: the early-stopping
    rule's name, kept with the study so a resume uses the same)."""
    s, listener, hardware = objective.auto, objective.listener, objective.hardware
    spec = StudySpec(name="auto", storage=storage or (f"sqlite:///{out / 'study.db'}" if out is not None else None),
                     objectives=(objective.quality.metric,), strategy=s.strategy,
                     early_stopping=objective.early_stopping,
                     seed=s.seed, max_epochs=max(1, s.finetune_epochs), space=None,
                     n_startup_trials=len(WARM_DROPS) + 2, population_size=max(4, min(20, s.n_trials // 3)),
                     field="--strategy")
    study = open_study(spec)
    keep_setting(study, "early_stopping", stopping)
    if not study.trials:
        if hardware is not None and hardware.allocation is not None:
            allocated = hardware.allocation.ratios
        with quiet_optuna():
            uniform = uniform_start(objective.model, objective.data.input_shape, objective.budget)
            for params in warm_starts(sens, objective.prunable, [] if objective.mixed else objective.layers,
                                      objective.precisions,
                                      list(s.importances), allocated, uniform):
                study.enqueue_trial(params, skip_if_exists=True)
    with report_phase(listener, "search", label="searching per-layer policies", total=s.n_trials, unit="trials",
                      done=n_finished(study), trials=progress_rows(study, objective.budget)) as found:
        interrupted = run_study(study, objective, n_trials=s.n_trials, timeout=s.timeout)
        found["interrupted"] = interrupted
    if interrupted:
        listener.note("interrupted: completed trials are kept; the chosen policy so far is fine-tuned now",
                      level="warning")
    return study, interrupted


class AutoAfter(AfterStudy):
    """``--auto`` after its study: the one best policy (or, with none in budget, the closest, or
    the knee of an out-of-reach latency target); its criterion and fine-tune learning rate
    refined, its precision chosen on the target; the final fine-tune; tested once; written."""

    def __init__(self, objective: AutoObjective, study: optuna.Study, before: dict, sens: SensitivityResult,
                 out: Path | None) -> None:
        super().__init__((objective.quality.metric,), objective.budget, n_closest=1)
        self.objective, self.study, self.before, self.sens, self.out = objective, study, before, sens, out
        self.s, self.listener, self.hardware = objective.auto, objective.listener, objective.hardware
        self.choice: dict = {}
        self.in_budget = False
        self.allocation: PrecisionAllocation | None = None

    def choose(self, trials):
        front, closest = super().choose(trials)
        if not front and not closest:
            raise ConfigError("--n-trials", "at least one completed trial", 0)
        best, hardware, self.in_budget = (front or closest)[0], self.hardware, bool(front)
        if front:
            return [best], []
        if hardware is not None and hardware.allocation is not None and not hardware.allocation.met:
            q = self.objective.quality
            knee, self.choice = knee_choice(trials, self.budget, self.before,
                                            None if q.relative or q.direction != "maximize" else q.key)
            best = knee or best
        if self.choice:
            self.listener.note(f"No policy meets the budget: its latency limit is out of reach by pruning. Kept: "
                               f"trial {best.number}, the best trade at the knee (1% of the latency worth 1% of the "
                               f"accuracy): {self.choice['latency_share']:.0%} of the input model's latency at "
                               f"{self.choice['val_share']:.0%} of its validation {self.objective.quality.display}.",
                               level="warning")
        else:
            self.listener.note(f"No policy meets the budget; the closest one (trial {best.number}) follows.",
                               level="warning")
        return [], [best]

    def refine(self, trial) -> tuple[CompressionPolicy, TrainSpec, list[dict], dict | None]:
        s, model, data, listener = self.s, self.objective.model, self.objective.data, self.listener
        policy, recipe, rows = CompressionPolicy.from_dict(trial.user_attrs["policy"]), s.recipe, []
        refine_epochs = s.refine_horizon
        if refine_epochs > 0 and (self.in_budget or self.choice):
            q, best = self.objective.quality, None
            for t in [trial, *self.runners_up(trial)]:
                found, tried, top = refine_finetune(model, CompressionPolicy.from_dict(t.user_attrs["policy"]), data,
                                               importances=s.importances, recipe=recipe, epochs=refine_epochs,
                                               seed=s.seed, device=s.device, listener=listener)
                rows += [{**r, "trial": t.number} for r in tried]
                if best is None or q.better(top, best[0]):
                    best = (top, found, t.number)
            policy = best[1]

            def trial_of(number: int) -> str:  # named only where several trials were refined
                return f"trial {number} " if s.refine_top > 1 else ""

            listener.note(f"criterion and fine-tune learning rate for the chosen ratios ({refine_epochs}-epoch "
                          f"fine-tunes, validation {q.display}): "
                          + ", ".join(f"{trial_of(r['trial'])}{r['importance']} lr {r['lr']:g}: {r[q.key]:.3f}"
                                      for r in rows)
                          + f" -> {trial_of(best[2])}{policy.options('prune').get('importance')}, "
                          f"lr {policy.finetune_lr:g}")
        if policy.finetune_lr > 0:
            recipe = dataclasses.replace(recipe, lr=policy.finetune_lr)
        hw_report = None
        if self.objective.mixed is not None:  # allocated under the size budget, as in the trials
            policy, self.allocation = self.objective.fit_precision(policy)
            listener.note(allocation_summary(self.allocation))
        if self.hardware is not None and self.objective.mixed is not None:
            hw_report = {**self.hardware.to_dict(), "precision": {
                "reason": "per layer, allocated under the size budget by sensitivity (report.json: precision_allocation)",
                "int8_format": "qdq"}}
        elif self.hardware is not None:
            policy, precision = choose_final_precision(self.hardware, model, policy, data, self.budget,
                                                       allowed=s.precisions)
            hw_report = {**self.hardware.to_dict(), "precision": precision}
            listener.note(f"precision on the target: {precision['reason']} (int8 format {precision['int8_format']})")
        if hw_report is not None and self.choice:
            hw_report["chosen_out_of_reach"] = self.choice
        return policy, recipe, rows, hw_report

    def runners_up(self, trial) -> list:
        """The next ``refine_top - 1`` best completed in-budget trials after ``trial``, each with
        channel counts no trial before it in that order has (ratios that prune to the same
        counts are the same shape)."""
        if self.s.refine_top <= 1 or not self.in_budget:
            return []
        model, shape, q = self.objective.model, self.objective.data.input_shape, self.objective.quality
        ok = [t for t in self.trials if t.state == optuna.trial.TrialState.COMPLETE and t.values
              and "policy" in t.user_attrs and feasible(t.user_attrs["metrics"], self.budget)]
        sign = -1.0 if q.direction == "maximize" else 1.0

        def widths(t) -> tuple:  # the pruned model's weight shapes (heads go whole: ratios are not counts)
            ratios = prune_ratios(CompressionPolicy.from_dict(t.user_attrs["policy"]))
            return tuple((n, tuple(w.shape)) for n, w in pruned_model(model, ratios, shape).named_parameters())

        seen, out = {widths(trial)}, []
        for t in sorted(ok, key=lambda t: (sign * t.values[0], t.number)):
            if len(out) == self.s.refine_top - 1:
                break
            counts = widths(t)
            if counts not in seen:
                seen.add(counts)
                out.append(t)
        return out

    def finetune(self, trial, refined) -> dict:
        (policy, recipe, rows, hw_report), s, o = refined, self.s, self.objective  # the policy fine-tuned
        measure, data = o.settings, o.data
        torch.manual_seed(s.seed)
        artifact, after, decisions = compress_and_measure(
            o.model, policy, data, budget=(), epochs=s.final_epochs, seed=s.seed, device=s.device,
            settings=measure, names=o.tracked, train=recipe, listener=self.listener,
            phase="finetune", label="final fine-tune", keep_best=True)
        latency = latency_change(self.before, after, runtime=measure.runtime, threads=measure.threads)
        if latency["slower_at"] and _int8_layers(artifact.policy) and self.allocation is None:
            if bytes_limit(self.budget) is None:
                artifact, after, latency, note = _fp32_if_faster(artifact, after, latency, data, measure, o.tracked)
                decisions = layer_decisions(o.model, artifact) if note.startswith("fp32") else decisions
            else:
                note = ("int8 kept although it is slower here: the budget asks for bytes "
                        f"({', '.join(str(b) for b in self.budget if b.metric in ('bytes', 'int8_bytes'))}) over speed")
            self.listener.note(note, level="warning")
            policy = artifact.policy  # fp32 where that was faster
            if hw_report is not None:
                hw_report["precision"]["final_check"] = note
        if self.hardware is not None:
            with one_thread():
                after["predicted_latency_ms"] = self.hardware.predictor.predict(artifact.model, data.input_shape,
                                                                                batch=measure.latency_batch).ms
            hw_report["measured_latency_ms"] = after.get("latency_ms")
            hw_report["predicted_latency_ms"] = after["predicted_latency_ms"]
        return {"artifact": artifact, "policy": policy, "after": after, "latency": latency, "recipe": recipe,
                "rows": rows,
                "hardware": hw_report, "decisions": with_precision_reasons(attach_sensitivity(decisions, self.sens),
                                                                           self.allocation)}

    def test(self, trial, final: dict) -> dict:
        data = self.objective.data
        final["after"].update(test_scores(data, final["artifact"].onnx))
        return final

    def write(self, front, closest, members) -> AutoResult:
        best = (front or closest)[0]
        f = members[best.number]
        warnings = [w for w in [slower_warning(f["latency"], self.budget)] if w]  # the command line prints them with its table
        result = AutoResult(f["policy"], self.before, f["after"], f["artifact"], self.study, self.sens,
                            f["decisions"], self.budget, self.out, f["recipe"], f["rows"], trial=best.number,
                            hardware=f["hardware"], latency=f["latency"], warnings=warnings,
                            precision=None if self.allocation is None else {
                                **self.allocation.to_dict(), "sensitivity": self.objective.mixed.to_dict()})
        if self.out is not None:
            write_auto(self.out, result, self.listener, self.objective.data)
        return result


def after_auto_study(objective: AutoObjective, study: optuna.Study, before: dict, sens: SensitivityResult,
                     out: Path | None) -> AutoResult:
    """The sequence after the study (:class:`~slimnas.study._after.AfterStudy`) for ``--auto``."""
    return AutoAfter(objective, study, before, sens, out).run(study.get_trials(deepcopy=False))


def write_auto(out: Path, result: AutoResult, listener: Listener, data: DataSplits) -> None:
    """``policy.json``, ``model.onnx`` and the compressed weights, ``sensitivity.json`` and
    ``report.json`` in ``out``."""
    budget = [str(b) for b in result.budget]
    with report_phase(listener, "export", label="writing the compressed model and reports", out=str(out)), \
            staged_result(out, data.input_shape, data.n_classes) as stage:  # one unit: old or new, never a mix
        extra = {} if result.precision is None else {"precision_allocation": {
            k: result.precision[k] for k in ("met", "estimated", "limits")}}
        write_artifact(stage, result.artifact, result.decisions, {"trial": result.trial, "budget": budget, **extra})
        write_json(stage / "sensitivity.json", result.sensitivity.to_dict())
        n_done = len([t for t in result.study.get_trials(deepcopy=False)
                      if t.state == optuna.trial.TrialState.COMPLETE])
        write_json(stage / "report.json", {"before": result.before, "after": result.after, "budget": budget,
                                         "feasible": result.feasible, "trial": result.trial,
                                         "n_trials": n_done, "finetune": result.train.to_dict(),
                                         "refine": result.refine, "policy": result.policy.to_dict(),
                                         "latency_change": result.latency, "warnings": result.warnings,
                                         **({"hardware": result.hardware} if result.hardware is not None else {}),
                                         **({"precision_allocation": result.precision}
                                            if result.precision is not None else {})})


def mixed_precision(precisions: Sequence[str], budgets: Sequence[Budget]) -> bool:
    """Whether ``--auto`` allocates each layer's precision under a size budget: a ``bits`` budget,
    or a ``bytes`` budget with a precision other than fp32 and int8 to choose from."""
    limits = size_limits(budgets)
    return "bits" in limits or ("bytes" in limits and bool(set(precisions) - {"fp32", "int8"}))


def allocation_summary(alloc: PrecisionAllocation, sizes: str = "its file") -> str:
    """The allocation in one line: per-layer precisions, the sizes (``sizes``: of what), whether the limits are met."""
    est = ", ".join(f"{m} {alloc.estimated[m]:g} (limit {lim:g})" for m, lim in alloc.limits.items())
    return ("precision per layer under the size budget (by each layer's measured sensitivity): "
            + ", ".join(f"{n} {p}" for n, p in alloc.precision.items()) + f"; {sizes}: {est}"
            + ("" if alloc.met else "; the budget is out of reach at the lowest precisions allowed"))


def with_precision_reasons(decisions: list[dict], alloc: PrecisionAllocation | None) -> list[dict]:
    """Each layer's row with why its precision was chosen and what each precision cost it alone."""
    if alloc is None:
        return decisions
    out = []
    for row in decisions:
        why = alloc.reasons.get(row["layer"])
        out.append({**row, **({"precision_reason": why["reason"], "precision_sensitivity": why["by_precision"]}
                              if why else {})})
    return out

