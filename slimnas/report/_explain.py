"""Why each layer was compressed as it was: per-layer decisions next to their sensitivity.

The per-layer columns are those the registered compressors declare (``ratio``, ``rank``,
``precision``, ...), so a new compressor's setting shows up without changes here.
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from slimnas._files import read_json
from slimnas.compress import COMPRESSORS, list_compressors

BASE_COLUMNS = ("layer", "width", "kept", "removed")


def read_policy(trial_dir: str | Path) -> dict | None:
    path = Path(trial_dir) / "policy.json"
    return read_json(path, "a JSON object of the compression policy", lambda d: isinstance(d, dict)) \
        if path.is_file() else None


def layer_columns(rows: list[dict]) -> list[tuple[str, str, object]]:
    """``(compressor, column, off value)`` of every registered compressor's per-layer setting
    found in ``rows``."""
    out, seen = [], set()
    for name in list_compressors():
        cls = COMPRESSORS.get(name)
        if cls.layer_column and cls.layer_column not in seen and any(cls.layer_column in row for row in rows):
            seen.add(cls.layer_column)  # a column several compressors share (precision) is shown once
            out.append((name, cls.layer_column, cls.layer_off))
    return out


def policy_summary(doc: dict | None) -> str:
    """One line: each per-layer setting (a share removed as its mean, e.g. ``prune 40%``; a
    precision as layers per value, ``int8 3/5``; else the layers it changes, ``lowrank 2``),
    the steps without a per-layer setting with their options, and distillation."""
    if not doc:
        return "-"
    rows = doc["layers"]
    parts = []
    for compressor, column, off in layer_columns(rows):
        values = [row.get(column, off) for row in rows]
        if isinstance(off, str):
            parts += [f"{v} {values.count(v)}/{len(values)}" for v in sorted(set(values) - {off})]
        elif off == 0:
            parts.append(f"{compressor} {100 * sum(values) / max(len(values), 1):.0f}%")
        elif any(v != off for v in values):
            parts.append(f"{compressor} {sum(v != off for v in values)}")
    shown = {column for _, column, _ in layer_columns(rows)}
    for step in doc["policy"].get("steps", []):
        cls = COMPRESSORS.get(step["compressor"]) if step["compressor"] in COMPRESSORS else None
        if cls is None or cls.layer_column not in shown:
            opts = ", ".join(f"{k} {v}" for k, v in step["options"].items() if not isinstance(v, dict))
            parts.append(f"{step['compressor']} {opts}".strip())
    if doc["policy"].get("distill"):
        parts.append("KD")
    return ", ".join(parts)


def _fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def sensitivity_names(quality) -> tuple[str, str]:
    """The column prefix and metric name of :func:`explanation_table` for a
    :class:`~slimnas.compress._quality.Quality`: ``("acc", "accuracy")`` or ``("r2", "R²")``."""
    return ("acc", "accuracy") if quality.is_accuracy else (quality.metric, quality.display)


def explanation_table(doc: dict, title: str, quality: tuple[str, str] = ("acc", "accuracy")) -> Table:
    """Per layer: width before/after, each compressor's setting, and accuracy (``quality``: the
    column prefix and the name of another task's metric) when pruned alone."""
    rows = doc["layers"]
    columns = [(c, off) for _, c, off in layer_columns(rows)]
    ratios = sorted({r for row in rows for r in row.get("sensitivity", {})}, key=float)
    t = Table(title=title, title_justify="left")
    for col in (*BASE_COLUMNS, *(c for c, _ in columns)):
        t.add_column(col, justify="left" if col == "layer" else "right")
    for r in ratios:
        t.add_column(f"{quality[0]}@{float(r):.0%}", justify="right")
    for row in rows:
        sens = row.get("sensitivity", {})
        kept, width = row["kept"], row["width"]
        removed = f"{1 - kept / width:.2f}" if kept is not None and width else "-"
        t.add_row(row["layer"], str(width), str(kept), removed, *(_fmt(row.get(c, off)) for c, off in columns),
                  *(f"{sens[r]:.3f}" if r in sens else "-" for r in ratios))
    notes = ["removed: share of the layer's channels removed (a layer tied to another one by a residual "
             "sum shares its cuts, whatever ratio it was given)"]
    if ratios:
        notes.append(f"{quality[0]}@r: validation {quality[1]} of the parent with only this layer pruned by r, before fine-tuning "
                     "(- where it could not be pruned that far)")
    t.caption = "\n".join(notes)
    return t


def sensitivity_table(result, title: str | None = None) -> Table:
    """A :class:`slimnas.compress.SensitivityResult` as a table: one row per layer, one column per ratio
    (validation accuracy, or the task's metric the result measured)."""
    quality = getattr(result, "quality", None)
    name = "accuracy" if quality is None or quality.is_accuracy else quality.display
    t = Table(title=title or f"Sensitivity: validation {name} when one layer is pruned")
    t.add_column("layer")
    for r in result.ratios:
        t.add_column(f"{r:.0%}", justify="right")
    for layer, points in result.curves.items():
        t.add_row(layer, *(f"{acc:.3f}" for _, acc, _ in points))
    t.caption = f"unpruned: {result.baseline:.3f}"
    return t
