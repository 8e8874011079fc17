"""Numbers as tables show them."""

from __future__ import annotations


def fmt_count(v: float) -> str:
    """``12.3k``, ``4.5M``: a count or a byte size, short."""
    v = float(v)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.1f}{unit}"
    return f"{v:.0f}"
