"""Building a device profile on the device (``slimnas device profile``), checking one, and the
predictor a profile gives.

The table holds the operator configurations the search space can produce: architectures are
sampled from the space until new ones stop adding operators, and every distinct operator is
timed alone at each batch size and precision (as Once-for-All and nn-Meter build theirs). Then
whole models of the space are measured: some calibrate the per-model terms of the predictor,
the others, held out, measure how good its predictions are (the profile keeps that accuracy).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import optuna
import torch
from torch import nn

from slimnas.config import DEFAULT_RUNTIME, DeviceProfile, precision_names
from slimnas.config._profile import read_profile
from slimnas.errors import ConfigError
from slimnas.measure._latency import (
    RUNTIMES,
    InterleavedTimer,
    OnnxRuntimeInt8Latency,
    OnnxRuntimeLatency,
    OnnxRuntimeRowsLatency,
    interleaved_latency,
)
from slimnas.measure._machine import machine_info
from slimnas.measure._metric import Budget
from slimnas.measure._ops import OpConfig, model_ops, one_thread
from slimnas.measure._optime import NULL_OP, op_model, time_onnx_bound, time_op
from slimnas.measure._predictor import (
    MAX_PROFILE_ERROR,
    LatencyPredictor,
    LatencyTable,
    Overhead,
    accuracy,
    calibrate,
    cond_key,
    untrusted,
)
from slimnas.models import build_model
from slimnas.spaces import SearchSpace

#: runtimes whose operators are timed in ONNX Runtime (the others: eager PyTorch modules)
ORT_RUNTIMES = (OnnxRuntimeLatency.name, OnnxRuntimeInt8Latency.name, OnnxRuntimeRowsLatency.name)

Progress = Callable[[str, int, int], None]

#: rounds over the operators, and over the whole models, whose fastest a profile keeps
ROUNDS = 3


def _quiet(stage: str, done: int, total: int) -> None:
    return None


#: what to do about a profile whose predictor is too far off
REBUILD = ("build it again on the device with more calibration models "
           "(`slimnas device profile --n-calibration 24 --n-check 24`, the defaults)")


def error_text(column: str, acc: dict) -> str:
    """A held-out error in words: ``mean error 2,053,920% at 1/fp32 over 4 held-out models``."""
    return f"mean error {float(acc['mape']):,.0%} at {column} over {acc.get('n_models', '?')} held-out models"


def check_profile(profile: DeviceProfile, field: str = "device_profile") -> tuple[Budget, ...]:
    """Resolve a profile's names: its runtime must be registered and run each of its
    precisions, its limits must be budgets on registered metrics. Returns the limits."""
    if profile.runtime not in RUNTIMES:
        raise ConfigError(f"{field}.runtime", f"one of {RUNTIMES.names()}", profile.runtime)
    supported = RUNTIMES.get(profile.runtime).precisions
    for p in profile.precisions:
        if p not in supported and not (p == "int8" and profile.runtime == OnnxRuntimeInt8Latency.name):
            raise ConfigError(f"{field}.precisions", f"precisions {profile.runtime} runs ({list(supported)})", p)
    # the low-bit precisions (int4, palette1-8) are registered by their compressors, which
    # importing slimnas loads
    from slimnas.export import list_export_formats

    for p in profile.weight_precisions:
        if p not in precision_names():
            raise ConfigError(f"{field}.weight_precisions", f"a list from {list(precision_names())}", p)
    for f in profile.formats:
        if f not in list_export_formats():
            raise ConfigError(f"{field}.formats", f"export formats from {list_export_formats()}", f)
    table_of(profile, field)
    return tuple(Budget.parse(b, f"{field}.limits") for b in profile.limits)


def load_profile(name_or_path: str | Path, field: str = "device_profile") -> DeviceProfile:
    """A checked profile by built-in name or path (see :func:`slimnas.config.read_profile`)."""
    profile = read_profile(name_or_path, field)
    check_profile(profile, field)
    return profile


def profile_precision(profile: DeviceProfile) -> str:
    """The precision a run targeting ``profile`` measures at (int8 for int8-only devices)."""
    return "int8" if profile.runtime == OnnxRuntimeInt8Latency.name or set(profile.precisions) == {"int8"} else "fp32"


def table_of(profile: DeviceProfile, field: str = "device_profile") -> LatencyTable:
    """The profile's table; an entry whose operator group slimnas cannot read is one line."""
    for i, e in enumerate(profile.table):
        try:
            OpConfig.from_dict(e)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{field}.table[{i}].op", "an operator group slimnas writes", str(err)) from None
    return LatencyTable.from_entries(profile.table)


