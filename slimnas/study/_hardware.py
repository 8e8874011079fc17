"""``compress --auto`` aimed at a device: latency budgets met by construction on the target's
predicted latency (HALP-style), channel counts rounded where the runtime rewards it, int8 only
where it is faster or the byte budget needs it.

Without a device profile with a table, the target is this machine: a latency table is measured
on demand (each operator the first time a candidate needs it) and calibrated on the input model
and a few pruned copies of it, and the latency allocation that warm-starts the search is timed as
a file here and allocated again where it misses the budget's share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from optuna.trial import FrozenTrial, TrialState
from torch import nn

from slimnas.compress import (
    CompressionPolicy,
    LatencyAllocation,
    PrecisionChoice,
    SensitivityResult,
    allocate_by_latency,
    choose_precision,
    fit_to_latency,
    list_prunable_layers,
    measured_share,
    prune_ratios,
    pruned_model,
    sensitivity_cost,
)
from slimnas.compress._allocate import fit_to_macs, mac_limits
from slimnas.compress._base import WEIGHTED
from slimnas.compress._hardware import MacRounding, choose_mac_rounding
from slimnas.compress._prune import executed_layers
from slimnas.config import DEFAULT_RUNTIME, DeviceProfile
from slimnas.config._names import DEFAULT_PRECISIONS
from slimnas.data import DataSplits
from slimnas.measure import (
    Budget,
    LatencyPredictor,
    one_thread,
    onthefly_predictor,
    profile_predictor,
)
from slimnas.study._pareto import feasible

#: uniform ratios of the pruned copies that calibrate a table measured here
CALIBRATION_RATIOS = (0.0, 0.25, 0.5, 0.7)


@dataclass
class HardwareTarget:
    """Where the compressed model must run fast: the predictor, the batch and threads latency
    is measured at, the latency target in the predictor's terms, the chosen channel rounding."""

    predictor: LatencyPredictor
    batch: int = 1
    threads: int = 1
    runtime: str = DEFAULT_RUNTIME  # where latency is timed (the profile's runtime)
    precisions: tuple[str, ...] = DEFAULT_PRECISIONS  # what the target runs (the profile's)
    base_ms: float = 0.0  # predicted latency of the input model
    target_ms: float | None = None  # predicted-latency target (None: no latency budget)
    allocation: LatencyAllocation | None = None
    mac_rounding: MacRounding | None = None  # under a MAC budget without a latency one
    profile: str | None = None
    notes: dict = field(default_factory=dict)

    @property
    def fit_target_ms(self) -> float | None:
        """The predicted latency candidates are fitted to. Where the latency allocation was timed
        here and met the budget, the budget's target corrected by the table's error its timing
        measured there (``predicted / measured``, as the allocation re-aimed itself): fitted to
        the raw target, a candidate holding the allocation's own channel counts was cut further
        wherever the table over-predicts (a 2-D CNN at batch 64 and 30% of its latency lost a
        latency drop of 0.97x its MAC drop that way: 0.82x). Where pruning cannot reach the
        budget (the allocation stopped at its knee, ``floor_ms`` set), the knee's predicted
        latency: chased towards the floor, every candidate would pay most of its accuracy for a
        few percent of latency (the paper CNN asked for half its batch-1 latency got 22% test
        accuracy at 0.77 of it). Else the budget's target."""
        a = self.allocation
        if self.target_ms is not None and a is not None and a.floor_ms is not None:
            return max(self.target_ms, a.predicted_ms)
        if self.target_ms is None or a is None or a.measured_share is None or not a.met or a.measured_share <= 0:
            return self.target_ms
        return self.target_ms * (a.predicted_ms / a.base_ms) / a.measured_share

    @property
    def rounding(self) -> int:
        if self.allocation is not None:
            return self.allocation.rounding
        return self.mac_rounding.rounding if self.mac_rounding is not None else 1

    def fit(self, model: nn.Module, policy: CompressionPolicy, input_shape,
            budgets=()) -> tuple[CompressionPolicy, float]:
        """``policy`` with its ratios scaled to the MAC budget (all of it used) and then to the
        latency target, channel counts rounded, and its predicted latency."""
        with one_thread():
            policy = fit_to_macs(model, policy, input_shape, budgets, use_full_budget=True, rounding=self.rounding)
            if self.target_ms is None:
                pruned = pruned_model(model, prune_ratios(policy), input_shape)
                return policy, self.predictor.predict(pruned, input_shape, batch=self.batch).ms
            return fit_to_latency(model, policy, input_shape, self.predictor, self.fit_target_ms, batch=self.batch,
                                  rounding=self.rounding)

    def to_dict(self) -> dict:
        return {"profile": self.profile, "runtime": self.runtime, "batch": self.batch, "threads": self.threads,
                "predictor": self.predictor.describe(), "base_predicted_ms": round(self.base_ms, 6),
                "target_predicted_ms": None if self.target_ms is None else round(self.target_ms, 6),
                "fit_target_predicted_ms": None if self.fit_target_ms is None else round(self.fit_target_ms, 6),
                "allocation": self.allocation.to_dict() if self.allocation else None,
                **({"mac_rounding": self.mac_rounding.to_dict()} if self.mac_rounding else {}), **self.notes}


