"""Search progress (best so far, hypervolume so far): computed by :mod:`slimnas.study`, where a
running study's listeners use it too, and shown by the report."""

from __future__ import annotations

from slimnas.study._progress import hypervolume_scales, progress, scaled_point

__all__ = ["hypervolume_scales", "progress", "scaled_point"]