def profile_predictor(profile: DeviceProfile, field: str = "device_profile") -> LatencyPredictor | None:
    """The predictor of a profile's table, or ``None`` for a profile without one. A profile whose
    predictor missed its held-out models by more than :data:`MAX_PROFILE_ERROR` is refused in
    one line (its predictions would skip good candidates untrained)."""
    if not profile.has_table or not profile.overhead:
        return None
    bad = untrusted(profile.accuracy)
    if bad is not None:
        raise ConfigError(field, f"a device profile whose latency predictor is within {MAX_PROFILE_ERROR:.0%} of "
                          f"its held-out models; {REBUILD}", f"{profile.source or profile.name}: {error_text(*bad)}")
    table = table_of(profile)
    overhead = {k: Overhead.from_dict(v) for k, v in profile.overhead.items()}
    info = {"profile": profile.name, "runtime": profile.runtime, "threads": profile.threads,
            "machine": profile.machine.get("cpu", ""), "host": profile.machine.get("host", ""),
            "accuracy": profile.accuracy}
    return LatencyPredictor(table, overhead, info=info)


def sample_architectures(space: SearchSpace, input_shape: tuple[int, ...], n_classes: int, n: int, *,
                         seed: int = 0) -> list:
    """``n`` architectures drawn at random from ``space`` (compression genes left out)."""
    return list(_arch_stream(space, input_shape, n_classes, n, seed))


class _optuna_quiet:
    def __enter__(self):
        self.level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    def __exit__(self, *exc):
        optuna.logging.set_verbosity(self.level)


def space_ops(space: SearchSpace, input_shape: tuple[int, ...], n_classes: int, *, max_archs: int = 2000,
              patience: int = 300, seed: int = 0) -> tuple[list[OpConfig], int]:
    """The distinct operators the space's architectures run: architectures are drawn until
    ``patience`` draws in a row add none (or ``max_archs``). Returns ``(ops, architectures drawn)``."""
    seen: dict[OpConfig, None] = {}
    quiet, n = 0, 0
    with one_thread(), fork_rng():
        for arch in _arch_stream(space, input_shape, n_classes, max_archs, seed):
            n += 1
            before = len(seen)
            for op in model_ops(build_model(arch, input_shape, n_classes), input_shape):
                seen.setdefault(op)
            quiet = 0 if len(seen) > before else quiet + 1
            if quiet >= patience:
                break
    return list(seen), n


@contextlib.contextmanager
def fork_rng():
    """PyTorch's global random state as it was, after models built only to be timed."""
    with torch.random.fork_rng(devices=[]):
        yield


def _arch_stream(space, input_shape, n_classes, n, seed):
    space = dataclasses.replace(space, compression=None)
    with _optuna_quiet():
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        for _ in range(n):
            trial = study.ask()
            arch = space.sample(trial, input_shape=input_shape, n_classes=n_classes).arch
            study.tell(trial, 0.0)
            yield arch


class OpTimer:
    """Times operators alone on this machine with a profile's runtime settings."""

    def __init__(self, runtime: str = DEFAULT_RUNTIME, *, threads: int = 1, repeats: int = 50) -> None:
        self.runtime, self.threads, self.repeats = runtime, threads, repeats
        self.layout = RUNTIMES.get(runtime).layout  # how the runtime lays out a 1-D CNN's batch
        self._models: dict[OpConfig, bytes] = {}
        self._null: dict[int, float] = {}

    def __call__(self, op: OpConfig, batch: int, precision: str = "fp32") -> float:
        if self.runtime in ORT_RUNTIMES:
            if op not in self._models:
                self._models[op] = op_model(op, self.layout)
            # the null op's time (one figure per batch) plus the op's time over it, timed alongside
            return time_op(op, batch=batch, precision=precision, threads=self.threads, repeats=self.repeats,
                           model=self._models[op], null_ms=self.null(batch), layout=self.layout)
        runtime = RUNTIMES.get(self.runtime)(batch_size=batch, repeats=self.repeats, warmup=10,
                                             threads=self.threads, precision=precision)
        with fork_rng():
            module = op.build()
        return runtime.measure_stats(module, op.input_shape()).median_ms

    def null(self, batch: int) -> float:
        """The null op's time at ``batch`` (ONNX Runtime: timed once, the fastest of three passes;
        every entry is this plus the op's time over the null op)."""
        if self.runtime in ORT_RUNTIMES:
            if batch not in self._null:
                model = op_model(NULL_OP)
                self._null[batch] = min(time_onnx_bound(model, NULL_OP.input_shape(), batch=batch, threads=self.threads,
                                                        repeats=max(200, self.repeats)) for _ in range(3))
            return self._null[batch]
        return self(NULL_OP, batch, "fp32")


