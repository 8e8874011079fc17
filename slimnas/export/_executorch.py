"""ExecuTorch export formats: a ``.pte`` program (ExecuTorch's FlatBuffer) with the graph delegated
to XNNPACK, the CPU backend ExecuTorch ships for Android and iOS phones, in fp32
(``executorch``) or with int8 weights and activations (``executorch-int8``: PT2E static
quantization with XNNPACK's quantizer, per-channel symmetric weights, calibrated on real samples).

Both are written by ExecuTorch's own tool chain (``torch.export`` -> ``to_edge_transform_and_lower``
with the XNNPACK partitioner -> ``to_executorch``) and checked by loading the file back in
ExecuTorch's Python runtime (``executorch.runtime.Runtime``) and running it on the verification
inputs. The program takes one sample at a time (batch 1, what a phone app runs; ExecuTorch 1.5's
memory planning bounded a dynamic batch axis below its declared maximum for some models, and a GRU's
export fixes it anyway). A recurrent model's fp32 program runs in ExecuTorch's portable CPU kernels,
not XNNPACK (its unrolled time steps would each be a partition of their own).

The ``executorch`` package is an optional extra (``pip install 'slimnas[edge]'``); without it,
choosing the format is one line naming it (:meth:`ExecuTorchFp32.check`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from slimnas.errors import ConfigError
from slimnas.export._format import BaseExportFormat, register_export_format

INSTALL = "pip install 'slimnas[edge]', or pip install executorch"
N_CALIBRATION = 256  # samples the int8 format calibrates activation ranges on


@contextlib.contextmanager
def quiet_native() -> Iterator[None]:
    """Silence what native libraries print on file descriptor 2 while loading (ExecuTorch's
    runtime logs its CPU probing there; torchao reports the CUDA kernels it skips): a
    command's error output stays one line. Python exceptions still propagate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            saved = os.dup(2)
        except OSError:  # no stderr to silence
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            with contextlib.redirect_stderr(io.StringIO()):  # Python-level writers too (progress bars)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


def require(package: str, format: str, install: str) -> None:
    """One line (:class:`ConfigError`) when ``package`` cannot be imported here."""
    try:
        found = importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a parent package missing, or one set to None in sys.modules
        found = False
    if not found:
        raise ConfigError("format", f"the {package} package installed for {format!r} ({install})", "not installed")


def _program(model: torch.nn.Module, ctx) -> torch.export.ExportedProgram:
    return torch.export.export(model, (torch.zeros(1, *ctx.input_shape),))


def to_pte(model: torch.nn.Module, ctx, *, calibration: torch.Tensor | None = None) -> bytes:
    """The ``.pte`` program of ``model``, lowered to XNNPACK; int8 (PT2E, XNNPACK's quantizer,
    per-channel symmetric weights) when ``calibration`` samples are given."""
    with quiet_native():
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        program = _program(model, ctx)
        if calibration is not None:
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            prepared = prepare_pt2e(program.module(), quantizer)
            with torch.no_grad():
                for i in range(min(len(calibration), N_CALIBRATION)):
                    prepared(torch.as_tensor(np.asarray(calibration[i : i + 1]), dtype=torch.float32))
            program = _program(convert_pt2e(prepared), ctx)
        # a recurrent layer is unrolled over the time steps: XNNPACK would take each step's products as a
        # partition of its own (3x the lowering time of the tiny GRU); fp32 runs them in ExecuTorch's portable
        # kernels instead (int8 needs XNNPACK: the portable library has no quantize/dequantize kernels)
        portable = calibration is None and any(isinstance(m, torch.nn.RNNBase) for m in model.modules())
        lowered = to_edge_transform_and_lower(program, partitioner=[] if portable else [XnnpackPartitioner()])
        return lowered.to_executorch().buffer


def run_pte(path: Path, x) -> np.ndarray:
    """Outputs of the ``.pte`` file at ``path`` on ``x``, one sample at a time, run in ExecuTorch's
    Python runtime."""
    with quiet_native():
        from executorch.runtime import Runtime

        method = Runtime.get().load_program(Path(path)).load_method("forward")
        outs = []
        for i in range(len(x)):
            sample = torch.as_tensor(np.asarray(x[i : i + 1]), dtype=torch.float32).contiguous()
            outs.append(method.execute([sample])[0].numpy().copy())
    return np.concatenate(outs)


def pte_delegates(path: Path) -> list[str]:
    """The backends the ``.pte`` file at ``path`` delegates to (``['XnnpackBackend']``)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(Path(path).read_bytes())
    program = getattr(program, "program", program)
    return sorted({d.id for plan in program.execution_plan for d in plan.delegates})


@register_export_format("executorch")
class ExecuTorchFp32(BaseExportFormat):
    """ExecuTorch ``.pte``, fp32, delegated to XNNPACK; run back in ExecuTorch's runtime."""

    description = "ExecuTorch .pte (XNNPACK delegate), fp32; runs in ExecuTorch's runtime (Android, iOS)"
    suffix = ".pte"
    atol = 1e-4
    requires = "executorch"

    def check(self) -> None:
        require(self.requires, self.name, INSTALL)

    def write(self, model, path: Path, ctx) -> None:
        path.write_bytes(to_pte(model, ctx))

    def run(self, path: Path, x, ctx):
        return run_pte(path, x)


@register_export_format("executorch-int8")
class ExecuTorchInt8(ExecuTorchFp32):
    """ExecuTorch ``.pte`` with int8 weights (per channel) and activations (calibrated on the
    training samples), delegated to XNNPACK's int8 kernels; checked by top-1 agreement, since
    int8 changes the outputs by design."""

    description = "ExecuTorch .pte (XNNPACK delegate), int8 weights and activations (calibrated)"
    calibrated = True
    atol = None
    min_agreement = 0.8

    def write(self, model, path: Path, ctx) -> None:
        path.write_bytes(to_pte(model, ctx, calibration=ctx.calibration))
