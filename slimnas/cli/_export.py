"""``slimnas export``: one model of a run in a chosen format, verified against the eager model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slimnas._files import clean_stale_staging
from slimnas.cli._options import Model, Out, as_options
from slimnas.errors import ConfigError
from slimnas.export import ExportMismatchError, get_export_format, list_export_formats
from slimnas.measure._format import fmt_count
from slimnas.report._table import make_console
from slimnas.study._export import export_run, preprocessing_sidecar


def export_command(
    run: Annotated[Path, typer.Argument(help="A search run folder, a trial's folder, a compress output or a state-dict export.")],
    out: Out = None,
    format: Annotated[str, typer.Option("--format", help="Export format.")] = "onnx-fp32",
    trial: Annotated[int | None, typer.Option(help="Trial number, in a search run folder.")] = None,
    best: Annotated[list[str] | None, typer.Option(help="Instead of --trial: the front member with the best objectives among those meeting this budget, e.g. 'latency_ms<=0.2' (repeatable or comma-separated; '' for the best of the front).")] = None,
    model: Model = None,
) -> None:
    """Export a run's model (ONNX fp32/fp16/int8, TorchScript, torch.export, state dict); every file is checked against the eager model."""
    if out is None:
        raise ConfigError("--out", "the file to write (a folder for state-dict)", None)
    with as_options("format"):
        get_export_format(format)  # at the edge, before anything is loaded
    if trial is not None and best is not None:
        raise ConfigError("--best", "either --trial or --best, not both", best)
    for line in clean_stale_staging(out):  # what an export killed while writing --out left beside it
        make_console().print(f"note: {line}", soft_wrap=True, highlight=False)
    try:
        with as_options("format", "trial", "best", "model", "out"):
            result = export_run(run, out, format=format, trial=trial, best=best, model=model)
    except ExportMismatchError as e:  # not a user mistake: the export itself failed its check
        make_console().print(f"[red]error:[/] {e}; nothing was written", soft_wrap=True)
        raise typer.Exit(1) from None
    size = sum(p.stat().st_size for p in result.path.rglob("*")) if result.path.is_dir() else result.path.stat().st_size
    check = (f"max |diff| {result.max_abs_diff:.2g}" if get_export_format(format).atol is not None
             else f"top-1 agreement {result.top1_agreement:.1%}")
    make_console().print(f"wrote {result.path} ({format}, {fmt_count(size)} bytes); checked against the eager model "
                         f"on {result.n_inputs} inputs: {check}", soft_wrap=True, highlight=False)
    sidecar = preprocessing_sidecar(result.path)
    if result.path.is_file() and sidecar.is_file():
        make_console().print(f"its inputs are prepared as {sidecar} says (standardisation from the training split, "
                             "layout, tokenizer): slimnas.data.Preprocessing.from_dict(...).transform(raw)",
                             soft_wrap=True, highlight=False)


def format_help() -> str:
    return "Export format: " + ", ".join(list_export_formats()) + "."