def raw_terms(predictor_table: LatencyTable, ops: Sequence[OpConfig], batch: int, precision: str,
              null_ms: float) -> tuple[float, int]:
    """``(sum of max(0, entry - null), n_ops)`` of a model's ops: what calibration fits on."""
    total = sum(max(0.0, predictor_table.lookup(op, batch, precision)[0] - null_ms) for op in ops)
    return total, len(ops)


def build_profile(*, name: str, space: SearchSpace, input_shape: tuple[int, ...], n_classes: int,
                  runtime: str = DEFAULT_RUNTIME, threads: int = 1, batches: Sequence[int] = (1,),
                  precisions: Sequence[str] = ("fp32",), limits: Sequence[str] = (), description: str = "",
                  n_calibration: int = 24, n_check: int = 24, repeats: int = 50, max_archs: int = 2000,
                  patience: int = 300, seed: int = 0, progress: Progress = _quiet,
                  space_info: dict | None = None) -> DeviceProfile:
    """Measure a device profile on this machine: time every operator ``space`` can produce at
    each batch and precision, calibrate the predictor on ``n_calibration`` whole models and
    measure its accuracy on ``n_check`` others.

    ``progress(stage, done, total)`` is told how far it is (``ops``, ``timing``, ``models``).
    PyTorch's thread count and random state are left as they were.
    """
    with one_thread(), fork_rng():
        return _build_profile(name=name, space=space, input_shape=input_shape, n_classes=n_classes, runtime=runtime,
                              threads=threads, batches=batches, precisions=precisions, limits=limits,
                              description=description, n_calibration=n_calibration, n_check=n_check,
                              repeats=repeats, max_archs=max_archs, patience=patience, seed=seed,
                              progress=progress, space_info=space_info)