def latency_limits(budgets) -> list[float]:
    return [b.limit for b in budgets if b.metric == "latency_ms" and b.op in ("<=", "<")]


def prepare_target(model: nn.Module, data: DataSplits, *, profile: DeviceProfile | None, budgets: tuple[Budget, ...],
                   before: dict, sens: SensitivityResult | None, batch: int, threads: int,
                   mac_ratios: dict[str, float] | None = None) -> HardwareTarget:
    """The target for ``model``: the profile's predictor (if it has a calibrated table at
    ``batch``), else one measured here; under a latency budget, the latency allocation that
    warm-starts the search (its rounding is the one candidates are scaled with); under a MAC
    budget only, the channel rounding that makes ``mac_ratios`` (the allocation at the budget)
    fastest on the target, where it measurably does."""
    shape = data.input_shape
    runtime = profile.runtime if profile is not None else DEFAULT_RUNTIME
    predictor = profile_predictor(profile, "--device-profile") if profile is not None else None
    if predictor is not None and not predictor.supports(batch, "fp32"):
        predictor = None
    here = predictor is None  # the target is this machine: the allocation is also timed here
    with one_thread():
        if predictor is None:
            widths = [lay.name for lay in list_prunable_layers(model, shape)]
            copies = [pruned_model(model, dict.fromkeys(widths, r), shape) if r > 0 else model
                      for r in CALIBRATION_RATIOS]
            predictor = onthefly_predictor([(m, shape) for m in copies], runtime=runtime, batches=(batch,),
                                           threads=threads)
        base = predictor.predict(model, shape, batch=batch).ms
        target = HardwareTarget(predictor, batch=batch, threads=threads, runtime=runtime, base_ms=base,
                                precisions=tuple(profile.precisions) if profile is not None else DEFAULT_PRECISIONS,
                                profile=profile.name if profile is not None else None)
        limits = latency_limits(budgets)
        if limits:
            # the budget is on measured latency; the predictor may be off by a constant factor here,
            # so the target is the same share of the input model's predicted latency
            target.target_ms = base * min(limits) / before["latency_ms"]
            target.allocation = allocate_by_latency(
                model, shape, predictor, target.target_ms, batch=batch, cost_fn=sensitivity_cost(sens),
                measure=measured_share(model, shape, batch=batch, threads=threads, runtime=runtime) if here else None)
        elif mac_ratios and mac_limits(budgets):
            target.mac_rounding = choose_mac_rounding(
                model, shape, predictor, mac_ratios, int(min(mac_limits(budgets))), batch=batch,
                measure=measured_share(model, shape, batch=batch, threads=threads, runtime=runtime) if here else None)
    return target


