"""Why each layer was compressed as it was: per-layer decisions next to their sensitivity."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table


def read_policy(trial_dir: str | Path) -> dict | None:
    path = Path(trial_dir) / "policy.json"
    return json.loads(path.read_text()) if path.is_file() else None


def policy_summary(doc: dict | None) -> str:
    """One line: mean pruning ratio, how many layers are int8/fp16, ranks, clustering, distillation."""
    if not doc:
        return "-"
    layers = doc["layers"]
    ratios = [row["ratio"] for row in layers]
    parts = [f"prune {100 * sum(ratios) / max(len(ratios), 1):.0f}%"]
    for p in ("int8", "fp16"):
        n = sum(row["precision"] == p for row in layers)
        if n:
            parts.append(f"{p} {n}/{len(layers)}")
    n_rank = sum(row["rank"] < 1 for row in layers)
    if n_rank:
        parts.append(f"low-rank {n_rank}")
    pol = doc["policy"]
    if pol.get("cluster"):
        parts.append(f"k-means {pol['cluster']}")
    if pol.get("distill"):
        parts.append("KD")
    return ", ".join(parts)


def explanation_table(doc: dict, title: str) -> Table:
    """Per layer: width before/after, ratio, precision, rank, and accuracy when pruned alone."""
    layers = doc["layers"]
    ratios = sorted({r for row in layers for r in row.get("sensitivity", {})}, key=float)
    t = Table(title=title, title_justify="left")
    for col in ("layer", "width", "kept", "ratio", "precision", "rank"):
        t.add_column(col, justify="left" if col == "layer" else "right")
    for r in ratios:
        t.add_column(f"acc@{float(r):.0%}", justify="right")
    for row in layers:
        sens = row.get("sensitivity", {})
        t.add_row(row["layer"], str(row["width"]), str(row["kept"]), f"{row['ratio']:.2f}", row["precision"],
                  f"{row['rank']:.2f}", *(f"{sens[r]:.3f}" if r in sens else "-" for r in ratios))
    if ratios:
        t.caption = "acc@r: validation accuracy of the parent with only this layer pruned by r, before fine-tuning"
    return t
