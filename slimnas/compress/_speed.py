"""Did compression make the model faster where it was measured? The latency change of a
compressed model against its input, batch by batch, on the runtime both were timed on, and the
plain warning a slower result gets (fewer MACs or bytes do not make a model faster by
themselves: odd channel counts, int8 kernels and quantize/dequantize pairs can cost more than
they save)."""

from __future__ import annotations

from slimnas.config import DEFAULT_RUNTIME

PREFIX = "latency_ms_b"
#: a result is called slower where its latency is more than this share above its input's
#: (timing noise on a busy machine stays below it at the medians measured)
SLOWER_TOLERANCE = 0.05


def latency_change(before: dict, after: dict, *, runtime: str = DEFAULT_RUNTIME, threads: int = 1) -> dict:
    """Per batch measured on both sides (``latency_ms_b<batch>``): before and after in ms and
    their ratio; ``slower_at`` lists the batches where the result is slower than its input by
    more than :data:`SLOWER_TOLERANCE`."""
    batches = sorted(int(k[len(PREFIX):]) for k in after if k.startswith(PREFIX) and k in before
                     and k[len(PREFIX):].isdigit())
    rows, slower = {}, []
    for b in batches:
        was, now = float(before[f"{PREFIX}{b}"]), float(after[f"{PREFIX}{b}"])
        ratio = now / was if was > 0 else float("nan")
        rows[str(b)] = {"before_ms": round(was, 6), "after_ms": round(now, 6), "ratio": round(ratio, 4)}
        if ratio > 1 + SLOWER_TOLERANCE:
            slower.append(b)
    return {"runtime": runtime, "threads": threads, "batches": rows, "slower_at": slower}


def is_slower(change: dict) -> bool:
    return bool(change.get("slower_at"))


def _where(change: dict) -> str:
    threads = change.get("threads", 1)
    return f"{change.get('runtime', 'onnxruntime')}, {threads} thread{'s' if threads != 1 else ''}"


def latency_summary(change: dict) -> str:
    """``latency after/before on onnxruntime, 1 thread: 0.72x at batch 1, 0.64x at batch 64``."""
    parts = [f"{row['ratio']:.2f}x at batch {b}" for b, row in change["batches"].items()]
    return f"latency after/before on {_where(change)}: " + (", ".join(parts) if parts else "not measured")


#: budget metrics that ask for a smaller model, not a faster one
SIZE_METRICS = ("macs", "params", "bytes", "int8_bytes")


def slower_warning(change: dict, budget=()) -> str | None:
    """The warning for a result slower than its input (``None`` where it is not). With the
    ``budget`` the result was chosen under (:class:`~slimnas.measure.Budget` items), it says why a
    slower result is what was kept: the latency limits it misses (no policy tried met them: it
    is the closest), or, without one, the MAC, parameter or byte limits that asked for a smaller
    model rather than a faster one."""
    if not is_slower(change):
        return None
    parts = ", ".join(f"{change['batches'][str(b)]['ratio']:.2f}x the latency at batch {b}" for b in change["slower_at"])
    text = (f"the compressed model is SLOWER than its input on {_where(change)}: {parts} "
            "(fewer MACs or bytes do not make it faster there)")
    latency = [str(b) for b in budget if b.metric == "latency_ms"]
    size = [str(b) for b in budget if b.metric in SIZE_METRICS]
    if latency:
        return (f"{text}; it misses the latency budget {', '.join(latency)}: no policy tried met it, and this is "
                "the closest")
    if size:
        return (f"{text}; it is kept because the budget {', '.join(size)} asks for a smaller model, not a faster "
                "one: add a latency budget (e.g. 'latency_ms<=100%') to rule out layouts slower than the input")
    return text