def knee_choice(trials, budgets, before: dict, key: str | None = "val_accuracy") -> tuple[FrozenTrial | None, dict]:
    """Where no policy meets the budget because its latency limit is out of reach by pruning,
    the policy with the best trade by the knee's rule (1% of the input model's latency is worth
    1% of its accuracy): the highest ``val_accuracy / before's - latency_ms / before's`` among
    the completed trials that meet every other budget. Candidates under such a budget were all
    fitted to the allocation's knee, so the one that misses the latency limit least (the
    "closest") is the fastest by a few percent of timing noise, whatever it paid in accuracy.
    ``(None, {})`` where no trial meets the other budgets; else the trial and its figures. ``key``:
    the quality figure (another task's ``val_<primary>``; ``None``: one without shares, no knee)."""
    others = [b for b in budgets if b.metric != "latency_ms"]
    if key is None:  # a task's metric without a points scale (MSE, perplexity): no knee by shares
        return None, {}
    base_acc, base_ms = before.get(key) or 0.0, before.get("latency_ms") or 0.0
    if base_acc <= 0 or base_ms <= 0:
        return None, {}
    rows = []
    for t in trials:
        m = t.user_attrs.get("metrics")
        if t.state != TrialState.COMPLETE or not m or m.get("latency_ms") is None or not feasible(m, others):
            continue
        acc_share, ms_share = m[key] / base_acc, m["latency_ms"] / base_ms
        rows.append((acc_share - ms_share, -t.number, t, acc_share, ms_share))
    if not rows:
        return None, {}
    score, _, best, acc_share, ms_share = max(rows, key=lambda r: (r[0], r[1]))
    return best, {"rule": "knee", "trial": best.number, "score": round(score, 4), "val_share": round(acc_share, 4),
                  "latency_share": round(ms_share, 4), "n_candidates": len(rows)}


def bytes_limit(budgets) -> float | None:
    limits = [b.limit for b in budgets if b.metric in ("bytes", "int8_bytes") and b.op in ("<=", "<")]
    return min(limits) if limits else None


def choose_final_precision(target: HardwareTarget, model: nn.Module, policy: CompressionPolicy, data: DataSplits,
                           budgets, allowed: Sequence[str] = DEFAULT_PRECISIONS) -> tuple[CompressionPolicy, dict]:
    """The chosen ratios' model gets int8 only on layers whose int8 kernel is faster on the
    target (measured as a whole file against fp32), or where the byte budget needs it; of the
    precisions the target runs and ``allowed`` (``--precision``): fp32 everywhere where int8 is
    not among them, int8 everywhere where fp32 is not (an int8-only device)."""
    shape = data.input_shape
    runs = [p for p in target.precisions if p in allowed]
    pruned = pruned_model(model, prune_ratios(policy), shape)
    if "int8" not in runs:
        names = [n for n, m in executed_layers(pruned, shape) if isinstance(m, WEIGHTED)]
        choice = PrecisionChoice(dict.fromkeys(names, "fp32"), reason=f"fp32: int8 is not among the precisions the "
                                 f"target runs and --precision allows ({runs or ['fp32']})")
    else:
        with one_thread():
            choice = choose_precision(pruned, shape, predictor=target.predictor, batch=target.batch,
                                      threads=target.threads, calibration=data.x_train, bytes_limit=bytes_limit(budgets))
        if "fp32" not in runs:
            choice.layer_precision = dict.fromkeys(choice.layer_precision, "int8")
            choice.reason = f"int8: the target runs int8 only ({choice.reason})"
    options = dict(policy.options("quantize") or {"mode": "fp32"})
    options.update(mode="fp32", layer_precision=choice.layer_precision)
    if choice.any_int8:
        options["int8_format"] = choice.int8_format
    return policy.with_step("quantize", options), choice.to_dict()
