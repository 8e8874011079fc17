"""``slimnas compress`` as a library function: compress by a policy, measure before/after, export."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimnas._files import (
    atomic_write,
    replacing,
)
from slimnas.compress._apply import apply_policy, measure_artifact
from slimnas.compress._base import COMPRESSORS
from slimnas.compress._quality import Quality, check_task_outputs, with_task
from slimnas.compress._quantize import FP32_TOLERANCE, quantize_model
from slimnas.compress._speed import latency_change, slower_warning
from slimnas.compress._user_data import takes_user_data
from slimnas.config import MeasureSettings
from slimnas.data import DataSplits
from slimnas.errors import ConfigError, SlimnasError
from slimnas.export import predict
from slimnas.export._info import read_run_info, write_run_info
from slimnas.export._session import max_abs_diff
from slimnas.export._structure import load_compressed, save_compressed
from slimnas.measure import Artifact
from slimnas.models._hf import as_slimnas_model
from slimnas.spaces import TrainSpec
from slimnas.spaces._policy import CompressionPolicy
from slimnas.tasks import Task
from slimnas.training import Listener, fit, report_phase
from slimnas.training._events import PhaseEpochs

MAX_EPOCHS = 30  # cap of a fine-tune that runs until validation accuracy stops improving
PATIENCE = 3  # epochs without a better validation accuracy that end such a fine-tune
MAX_DROP = 0.02  # validation accuracy a compression may lose before the result says so


@dataclass
class CompressResult:
    """What :func:`compress` returns: before/after metrics, the compressed model and its files,
    the latency change on the measured runtime (``latency``: per batch, see
    :func:`~slimnas.compress.latency_change`), and what the user should know (``warnings``:
    steps that left layers alone, accuracy lost, a result slower than its input)."""

    before: dict
    after: dict
    model: nn.Module
    onnx: bytes
    input_shape: tuple[int, ...]
    steps: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)
    out: Path | None = None
    policy: CompressionPolicy = field(default_factory=CompressionPolicy)
    warnings: list[str] = field(default_factory=list)
    latency: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"before": self.before, "after": self.after, "policy": self.policy.to_dict(), "steps": self.steps,
                "checks": self.checks, "latency_change": self.latency, "warnings": self.warnings}


@takes_user_data  # train= / val= / test= Datasets or DataLoaders, train_step=, score_fn= (slimnas.compress._user_data)
def compress(
    model: nn.Module,
    data: DataSplits,
    policy: CompressionPolicy,
    *,
    epochs: int | None = None,
    max_epochs: int = MAX_EPOCHS,
    patience: int = PATIENCE,
    max_drop: float = MAX_DROP,
    seed: int = 0,
    out: str | Path | None = None,
    device: str = "cpu",
    train: TrainSpec | None = None,
    latency_repeats: int = 200,
    listener: Listener | None = None,
    task: str | Task | None = None,
) -> CompressResult:
    """Compress ``model`` (trained) as ``policy`` says and measure the artifact before and after.

    Each step that changes weights retrains (distilling from ``model`` when the policy says so):
    ``epochs`` epochs, or by default until validation accuracy has not improved for ``patience``
    epochs (at most ``max_epochs``), keeping the best epoch. With ``out``, writes
    ``report.json`` (``{"before", "after", "policy", ...}``), ``model.onnx`` and ``compressed/``
    (state dict + structure), each checked against the eager model. The caller's model is left
    as it was. ``listener`` hears of each phase: every step (``compress``, with its retraining
    epochs), the measurement (``measure``) and the checked files (``export``).

    A raw Hugging Face token model (``BertForSequenceClassification``: ``input_ids`` in, a
    ``ModelOutput`` out) needs no wrapper: it reads the data's token ids as the command line's
    ``--model`` does (:class:`~slimnas.models._hf.TokenIdsModel`, which ``result.model`` is, the
    compressed Hugging Face model in its ``.model``). Nor does a model answering with a dict, a
    tuple or a ``ModelOutput``: its ``logits`` (else its first floating-point output) are what is
    trained, distilled, scored and exported (:class:`~slimnas.models._hf.MainOutputModel`).

    ``task`` (a name such as ``"regression"``, ``file.py:callable`` or a
    :class:`~slimnas.tasks.Task`; by default the data's own, ``data.task``) is what the model is
    trained for: fine-tunes minimise its loss, distillation uses its
    :meth:`~slimnas.tasks.Task.distill` term, the before/after figures are its metrics
    (``val_r2``, ``test_mean_ap``, ...; classification's ``val_accuracy``) and the warning of a
    lost quality reads its primary metric in its direction: ``max_drop`` points (a fraction) of a
    metric whose best value is 1 (accuracy, R², mAP), else ``max_drop`` as a relative change
    (MSE, perplexity). Splits made without a task are checked, fitted and encoded by ``task``.

    Raises:
        SlimnasError: a step changed nothing at all (nothing in the model it can act on), or
            the model does not output one row of class scores per sample.

    Example:
        >>> from slimnas.data import load_dataset
        >>> from slimnas.models import mnist1d_paper_cnn
        >>> res = compress(mnist1d_paper_cnn(), load_dataset("mnist1d"),
        ...                CompressionPolicy.of(prune={"ratio": 0.5}), epochs=0, latency_repeats=5)
        >>> res.after["macs"] < res.before["macs"]
        True
    """
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0):
        raise ConfigError("--epochs", "an integer >= 0", epochs)
    data = with_task(data, task)
    quality = Quality.of(data.task)
    model = as_slimnas_model(model, data.input_shape)  # token ids for a raw Hugging Face model; a dict's logits
    check_task_outputs(model, data)
    torch.manual_seed(seed)
    model = copy.deepcopy(model).cpu().eval()
    shape = data.input_shape
    art = apply_policy(model, policy, data, teacher=model, epochs=max_epochs if epochs is None else epochs,
                       patience=patience if epochs is None else None, seed=seed, device=device, train=train,
                       listener=listener)
    if art.did_nothing:
        why = "; ".join(f"{layer}: {reason}" for step in art.did_nothing for layer, reason in art.not_done.get(step, {}).items())
        raise SlimnasError(f"{', '.join(art.did_nothing)}: changed nothing in this model" + (f" ({why})" if why else ""))
    compressed = art.model.cpu().eval()
    with report_phase(listener, "measure", label="measuring the model before and after in ONNX Runtime") as found:
        settings = MeasureSettings(latency_repeats=latency_repeats)
        before = measure_artifact(Artifact(model, quantize_model(model, shape, mode="fp32"), shape), data,
                                  settings=settings)
        after = measure_artifact(art, data, settings=settings)
        found.update({quality.key: after[quality.key]}, macs=after["macs"], bytes=after["bytes"])
    writer = next((s.build() for s in policy.steps if COMPRESSORS.get(s.compressor).writes_file), None)
    tolerance = writer.export_tolerance() if writer is not None else FP32_TOLERANCE
    warnings = [f"{step} left {layer} as it was: {reason}" for step, layers in art.not_done.items()
                for layer, reason in layers.items()]
    warnings += [f"{step}: {note}" for step, rep in art.report.items() for note in rep.get("notes", [])]  # a step's own
    if policy.distill and getattr(data.task, "distills", True) is False:  # a detector's losses need its targets: no teacher term
        warnings.append(f"distill: the {data.task.name} task has no distillation term; the fine-tunes minimised "
                        "the model's own losses")
    drop = quality.worse_by(before[quality.key], after[quality.key])
    if drop > max_drop:
        remedies = ["fine-tune longer (--epochs)", *([] if policy.distill else ["distil (--distill)"]), "compress less"]
        what = (f"lost {quality.amount(drop)}" if not quality.relative else f"has its {quality.amount(drop)}")
        warnings.append(f"the compressed model {what} (more than {quality.limit(max_drop)}); "
                        f"{', '.join(remedies[:-1])} or {remedies[-1]}")
    latency = latency_change(before, after)  # measured on ONNX Runtime, one thread
    if slower_warning(latency):
        warnings.append(slower_warning(latency))
    with report_phase(listener, "export", label="checking the exported files against the model") as found:
        result = CompressResult(before, after, compressed, art.onnx, shape, steps=art.report,
                                checks=_check_exports(compressed, art.onnx, data, tolerance), policy=policy,
                                warnings=warnings, latency=latency)
        if out is not None:
            result.out = write_outputs(result, model, Path(out), n_classes=data.n_classes)
            found["out"] = str(result.out)
    return result


def _check_exports(model: nn.Module, onnx: bytes, data: DataSplits, tolerance: float | None) -> dict:
    """How far the ONNX file is from eager: within ``tolerance`` (fp32, fp16), or only top-1
    agreement reported (int8 changes outputs by design)."""
    x = data.x_val[:256]
    diff = max_abs_diff(onnx, model, x)
    if tolerance is not None and diff > tolerance:
        raise SlimnasError(f"the exported ONNX file differs from the eager model by {diff:.3g} (> {tolerance})")
    if not data.is_classification:  # no top-1 to agree on: int8's changes show in the task's metrics
        return {"onnx_max_abs_diff": diff}
    with torch.no_grad():
        agree = float(np.mean(predict(onnx, x).argmax(1) == model(x).argmax(1).numpy()))
    if tolerance is not None and diff > tolerance:
        raise SlimnasError(f"the exported ONNX file differs from the eager model by {diff:.3g} (> {tolerance})")
    return {"onnx_max_abs_diff": diff, "onnx_top1_agreement": agree}


# what a compress (or a report of it) writes in its --out: an earlier run's, never carried into a new output
OUTPUTS = ("report.json", "model.onnx", "compressed", "run.json", "policy.json", "sensitivity.json", "study.db",
           "study.db-journal", "study.db-wal", "study.db-shm", "tensorboard", "report.html", "report.md")


#: what ``compress --auto`` writes as its result; the rest of its --out (its study, study.db, which a later
#: --auto into the same folder resumes, and TensorBoard's files) is carried from one result to the next
RESULT = ("report.json", "model.onnx", "policy.json", "weights.pt", "structure.json", "sensitivity.json", "run.json",
          "compressed", "report.html", "report.md")


@contextlib.contextmanager
def staged_result(out: str | Path, input_shape: tuple[int, ...], n_classes: int,
                  outputs: tuple[str, ...] = RESULT) -> Iterator[Path]:
    """A folder to write a compress result in (plain or ``--auto``), with ``run.json`` (the shapes,
    and what the command line recorded in ``out``'s); on leaving the block it takes ``out``'s
    place as one unit (:func:`~slimnas._files.replacing`): a reader finds the earlier result or
    the new one, never a mix. Entries of ``out`` not in ``outputs`` are carried across."""
    out = Path(out)
    with replacing(out, outputs) as stage:
        yield stage
        info = read_run_info(out)  # the command line writes a fuller one (the model, the data) after
        write_run_info(stage, input_shape, n_classes, **{k: v for k, v in info.items()
                                                          if k not in ("input_shape", "n_classes")})


def write_outputs(result: CompressResult, original: nn.Module, out: Path, *, n_classes: int) -> Path:
    """``report.json``, ``model.onnx``, ``compressed/`` and ``run.json`` (shapes); the state dict is
    reloaded into a fresh copy of the original architecture and checked against the compressed model.

    The whole output is written in a folder beside ``out`` and then takes its place as a whole
    (:func:`~slimnas._files.swap_folder`): a process killed on the way leaves the earlier output
    as it was, or no ``out`` and the earlier output whole in ``.<out>.<pid>.previous`` (which
    every reader names, refusing to read anything else), never a new model beside an earlier
    result's report. Files of the user's own in ``out`` are copied across."""
    with staged_result(out, result.input_shape, n_classes, OUTPUTS) as stage:
        atomic_write(stage / "model.onnx", result.onnx)
        folder = save_compressed(result.model, stage / "compressed")
        rebuilt = load_compressed(copy.deepcopy(original), folder)
        result.checks["state_dict_reload_max_abs_diff"] = _reload_diff(result.model, rebuilt, result.input_shape)
        atomic_write(stage / "report.json", json.dumps(result.to_dict(), indent=2, default=_json_default))
    return out


def _reload_diff(model: nn.Module, rebuilt: nn.Module, shape: tuple[int, ...]) -> float:
    x = torch.randn(8, *shape)
    with torch.no_grad():
        diff = float((model.eval()(x) - rebuilt(x)).abs().max())
    if diff > 1e-5:
        raise SlimnasError(f"the saved state dict does not reproduce the compressed model (max diff {diff:.3g})")
    return diff


def _json_default(o):
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def train_from_scratch(model: nn.Module, data: DataSplits, *, epochs: int, seed: int, device: str,
                       listener: Listener | None = None, amp: bool = False, accumulate: int = 1) -> None:
    """Train an untrained model before compressing it (when no ``--weights`` are given); the
    ``listener`` hears of it as the ``train`` phase, epoch by epoch."""
    callbacks = [PhaseEpochs(listener, "train", epochs)] if listener is not None else []
    with report_phase(listener, "train", label="training the input model", epochs=epochs) as found:
        history = fit(model, data.x_train, data.y_train, TrainSpec(epochs=epochs, amp=amp, accumulate=accumulate),
                      x_val=data.x_val, y_val=data.y_val, seed=seed, device=device, callbacks=callbacks,
                      augment=data.augment, task=None if data.is_classification else data.task)
        if history.epochs:
            key = Quality.of(data.task).key
            found[key] = history.epochs[-1].get(key)
    model.cpu().eval()
