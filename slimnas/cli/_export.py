"""``slimnas export``: one model of a run in a chosen format, or in several (``--format all``, a
device profile's formats), every file verified against the eager model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from slimnas._files import clean_stale_staging, write_json
from slimnas.cli._options import DeviceProfile, Model, Out, Trial, as_options, split_list
from slimnas.config._profile import allowed_formats
from slimnas.errors import ConfigError
from slimnas.export import (
    EXPORT_FORMATS,
    ExportMismatchError,
    ExportResult,
    get_export_format,
    list_export_formats,
)
from slimnas.measure._format import fmt_count
from slimnas.report._table import make_console
from slimnas.study._export import export_run, preprocessing_sidecar

ALL = "all"


def export_command(
    run: Annotated[Path, typer.Argument(help="A search run folder, a trial's folder, a compress output or a state-dict export.")],
    out: Out = None,
    format: Annotated[str, typer.Option("--format", help="Export format, several comma-separated, or 'all' (every format, or the --device-profile's); with more than one, --out is a folder that gets model-<format><suffix> each.")] = "onnx-fp32",
    trial: Trial = None,
    best: Annotated[list[str] | None, typer.Option(help="Instead of --trial: the front member with the best objectives among those meeting this budget, e.g. 'latency_ms<=0.2' (repeatable or comma-separated; '' for the best of the front).")] = None,
    model: Model = None,
    device_profile: DeviceProfile = None,
) -> None:
    """Export a run's model (ONNX fp32/fp16/int8, ONNX Runtime Mobile, ExecuTorch, Core ML, TorchScript, torch.export, state dict); every file is checked against the eager model."""
    if out is None:
        raise ConfigError("--out", "the file to write (a folder for state-dict, coreml or several formats)", None)
    profile = None
    if device_profile is not None:
        from slimnas.measure._profile import load_profile

        profile = load_profile(device_profile, "--device-profile")
    offered = allowed_formats(profile, list_export_formats())
    names = offered if format.strip() == ALL else split_list(format)
    with as_options("format"):
        if not names:
            raise ConfigError("format", f"one of {list_export_formats()}, several comma-separated, or 'all'", format)
        for name in names if format.strip() != ALL else ():
            get_export_format(name)  # at the edge, before anything is loaded: known and installed
            if name not in offered:
                raise ConfigError("format", f"a format the device profile {profile.name!r} loads "
                                  f"({', '.join(offered)})", name)
    if trial is not None and best is not None:
        raise ConfigError("--best", "either --trial or --best, not both", best)
    if format.strip() != ALL and len(names) == 1:
        _export_one(run, out, names[0], trial, best, model)
    else:
        _export_many(run, out, names, trial, best, model)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def check_text(result: ExportResult) -> str:
    """The verification figure of an export, in words."""
    fmt = EXPORT_FORMATS.get(result.format)
    if not result.ran:
        return "not run here (its runtime runs on Apple platforms only); structure checked"
    text = f"max |diff| {result.max_abs_diff:.2g}"
    if fmt.min_agreement is not None:
        text += f", {result.agreement} agreement {result.top1_agreement:.1%}"
    return text


def _export_one(run, out, format, trial, best, model) -> None:
    for line in clean_stale_staging(out):  # what an export killed while writing --out left beside it
        make_console().print(f"note: {line}", soft_wrap=True, highlight=False)
    try:
        with as_options("format", "trial", "best", "model", "out"):
            result = export_run(run, out, format=format, trial=trial, best=best, model=model)
    except ExportMismatchError as e:  # not a user mistake: the export itself failed its check
        make_console().print(f"[red]error:[/] {e}; nothing was written", soft_wrap=True)
        raise typer.Exit(1) from None
    check = check_text(result)
    checked = (f"checked against the eager model on {result.n_inputs} inputs: {check}" if result.ran else check)
    make_console().print(f"wrote {result.path} ({format}, {fmt_count(_size(result.path))} bytes); {checked}",
                         soft_wrap=True, highlight=False)
    sidecar = preprocessing_sidecar(result.path)
    if result.path.is_file() and sidecar.is_file():
        make_console().print(f"its inputs are prepared as {sidecar} says (standardisation from the training split, "
                             "layout, tokenizer): slimnas.data.Preprocessing.from_dict(...).transform(raw)",
                             soft_wrap=True, highlight=False)


def file_name(format: str) -> str:
    """The name each format's file gets in a multi-format export's folder."""
    return f"model-{format}{EXPORT_FORMATS.get(format).suffix}"


def _export_many(run, out, names, trial, best, model) -> None:
    """Every format in ``names`` into the folder ``out``; a table of files, bytes and checks. A
    format that cannot be written here (its package missing, no data to calibrate on) is a row
    saying why; a file that fails its check is removed and the command exits 1. The table is also
    written as ``exports.json`` in the folder."""
    out = Path(out)
    if out.is_file():
        raise ConfigError("--out", "a folder for several formats (each is written there as model-<format>)", str(out))
    console = make_console()
    table = Table(title=f"{run}: {len(names)} export formats, each checked against the eager model",
                  title_justify="left")
    for col in ("format", "file", "bytes", "check"):
        table.add_column(col, justify="right" if col == "bytes" else "left")
    failed, rows = False, []
    for name in names:
        path = out / file_name(name)
        try:
            get_export_format(name)
            for line in clean_stale_staging(path):
                console.print(f"note: {line}", soft_wrap=True, highlight=False)
            with as_options("format", "trial", "best", "model", "out"):
                result = export_run(run, path, format=name, trial=trial, best=best, model=model)
        except ConfigError as e:
            if e.field not in ("format", "--format"):  # this format cannot be written here
                raise
            table.add_row(name, "-", "-", f"not written: {e}")
            rows.append({"format": name, "file": None, "bytes": None, "not_written": str(e)})
            continue
        except ExportMismatchError as e:
            failed = True
            table.add_row(name, "-", "-", f"[red]failed its check, nothing written:[/] {e}")
            rows.append({"format": name, "file": None, "bytes": None, "failed": str(e)})
            continue
        table.add_row(name, path.name, f"{_size(path):,}", check_text(result))
        rows.append({**result.to_dict(), "file": path.name, "bytes": _size(path), "check": check_text(result)})
    write_json(out / "exports.json", {"run": str(run), "formats": rows})
    console.print(table)
    if failed:
        raise typer.Exit(1)


def format_help() -> str:
    return "Export format: " + ", ".join(list_export_formats()) + f", or {ALL!r}."

