"""Why pruning the MNIST-1D paper CNN cannot cut its ONNX Runtime latency in proportion to its MACs.

The paper CNN at every width from 25 channels (the original) down to 4, all layers alike, timed in
ONNX Runtime on the CPU (1 thread) in interleaved rounds at batch 1 and 64, and fitted as
``latency = fixed + per_mac * MACs``. The fixed part is what no channel count removes (per-call
and per-operator work; ONNX Runtime's convolution also runs im2col and a GEMM per image, so at
batch 64 part of it grows with the batch). From the fit, the largest latency drop / MAC drop any
pruning can reach at a latency share ``s`` is ``(1 - s) / (1 - m)`` with ``m = (s - f) / (1 - f)``
the MAC share it needs (``f`` the fixed share); below ``f`` no pruning reaches ``s``. Widths the
line misses by over a quarter are listed: there the runtime picks another kernel (in the rows
layout, ONNX Runtime's blocked NCHWc convolutions keep their layout from one layer to the next
where the channels fill whole blocks, and such a width beats the fit's bound).
``benchmarks/hardware_aware.py`` asks for >= 0.9 at batch 64 and >= 0.6 at batch 1, at 50% and 30%.

The same networks are also exported as ``onnx-fp32-rows`` (``rows``): the batch laid out as the
rows of one image, each 1-D convolution a 2-D one with a 1 x k kernel over ``(1, C, N, L)``, one
im2col and one GEMM for the whole batch (every file verified against the eager model by the
exporter). How much faster that is, and how much of the fixed part it removes, says how much of
it is the per-image work.

Usage: ``python benchmarks/conv_overhead.py [--rounds 7] [--out benchmarks/results]`` (about a minute).
Writes ``conv_overhead.json`` and ``conv_overhead.md``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import commit_label, package_state  # benchmarks/ is on sys.path when run as a script

from slimnas.export import export_model
from slimnas.measure import count_macs, interleaved_latency
from slimnas.models import mnist1d_paper_cnn

WIDTHS = (25, 24, 22, 18, 16, 12, 10, 8, 6, 4)
BATCHES = (1, 64)
SHARES = (0.5, 0.3)
LAYOUTS = ("plain", "rows")
OFF_FIT = 0.25
FORMATS = {"plain": "onnx-fp32", "rows": "onnx-fp32-rows"}


def best_ratio(share: float, fixed: float) -> float | None:
    """The latency drop / MAC drop of a model at ``share`` of the latency when ``fixed`` of it
    does not shrink with the MACs; ``None`` where no model reaches the share."""
    if share <= fixed:
        return None
    mac_share = (share - fixed) / (1 - fixed)
    return (1 - share) / (1 - mac_share)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args()
    t0 = time.perf_counter()
    models, macs = {}, {}
    tmp = Path(tempfile.mkdtemp())
    for w in WIDTHS:  # each width written by the exporter in both layouts, each file verified
        model = mnist1d_paper_cnn(width=w).eval()
        macs[w] = count_macs(model, (1, 40))
        for layout in LAYOUTS:
            path = tmp / f"{layout}-{w}.onnx"
            export_model(model, path, (1, 40), format=FORMATS[layout])
            models[layout, w] = path
    lat = interleaved_latency(models, (1, 40), batches=BATCHES, rounds=args.rounds, repeats=100)
    rows, fits = [], {}
    for layout, b in itertools.product(LAYOUTS, BATCHES):
        x = np.array([macs[w] for w in WIDTHS], dtype=float)
        y = np.array([lat[layout, w][b] for w in WIDTHS])
        per_mac, fixed = np.polyfit(x, y, 1)
        r2 = 1 - float(np.sum((y - (fixed + per_mac * x)) ** 2) / np.sum((y - y.mean()) ** 2))
        f = float(fixed / lat[layout, 25][b])
        fits[f"{layout} {b}"] = {
            "layout": layout, "batch": b, "fixed_ms": round(float(fixed), 5),
            "ms_per_mmac": round(float(per_mac) * 1e6, 4), "r2": round(r2, 4), "fixed_share": round(f, 3),
            "original_ms": round(lat[layout, 25][b], 5),
            # widths the line misses by over a quarter: a kernel the runtime picks for some channel
            # counts (ONNX Runtime's blocked NCHWc convolutions chain from layer to layer where the
            # channels fill whole blocks)
            "off_the_fit": {w: round(float(lat[layout, w][b] / (fixed + per_mac * macs[w])), 2) for w in WIDTHS
                            if abs(lat[layout, w][b] / (fixed + per_mac * macs[w]) - 1) > OFF_FIT},
            "best_drop_ratio": {f"{int(s * 100)}%": None if best_ratio(s, f) is None else round(best_ratio(s, f), 3)
                                for s in SHARES}}
        for w in WIDTHS:
            share, mshare = lat[layout, w][b] / lat[layout, 25][b], macs[w] / macs[25]
            rows.append({"layout": layout, "batch": b, "width": w, "macs": macs[w], "ms": round(lat[layout, w][b], 5),
                         "latency_share": round(share, 3), "mac_share": round(mshare, 3),
                         "drop_ratio": None if w == 25 else round((1 - share) / (1 - mshare), 3)})
    doc = {"package": package_state(), "seconds": round(time.perf_counter() - t0, 1), "rounds": args.rounds,
           "runtime": "onnxruntime cpu, 1 thread", "rows": rows, "fits": fits}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "conv_overhead.json").write_text(json.dumps(doc, indent=1))
    md = ["# The paper CNN's fixed latency in ONNX Runtime (CPU, 1 thread)", "",
          f"`python benchmarks/conv_overhead.py --rounds {args.rounds}` at {commit_label(doc['package'])}, "
          f"{doc['seconds']} s. Every convolution at the same width; latency: fastest of {args.rounds} "
          "interleaved rounds of medians.", "",
          "| layout | batch | width | MACs | ms | latency share | MAC share | latency drop / MAC drop |",
          "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = "-" if r["drop_ratio"] is None else f"{r['drop_ratio']:.2f}"
        md.append(f"| {r['layout']} | {r['batch']} | {r['width']} | {r['macs']:,} | {r['ms']:.4f} | {r['latency_share']:.2f} | "
                  f"{r['mac_share']:.2f} | {ratio} |")
    md += ["", "Fit `latency = fixed + per_mac * MACs` and the best drop ratio it allows:", "",
           "| layout | batch | original ms | fixed ms | fixed share of the original | ms per million MACs | R^2 "
           "| best at 50% | best at 30% | widths off the fit (measured / fit) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for v in fits.values():
        best = ["not reachable" if x is None else f"{x:.2f}" for x in v["best_drop_ratio"].values()]
        md.append(f"| {v['layout']} | {v['batch']} | {v['original_ms']:.4f} | {v['fixed_ms']:.4f} | {v['fixed_share']:.2f} | {v['ms_per_mmac']:.3f} | {v['r2']:.3f} | "
                  f"{best[0]} | {best[1]} | "
                  + (", ".join(f"{w}: {r:.2f}" for w, r in v["off_the_fit"].items()) or "-") + " |")
    (args.out / "conv_overhead.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
