"""Conformance of a registered latency runtime: its declaration is complete (what it times, its
precisions, its layout) and, where this machine can run it, it times a tiny model given as it
declares (the eager model or the exported file) to a positive, finite figure."""

from __future__ import annotations

import math
import tempfile

from slimnas.config import precision_names
from slimnas.measure._latency import RUNTIMES, TIMES, LatencyStats
from slimnas.testing._fixtures import SHAPE, TINY_MODELS


def check_runtime(name: str) -> dict:
    """Run every check on the runtime registered as ``name``; raises ``AssertionError`` naming the
    first that fails. Returns ``{"times": ..., "median_ms": ...}`` (``median_ms`` is ``None``
    where the runtime cannot run here, with the reason as ``"unavailable"``).

    1. Its declaration is complete: its name, ``times`` one of :data:`~slimnas.measure.TIMES`,
       at least one precision, each registered (:func:`~slimnas.config.precision_names`), a ``plain`` or ``rows`` layout.
    2. Where :meth:`~slimnas.measure.BaseLatency.unavailable` says it runs here, a tiny model in
       the form it declares (``source``) is timed to a positive, finite median with its spread.
    """
    cls = RUNTIMES.get(name)
    assert cls.name == name, f"{name}: registered under another name ({cls.name!r})"
    assert cls.times in TIMES, f"{name}: 'times' is {cls.times!r}, not one of {list(TIMES)}"
    assert cls.precisions, f"{name}: no precisions"
    unknown = [p for p in cls.precisions if p not in precision_names()]
    assert not unknown, f"{name}: precisions {unknown} are not registered (slimnas.config.register_precision)"
    assert cls.layout in ("plain", "rows"), f"{name}: layout {cls.layout!r}"
    rt = cls(batch_size=2, warmup=1, repeats=3, min_time_ms=0.0)
    why = rt.unavailable()
    if why is not None:
        return {"times": cls.times, "median_ms": None, "unavailable": why}
    model = TINY_MODELS["mlp"]()
    with tempfile.TemporaryDirectory() as tmp:
        target = rt.source(model, SHAPE, tmp)
        if cls.times == "file":
            assert isinstance(target, (str, bytes)) or hasattr(target, "read_bytes"), \
                f"{name}: times files, but its source is a {type(target).__name__}"
        stats = rt.measure_stats(target, SHAPE)
    assert isinstance(stats, LatencyStats) and stats.runtime == name, f"{name}: measure_stats gave {stats!r}"
    assert math.isfinite(stats.median_ms) and stats.median_ms > 0, f"{name}: a median of {stats.median_ms!r} ms"
    assert stats.p10_ms <= stats.median_ms <= stats.p90_ms, f"{name}: its spread does not surround its median"
    return {"times": cls.times, "median_ms": stats.median_ms}
