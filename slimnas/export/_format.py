"""Export formats: a registry of the files a finished model is written to, and the one function
that writes any of them and checks the file against the eager model.

Every format is verified the same way, in :func:`export_model`: the written file is loaded
back by its own runtime (ONNX Runtime, ``torch.jit.load``, ``torch.export.load``, a fresh
build of the architecture) and run on the same inputs as the eager model. A file whose outputs
differ by more than the format's tolerance is deleted and :class:`ExportMismatchError` raised:
nothing unverified is left where the user asked for a model.
"""

from __future__ import annotations

import abc
import copy
import math
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from slimnas._files import publish, staging_folder, storage_error
from slimnas.errors import ConfigError
from slimnas.export._onnx import ExportMismatchError, inference_copy
from slimnas.registry import Registry

N_VERIFY = 64  # random verification inputs when no real ones are given


@dataclass(frozen=True)
class ExportContext:
    """What a format may read besides the model.

    Attributes:
        input_shape: one sample's shape, without the batch axis.
        calibration: real training samples (static int8 calibrates activation ranges on them).
        rebuild: builds a fresh, untrained model of the original architecture; a state dict is
            loaded back into it to verify the export (a scrambled copy of the model otherwise).
        files: JSON documents written next to a state dict, name -> content (``arch.json``,
            ``run.json``: what :func:`slimnas.load` rebuilds the model from).
    """

    input_shape: tuple[int, ...]
    calibration: torch.Tensor | None = None
    rebuild: Callable[[], nn.Module] | None = None
    files: Mapping[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportResult:
    """Where a model was exported and how closely the file reproduces it."""

    path: Path
    format: str
    max_abs_diff: float
    top1_agreement: float
    n_inputs: int
    #: what ``top1_agreement`` counts: ``"top-1"`` (the same top class), or ``"box"`` for a
    #: detector (the eager model's boxes found again, same label, IoU >= 0.9)
    agreement: str = "top-1"

    @property
    def ran(self) -> bool:
        """The file was run and compared (``False``: a format whose runtime does not run here)."""
        return not math.isnan(self.max_abs_diff)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "format": self.format,
                "max_abs_diff": self.max_abs_diff if self.ran else None,
                "top1_agreement": self.top1_agreement if self.ran else None, "agreement": self.agreement,
                "n_inputs": self.n_inputs}


class BaseExportFormat(abc.ABC):
    """One export format.

    Call order: :func:`export_model` checks the context (:attr:`calibrated` formats need
    ``calibration``), calls :meth:`write` with the model in eval mode on the CPU, then
    :meth:`run` on the verification inputs, and compares with the eager outputs: the largest
    absolute difference must stay within ``atol`` times the outputs' scale (at least 1), or,
    for formats that change outputs by design (int8), the top-1 agreement must reach
    ``min_agreement``.
    """

    #: registry name, set by :func:`register_export_format`
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: the suffix the written path usually has (``""``: the format writes a folder)
    suffix: ClassVar[str] = ""
    #: needs real samples to write the file (static int8 calibration)
    calibrated: ClassVar[bool] = False
    #: largest output difference allowed, relative to the outputs' scale (``None``: not checked)
    atol: ClassVar[float | None] = 1e-5
    #: smallest top-1 agreement with the eager model allowed (``None``: not checked)
    min_agreement: ClassVar[float | None] = None
    #: the optional package the format needs (``""``: none beyond slimnas' own)
    requires: ClassVar[str] = ""
    #: the file is a folder although its name has a suffix (Core ML's ``.mlpackage``)
    package: ClassVar[bool] = False
    #: its runtime runs on this machine; ``False`` (Core ML: macOS/iOS only): :meth:`inspect`
    #: checks the written file instead of :meth:`run`, and no output difference is reported
    runs_here: ClassVar[bool] = True

    def check(self) -> None:
        """Raise :class:`ConfigError` (one line naming what to install) when the format cannot be
        written here, before any model is loaded; the default needs nothing."""
        return None

    @abc.abstractmethod
    def write(self, model: nn.Module, path: Path, ctx: ExportContext) -> None:
        """Write ``model`` (eval mode, CPU; leave it unchanged) to ``path``."""

    @abc.abstractmethod
    def run(self, path: Path, x: torch.Tensor, ctx: ExportContext) -> np.ndarray:
        """The outputs of the written file on ``x``, computed by loading the file back."""

    def outputs(self, path: Path, ctx: ExportContext) -> list[Path]:
        """Every file :meth:`write` writes (removed again when the export fails verification)."""
        return [path]

    @classmethod
    def writes_folder(cls) -> bool:
        return not cls.suffix or cls.package

    def inspect(self, path: Path, expected: np.ndarray, ctx: ExportContext) -> None:
        """For a format that does not run here: raise :class:`ExportMismatchError` when the file
        written at ``path`` is not a program for outputs like ``expected`` (the eager outputs)."""
        raise NotImplementedError(f"{self.name} runs here: export_model calls run()")


EXPORT_FORMATS: Registry[type[BaseExportFormat]] = Registry("export format")


