"""``slimnas compress`` as a library function: load, compress, measure before/after, export."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimnas.compress import _onnx
from slimnas.compress._base import Pipeline
from slimnas.compress._cluster import WeightClusterer
from slimnas.compress._distill import FINETUNE_SPEC, Retrain
from slimnas.compress._export import load_compressed, save_compressed
from slimnas.compress._lowrank import LowRankFactorizer
from slimnas.compress._policy import CompressedModel, CompressionPolicy, measure_artifact
from slimnas.compress._prune import StructuredPruner, check_ratio
from slimnas.compress._quantize import OnnxQuantizer, quantize_model
from slimnas.data import DataSplits
from slimnas.errors import ConfigError, SlimnasError
from slimnas.spaces import TrainSpec
from slimnas.training import fit

QUANTIZE_CHOICES = ("none", "int8", "int8-dynamic", "fp16")


@dataclass
class CompressResult:
    """What :func:`compress` returns: before/after metrics, the compressed model and its files."""

    before: dict
    after: dict
    model: nn.Module
    onnx: bytes
    input_shape: tuple[int, ...]
    steps: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)
    out: Path | None = None

    def to_dict(self) -> dict:
        return {"before": self.before, "after": self.after, "steps": self.steps, "checks": self.checks}


def load_model(spec: str, weights: str | Path | None = None) -> tuple[nn.Module, Callable[[], nn.Module]]:
    """``(model, factory)`` from ``path/to/file.py:callable`` or ``package.module:callable``,
    with ``weights`` (a state dict) loaded by ``torch.load(..., weights_only=True)``."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError("--model", "'path/to/file.py:callable' or 'package.module:callable'", spec)
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise ConfigError("--model", "an existing Python file before ':'", target)
            mod_spec = importlib.util.spec_from_file_location(f"slimnas_user_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[mod_spec.name] = module
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except SlimnasError:
        raise
    except Exception as e:  # noqa: BLE001 - any import failure is the user's file
        raise ConfigError("--model", "a module that imports", f"{target} ({type(e).__name__}: {e})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ConfigError("--model", f"a callable named {attr!r} in {target}", spec)
    try:
        model = factory()
    except Exception as e:  # noqa: BLE001 - the user's callable failed
        raise ConfigError("--model", "a callable that builds the model without arguments",
                          f"{spec} ({type(e).__name__}: {e})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError("--model", "a callable returning a torch.nn.Module", type(model).__name__)
    if weights is not None:
        load_weights(model, weights)
    return model.eval(), factory


def load_weights(model: nn.Module, weights: str | Path) -> None:
    path = Path(weights)
    if not path.is_file():
        raise ConfigError("--weights", "an existing state-dict file", str(path))
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001
        raise ConfigError("--weights", "a state dict saved with torch.save", f"{path} ({type(e).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:2])
        raise ConfigError("--weights", "weights that match the model", f"{path}: {detail}") from None


def compress(
    model: nn.Module,
    data: DataSplits,
    *,
    prune: float = 0.0,
    importance: str = "l1",
    distill: bool = False,
    temperature: float = 4.0,
    quantize: str = "none",
    lowrank: float | None = None,
    cluster: int | None = None,
    epochs: int = 2,
    seed: int = 0,
    out: str | Path | None = None,
    device: str = "cpu",
    train: TrainSpec | None = None,
    latency_repeats: int = 200,
) -> CompressResult:
    """Compress ``model`` (trained) and measure the artifact before and after.

    The steps run in the order prune -> low-rank -> cluster -> quantize; each step that changes
    weights retrains ``epochs`` epochs (distilling from ``model`` with ``distill``). With ``out``,
    writes ``report.json`` (``{"before", "after", ...}``), ``model.onnx`` and ``compressed/``
    (state dict + structure), each checked against the eager model.

    Example:
        >>> from slimnas.data import load_dataset
        >>> from slimnas.models import mnist1d_paper_cnn
        >>> res = compress(mnist1d_paper_cnn(), load_dataset("mnist1d"), prune=0.5, epochs=0,
        ...                latency_repeats=5)
        >>> res.after["macs"] < res.before["macs"]
        True
    """
    check_ratio(prune, "--prune")
    if quantize not in QUANTIZE_CHOICES:
        raise ConfigError("--quantize", f"one of {list(QUANTIZE_CHOICES)}", quantize)
    if lowrank is not None and not 0 < lowrank <= 1:
        raise ConfigError("--lowrank", "a kept-rank ratio in (0, 1]", lowrank)
    if cluster is not None and cluster < 2:
        raise ConfigError("--cluster", "an integer >= 2", cluster)
    if epochs < 0:
        raise ConfigError("--epochs", "an integer >= 0", epochs)
    torch.manual_seed(seed)
    model = model.cpu().eval()
    shape = data.input_shape
    retrain = Retrain(epochs=epochs, train=train or FINETUNE_SPEC, distill=distill, temperature=temperature,
                      seed=seed, device=device)
    steps = []
    if prune > 0:
        steps.append(("prune", StructuredPruner(ratio=prune, importance=importance, retrain=retrain)))
    if lowrank is not None:
        steps.append(("lowrank", LowRankFactorizer(rank_ratio=lowrank, retrain=retrain)))
    if cluster is not None:
        steps.append(("cluster", WeightClusterer(n_clusters=cluster, retrain=retrain)))
    if quantize != "none":
        steps.append(("quantize", OnnxQuantizer(mode=quantize, qat=retrain if quantize == "int8" else None)))
    pipe = Pipeline(steps).fit(model, data)
    compressed = pipe.model_.cpu().eval()
    onnx = pipe.onnx_ or quantize_model(compressed, shape, mode="fp32")
    policy = CompressionPolicy(importance=importance, default_precision="fp32" if quantize == "none" else quantize,
                               distill=distill, temperature=temperature, cluster=cluster or 0)
    storage = getattr(pipe.named_steps.get("cluster"), "encoded_bytes_", None)
    before_art = CompressedModel(model, quantize_model(model, shape, mode="fp32"), shape, CompressionPolicy())
    after_art = CompressedModel(compressed, onnx, shape, policy, pipe.report_, storage)
    before = measure_artifact(before_art, data, repeats=latency_repeats)
    after = measure_artifact(after_art, data, repeats=latency_repeats)
    result = CompressResult(before, after, compressed, onnx, shape, steps=pipe.report_,
                            checks=_check_exports(compressed, onnx, data, quantize))
    if out is not None:
        result.out = write_outputs(result, model, Path(out))
    return result


def _check_exports(model: nn.Module, onnx: bytes, data: DataSplits, quantize: str) -> dict:
    """How far the ONNX file is from eager: exact for fp32, a tolerance for fp16, and top-1
    agreement for int8 (quantization changes outputs by design)."""
    x = data.x_val[:256]
    diff = _onnx.max_abs_diff(onnx, model, x)
    with torch.no_grad():
        agree = float(np.mean(_onnx.predict(onnx, x).argmax(1) == model(x).argmax(1).numpy()))
    tolerance = {"none": 1e-3, "fp16": 5e-2}.get(quantize)
    if tolerance is not None and diff > tolerance:
        raise SlimnasError(f"the exported ONNX file differs from the eager model by {diff:.3g} (> {tolerance})")
    return {"onnx_max_abs_diff": diff, "onnx_top1_agreement": agree}


def write_outputs(result: CompressResult, original: nn.Module, out: Path) -> Path:
    """``report.json``, ``model.onnx`` and ``compressed/``; the state dict is reloaded into a
    fresh copy of the original architecture and checked against the compressed model."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(result.onnx)
    folder = save_compressed(result.model, out / "compressed")
    rebuilt = load_compressed(copy.deepcopy(original), folder)
    result.checks["state_dict_reload_max_abs_diff"] = _reload_diff(result.model, rebuilt, result.input_shape)
    (out / "report.json").write_text(json.dumps(result.to_dict(), indent=2, default=_json_default))
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


def train_from_scratch(model: nn.Module, data: DataSplits, *, epochs: int, seed: int, device: str) -> None:
    """Train an untrained model before compressing it (when no ``--weights`` are given)."""
    fit(model, data.x_train, data.y_train, TrainSpec(epochs=epochs), x_val=data.x_val, y_val=data.y_val,
        seed=seed, device=device)
    model.cpu().eval()