def _build_profile(*, name, space, input_shape, n_classes, runtime, threads, batches, precisions, limits, description,
                   n_calibration, n_check, repeats, max_archs, patience, seed, progress, space_info) -> DeviceProfile:
    if runtime not in RUNTIMES:
        raise ConfigError("--runtime", f"one of {RUNTIMES.names()}", runtime)
    rt = RUNTIMES.get(runtime)
    for p in precisions:
        if p not in precision_names() or (p not in rt.precisions and not (p == "int8" and runtime == OnnxRuntimeInt8Latency.name)):
            raise ConfigError("--precision", f"precisions {runtime} runs ({list(rt.precisions)})", p)
    why = rt().unavailable()
    if why is not None:
        raise ConfigError("--runtime", f"a runtime this machine can run ({runtime}: {why})", runtime)
    progress("ops", 0, 1)
    ops, n_archs = space_ops(space, input_shape, n_classes, max_archs=max_archs, patience=patience, seed=seed)
    progress("ops", 1, 1)
    timer = OpTimer(runtime, threads=threads, repeats=max(10, repeats // ROUNDS))
    conds = [(b, p) for b in batches for p in precisions]
    archs = sample_architectures(space, input_shape, n_classes, n_calibration + n_check, seed=seed + 1)
    models = {}
    for i, arch in enumerate(archs):
        torch.manual_seed(i)
        models[i] = build_model(arch, input_shape, n_classes).eval()
    # each round times the null model (ONNX Runtime: once per batch, then the same figure), every
    # op (the median of its repeats; small ones against the null model) and every
    # calibration model once; the fastest round of each is kept. A slow spell of the machine
    # lasts seconds: spread over the whole profile, the rounds outlast it
    times: dict[tuple[OpConfig, str], list[float]] = {}
    nulls: dict[int, list[float]] = {b: [] for b in batches}
    total, done = len(ops) * len(conds) * ROUNDS, 0
    with contextlib.ExitStack() as stack:
        whole = {p: stack.enter_context(InterleavedTimer(models, input_shape, batches=batches,
                                                          repeats=max(20, repeats // 2), runtime=runtime,
                                                          threads=threads, precision=p)) for p in precisions}
        for r in range(ROUNDS):
            for b in batches:
                nulls[b].append(timer.null(b))
            for op in ops:
                for b, p in conds:
                    times.setdefault((op, cond_key(b, p)), []).append(timer(op, b, p))
                    done += 1
                progress("timing", done, total)
            for j, t in enumerate(whole.values()):
                t.round()
                progress("models", r * len(whole) + j + 1, ROUNDS * len(whole))
        measured = {p: t.result() for p, t in whole.items()}
    table = LatencyTable()
    for (op, cond), ms in times.items():
        table.add(op, cond, min(ms))
    null_ms = {b: min(v) for b, v in nulls.items()}
    rows: dict[str, list[tuple[float, float, int]]] = {cond_key(b, p): [] for b, p in conds}
    for p in precisions:
        for i, model in models.items():
            ops_i = model_ops(model, input_shape)
            for b in batches:
                s, n = raw_terms(table, ops_i, b, p, null_ms[b])
                rows[cond_key(b, p)].append((measured[p][i][b], s, n))
    overhead, acc = {}, {}
    for (b, p) in conds:
        key = cond_key(b, p)
        fit_rows, check_rows = rows[key][:n_calibration], rows[key][n_calibration:]
        terms = calibrate(fit_rows, null_ms[b])
        overhead[key] = terms.to_dict()
        if len(check_rows) >= 3:
            pred = [terms.model_ms + terms.scale * s + terms.per_op_ms * n for _, s, n in check_rows]
            acc[key] = accuracy(pred, [m for m, _, _ in check_rows])
    info = {"input_shape": list(input_shape), "n_classes": n_classes, "families": list(space.families),
            "n_ops": len(ops), "n_architectures": n_archs, **(space_info or {})}
    return DeviceProfile(name=name, runtime=runtime, threads=threads, batch=tuple(batches),
                         precisions=tuple(precisions), limits=tuple(limits), description=description,
                         table=tuple(table.to_entries()), overhead=overhead, accuracy=acc,
                         machine=machine_info(cuda=rt.device == "cuda"), space=info)


def measured_table(runtime: str = DEFAULT_RUNTIME, *, threads: int = 1, repeats: int = 50) -> LatencyTable:
    """An empty table that times each operator on this machine the first time it is looked up."""
    return LatencyTable(measure=OpTimer(runtime, threads=threads, repeats=repeats))


def onthefly_predictor(models: Sequence[tuple[nn.Module, tuple[int, ...]]], *, runtime: str = DEFAULT_RUNTIME,
                       threads: int = 1, batches: Sequence[int] = (1,), precision: str = "fp32",
                       repeats: int = 50) -> LatencyPredictor:
    """A predictor for the models at hand, measured on this machine now: a table filled on demand
    and its per-model terms calibrated on ``models`` (a model and some pruned copies of it)."""
    table = measured_table(runtime, threads=threads, repeats=repeats)
    timer: OpTimer = table.measure
    measured: dict[int, dict[int, float]] = {}
    for shape in dict.fromkeys(tuple(shape) for _, shape in models):
        same = {i: m for i, (m, s) in enumerate(models) if tuple(s) == shape}
        measured.update(interleaved_latency(same, shape, batches=batches, rounds=ROUNDS, repeats=max(20, repeats // 2),
                                            runtime=runtime, threads=threads, precision=precision))
    overhead = {}
    for b in batches:
        null = min(timer.null(b) for _ in range(3))
        rows = []
        for i, (model, shape) in enumerate(models):
            ops = model_ops(model, shape)
            s, n = raw_terms(table, ops, b, precision, null)
            rows.append((measured[i][b], s, n))
        overhead[cond_key(b, precision)] = calibrate(rows, null) if len(rows) >= 3 else \
            Overhead(null_ms=null, model_ms=float(np.median([r[0] - r[1] for r in rows])), n_models=len(rows))
    return LatencyPredictor(table, overhead, info={"profile": "measured here", "runtime": runtime, "threads": threads,
                                                   "machine": machine_info().get("cpu", "")})
