"""PyTorch export formats: TorchScript, ``torch.export`` programs, and a state dict with the
structure and spec that rebuild the model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from slimnas.export._format import BaseExportFormat, register_export_format
from slimnas.export._structure import load_compressed, save_compressed

EXAMPLE_BATCH = 2  # a batch of one would let tracers specialise the batch axis


def _example(ctx) -> torch.Tensor:
    return torch.zeros(EXAMPLE_BATCH, *ctx.input_shape)


@register_export_format("torchscript")
class TorchScriptFormat(BaseExportFormat):
    """A traced TorchScript module (``torch.jit.load`` runs it without slimnas or the model's code)."""

    description = "TorchScript (torch.jit.trace), loads with torch.jit.load"
    suffix = ".pt"

    def write(self, model, path: Path, ctx) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and deprecation notices: the file is verified instead
            torch.jit.save(torch.jit.trace(model, _example(ctx)), str(path))

    def run(self, path: Path, x, ctx):
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return torch.jit.load(str(path), map_location="cpu")(x).numpy()


@register_export_format("torch-export")
class TorchExportFormat(BaseExportFormat):
    """An ``ExportedProgram`` with a dynamic batch axis (``torch.export.load(path).module()``)."""

    description = "torch.export program (.pt2), loads with torch.export.load"
    suffix = ".pt2"

    def write(self, model, path: Path, ctx) -> None:
        batch = torch.export.Dim("batch", min=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(model, (_example(ctx),), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))

    def run(self, path: Path, x, ctx):
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return torch.export.load(str(path)).module()(x).numpy()


@register_export_format("state-dict")
class StateDictFormat(BaseExportFormat):
    """A folder: ``weights.pt`` (state dict, loads with ``weights_only=True``), ``structure.json``
    (the shapes of pruned and factorised layers) and the spec that rebuilds the architecture
    (``arch.json``, ``run.json``); :func:`slimnas.load` reads the folder back."""

    description = "folder: weights.pt + structure.json + spec (slimnas.load reads it back)"
    suffix = ""

    def write(self, model, path: Path, ctx) -> None:
        save_compressed(model, path)
        for name, doc in ctx.files.items():
            (path / name).write_text(json.dumps(doc, indent=2))

    def run(self, path: Path, x, ctx):
        with torch.no_grad():
            return load_compressed(ctx.rebuild(), path)(x).numpy()

    def outputs(self, path: Path, ctx) -> list[Path]:
        return [path / "weights.pt", path / "structure.json", *(path / name for name in ctx.files)]