def register_export_format(name: str) -> Callable[[type[BaseExportFormat]], type[BaseExportFormat]]:
    """Class decorator: register a :class:`BaseExportFormat` under ``name``.

    Example:
        >>> @register_export_format("onnx-opset13")  # doctest: +SKIP
        ... class Opset13(OnnxFp32):
        ...     def write(self, model, path, ctx):
        ...         export_onnx(model, path, ctx.input_shape, verify=False, opset=13)
    """

    return EXPORT_FORMATS.register_class(name)


def list_export_formats() -> list[str]:
    return EXPORT_FORMATS.names()


def get_export_format(name: str, field: str = "format") -> BaseExportFormat:
    fmt = EXPORT_FORMATS.get(name, field)()
    fmt.check()
    return fmt


def export_model(
    model: nn.Module,
    path: str | Path,
    input_shape: tuple[int, ...],
    *,
    format: str = "onnx-fp32",
    calibration: torch.Tensor | None = None,
    inputs: torch.Tensor | None = None,
    rebuild: Callable[[], nn.Module] | None = None,
    files: Mapping[str, dict] | None = None,
) -> ExportResult:
    """Write ``model`` in a registered format and verify the file against the eager outputs.

    Args:
        format: a registered export format (:func:`list_export_formats`).
        calibration: training samples, for formats that calibrate (``onnx-int8``).
        inputs: verification inputs (real samples where there are some; else random ones).
        rebuild, files: see :class:`ExportContext`.

    Raises:
        ExportMismatchError: the file's outputs differ from the eager model's beyond the
            format's tolerance (nothing is written: the file is checked before it is renamed into place).

    Example:
        >>> export_model(torch.nn.Linear(4, 2), "/tmp/lin.pt", (4,), format="torchscript").max_abs_diff
        0.0
    """
    fmt = get_export_format(format)
    if fmt.calibrated and calibration is None:
        raise ConfigError("format", f"training samples to calibrate {format!r} (give the run's data)", format)
    path = Path(path)
    if not fmt.writes_folder() and path.is_dir():
        raise ConfigError("out", f"a file path for {format!r} (it writes one file), not a folder", str(path))
    if fmt.writes_folder() and path.is_file():
        raise ConfigError("out", f"a folder path for {format!r} (it writes a folder)", str(path))
    ctx = ExportContext(tuple(input_shape), calibration, rebuild or (lambda: _scrambled_copy(model)), dict(files or {}))
    if fmt.writes_folder() and path.is_dir():
        mine = {p.name for p in fmt.outputs(path, ctx)}
        other = sorted(p.name for p in path.iterdir() if p.name not in mine)
        if other:  # the folder is replaced as a whole
            raise ConfigError("out", f"a new folder, or an earlier {format} export, for {format!r} (it holds other "
                              f"files: {', '.join(other[:4])}{', ...' if len(other) > 4 else ''})", str(path))
    x = inputs if inputs is not None else torch.randn(N_VERIFY, *input_shape, generator=torch.Generator().manual_seed(0))
    stage = staging_folder(path)  # written and checked there, then renamed into place: never half a file
    target = stage / path.name
    try:
        with inference_copy(model) as work, torch.no_grad():
            expected = work(x).numpy()
            fmt.write(work, target, ctx)
        if not fmt.runs_here:  # checked by its structure; nothing to compare
            fmt.inspect(target, expected, ctx)
            publish(stage, sorted({p.relative_to(stage).parts[0] for p in fmt.outputs(target, ctx)}), path.parent)
            return ExportResult(path, format, float("nan"), float("nan"), len(x))
        got = np.asarray(fmt.run(target, x, ctx), dtype=np.float64)
        from slimnas.models._detector import aligned_detections, box_agreement, holds_detector

        agree = float(np.mean(got.argmax(1) == expected.argmax(1))) if got.shape == expected.shape else 0.0
        kind = "box" if holds_detector(work) else "top-1"
        if kind == "box" and got.shape == expected.shape:  # a detector: its own "top-1" and top-K
            agree = box_agreement(expected, got)  # the eager model's boxes found again (same label, IoU >= 0.9)
            expected, got = aligned_detections(expected, got)  # equal scores in either order
        diff = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
        scale = max(1.0, float(np.max(np.abs(expected))))
        if fmt.atol is not None and not diff <= fmt.atol * scale:
            raise ExportMismatchError(f"{path}: the {format} file's outputs differ from the eager model's by "
                                      f"{diff:.3g} (> {fmt.atol * scale:.3g})")
        if fmt.min_agreement is not None and not agree >= fmt.min_agreement:
            raise ExportMismatchError(f"{path}: the {format} file agrees with the eager model's {kind} on "
                                      f"{agree:.1%} of {len(x)} inputs (< {fmt.min_agreement:.0%})")
        publish(stage, sorted({p.relative_to(stage).parts[0] for p in fmt.outputs(target, ctx)}), path.parent)
    except OSError as e:
        raise storage_error(path, e) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ExportResult(path, format, diff, agree, len(x), kind)


def _scrambled_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every tensor of its state overwritten: a state dict that loads
    into it must bring every value back for the outputs to match."""
    fresh = copy.deepcopy(model).cpu()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t in fresh.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g))
    return fresh
