"""Write ``benchmarks/results/INDEX.md``: every result with its commit, date, whether it is current
or superseded, and the claim of the docs it backs.

    python benchmarks/index_results.py           # rewrite INDEX.md
    python benchmarks/index_results.py --check   # exit 1 if INDEX.md is stale or a result is unclaimed

A result is the files of one stem (``x.json``, ``x.md``, ``x.png``). Its commit and date are its
JSON's ``package`` entry (``_common.package_state()``: the one place a result records them).
Where it is: ``results/`` holds each benchmark's current run, ``results/seeds/`` the other current
runs (further seeds of a current benchmark, reruns that give its spread, and the runs that are the
only evidence of a setting or decision the docs still state), ``results/archive/`` the superseded
ones (runs a newer run of the same configuration replaced, and runs of behaviour the code no
longer has). :data:`CLAIMS` says, per result, which claim of the docs it backs; a result no claim
names fails ``--check``, so a new results file cannot land without a line here.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
INDEX = RESULTS / "INDEX.md"
PAGE = "docs/benchmarks.md"

#: (stem pattern relative to results/, section of docs/benchmarks.md, the claim it backs);
#: the first pattern that matches a result names its claim
CLAIMS: list[tuple[str, str, str]] = [
    ("nasbench201", "nasbench201", "every strategy on NAS-Bench-201's table (30 seeds; 100/300 evaluations and the paper's budget) against the optimum and the published figures"),
    ("nasbench201_noise_floor", "nasbench201-noise-floor", "what NAS-Bench-201's noise leaves a search: latency residual after fitting every cell's operations 0.51 / 0.95 / 1.53 ms, the true front's cells mostly measured faster than their operations explain; an oracle with exact mean accuracies reaches 99.94 / 99.40 / 99.30% of the true front's hypervolume at 300 evaluations under the original protocol; ImageNet16-120 has 2 cells within 0.1 of the optimum and 21 within one seed-reading's spread (0.61)"),
    ("nasbench201_mo_gap", "nasbench201", "where local search, EHVI, TPE, NSGA-II and evolution fall short of the true accuracy x latency front at 300 evaluations: the missed area per latency band, coverage without seed noise, the every-cell-once ceiling and the true front's costliest cells"),
    ("archive/nasbench201_known_cost_whole_pool_*", "nasbench201-known-cost", "a variant not kept: every untried cell in ehvi's pool (a791e6e, reverted): 99.08 / 98.76 / 99.12% at 300 evaluations, 30 seeds, below the spread pool's on all three at 1.6x the CPU"),
    ("archive/nasbench201_known_cost_90408fa", "nasbench201-known-cost", "known-cost accuracy x latency before the choice-count kernel (ehvi at 90408fa), 30 seeds: 99.12 / 98.89 / 99.18% of the true front's hypervolume at 300 evaluations"),
    ("nasbench201_known_cost", "nasbench201-known-cost", "accuracy x latency with every cell's latency known before evaluation (--known-costs), ehvi with the choice-count kernel (16847c4), 30 seeds: 99.07 / 99.22 / 99.30% of the true front's hypervolume at 300 evaluations, beside the original protocol's best"),
    ("nasbench201_reevaluate", "nasbench201-reevaluate", "--reevaluate 1 (the leading cell re-read on its other seeds, within the 100 evaluations), 30 seeds: ehvi with the choice-count kernel 91.55 / 73.49 / 46.52 at 100 evaluations (gaps 0.05 / 0.00 / 0.22: ImageNet16-120 at the median's edge, 51% of 90 seeds within 0.1), gp 91.55 / 73.49 / 46.56; accuracy x latency (known-cost ehvi, K=1) 98.56 / 98.39 / 99.33%, below the 99.07 / 99.22 / 99.30% without"),
    ("archive/nasbench201_reevaluate_f46613a", "nasbench201-reevaluate", "--reevaluate 1 before ehvi's choice-count kernel (f46613a): ehvi 91.52 / 73.49 / 46.68 at 100 evaluations (16 of 30 ImageNet16-120 runs within 0.1); accuracy x latency 20 seeds 98.90 / 97.41 / 98.36%"),
    ("seeds/nasbench201_mo_gap", "nasbench201", "local search's accuracy x latency hypervolume share after 600 and 1,000 evaluations"),
    ("archive/nasbench201_285fe3f", "nasbench201", "every strategy on NAS-Bench-201 before ehvi was registered (accuracy x latency at 30 seeds, best: local search 99.53 / 96.99 / 96.56%); the current run reads the same logged runs and adds ehvi's"),
    ("archive/nasbench201_bea9e60", "nasbench201", "every strategy on NAS-Bench-201 with ehvi before its choice-count kernel (bea9e60): accuracy x latency best 99.53 (local) / 96.99 (local) / 98.32% (ehvi) at 300 evaluations"),
    ("archive/nasbench201_*", "nasbench201", "the run that charged the paper's budget in each dataset's own training time (the paper searched CIFAR-10 only), gp on 3 seeds"),
    ("mnist1d_vs_paper", "mnist1d-vs-paper", "a 20-minute search against the MNIST-1D paper CNN: 98.1% test at 26,520 MACs, 93.6% at a quarter of its MACs"),
    ("archive/mnist1d_vs_paper_*", "mnist1d-vs-paper", "earlier runs of the same benchmark (the quarter-MACs target missed in each: 93.0-93.7%)"),
    ("compress_mnist1d", "compress-mnist1d", "each compression step and the whole chain on the paper CNN, before/after"),
    ("archive/compress_mnist1d_*", "compress-mnist1d", "the d1aba5c run (the unpruned model at 87.5%; 0.9 points lost by 50% MACs + distillation + int8)"),
    ("auto_vs_uniform", "auto-vs-uniform", "--auto against uniform L1 ratios at 50% and 30% MACs"),
    ("archive/auto_vs_uniform_27bf3b9", "auto-vs-uniform", "the run at 27bf3b9, when --auto's refinement lasted a third of the final fine-tune (10 of 30 epochs), superseded by the rerun with half"),
    ("archive/auto_vs_uniform_9b15c96", "auto-vs-uniform", "the same figures before the one candidate pipeline (rerun identical at 27bf3b9)"),
    ("archive/auto_vs_uniform_*", "auto-vs-uniform", "the run before --auto rounded channels for the runtime by default and kept its final fine-tune's best epoch"),
    ("workloads", "workloads", "tabular, image and text workloads beyond MNIST-1D"),
    ("workloads_image", "workloads", "the image section: hardware-aware --auto's latency drop against plain --auto"),
    ("archive/workloads_*", "workloads", "an earlier run of the workloads, replaced by a rerun with the same figures"),
    ("joint_vs_sequential", "joint-vs-sequential", "joint, supernet and sequential routes at equal wall-clock, seed 0"),
    ("joint_vs_sequential_seed1", "joint-vs-sequential", "the same, seed 1"),
    ("route_equivalence", "joint-vs-sequential", "the joint and supernet routes trial by trial against eb89a9d, before the one candidate pipeline: the restructure left their figures unchanged"),
    ("seeds/joint_vs_sequential_3objectives*", "joint-vs-sequential", "bytes as a third objective does not help the accurate end"),
    ("archive/joint_vs_sequential_9163445*", "joint-vs-sequential", "the runs at 9163445 (seeds 0 and 1), when --auto's refinement in the sequential route lasted a third of its 20 final epochs; the reruns with half read within a point (the supernet route's figures unchanged)"),
    ("archive/joint_vs_sequential_*", "joint-vs-sequential", "earlier runs of the benchmark (2853cb3, 606f8f7, db34bf3) and a 32-candidate variant not kept"),
    ("supernet_mnist1d", "supernet-mnist1d", "the supernet route with 2-fold scoring, seed 0"),
    ("seeds/supernet_mnist1d_seed*", "supernet-mnist1d", "the supernet route with 2-fold scoring, seeds 1-7 (the table's right column)"),
    ("seeds/supernet_mnist1d_1fold_e8cf2f3_seed*", "supernet-mnist1d", "the route scored on the validation split alone, seeds 0-7 (the table's left column)"),
    ("seeds/supernet_mnist1d_*", "supernet-mnist1d", "evidence for one of the route's settings (dropout, fine-tune rate, warm-up, candidates, epochs, precision: tried and kept or not)"),
    ("archive/supernet_mnist1d_1fold_seed*", "supernet-mnist1d", "earlier split-alone runs on another machine, replaced by the paired e8cf2f3 runs"),
    ("archive/supernet_mnist1d_*", "supernet-mnist1d", "a reverted change of the route (hypervolume spread, per-worker seeds)"),
    ("cheap_end_variance", "cheap-end-variance", "the fine-tune's learning-rate warm-up steadies the cheapest candidates"),
    ("seeds/cheap_end_variance_nodropout_*", "cheap-end-variance", "the skeleton has no dropout"),
    ("seeds/cheap_end_variance_distill_*", "cheap-end-variance", "the route does not distil"),
    ("seeds/cheap_end_variance_refit_*", "cheap-end-variance", "the route does not refit on training + validation data"),
    ("archive/cheap_end_variance_*", "cheap-end-variance", "the 80-epoch supernet's candidates (the route now trains 240 epochs)"),
    ("strategies_mnist1d", "strategies-mnist1d", "every strategy at equal wall-clock against random search"),
    ("seeds/strategies_mnist1d_grid_random_*", "strategies-mnist1d", "grid's lead over random is within random's spread"),
    ("seeds/strategies_mnist1d_darts_default_*", "strategies-mnist1d", "DARTS at its default search gives no feasible model in 3 minutes"),
    ("archive/strategies_mnist1d_*", "strategies-mnist1d", "earlier runs, replaced by the run of every strategy"),
    ("latency_predictor", "latency-predictor", "the device-profile predictor's rank correlation and share within +-15%"),
    ("seeds/latency_predictor_same_hour_runs", "latency-predictor", "on a busy machine the predictor reads lower"),
    ("hardware_aware", "hardware-aware", "latency-driven channel counts against uniform pruning (paper CNN, 2-D CNN)"),
    ("hardware_aware_table_only", "hardware-aware", "the same allocating by the table alone, without timing"),
    ("seeds/hardware_aware_864e684", "hardware-aware", "a rerun of the same benchmark: the spread of its figures"),
    ("hardware_aware_rows", "hardware-aware", "the paper CNN shipped as onnx-fp32-rows"),
    ("seeds/hardware_aware_rows_*", "hardware-aware", "earlier runs in the rows layout: the spread of the allocation's figures (1.25x-1.50x)"),
    ("archive/hardware_aware_5afbce5", "hardware-aware", "the run at 5afbce5, before the int8 choice's whole-file timing was read as interleaved per-round ratios and --auto's refinement became half the final fine-tune: the same int8 choices, superseded by hardware_aware"),
    ("archive/hardware_aware_*", "hardware-aware", "behaviour since changed (fit to the raw target, most MACs within noise, the path's own knee) or an older run"),
    ("conv_overhead", "conv-overhead", "the paper CNN's fixed latency: why its latency cannot follow its MACs"),
    ("scaling", "scaling", "two workers against one, and a kill -9 and restart"),
    ("tasks", "tasks", "regression (diabetes, 5 splits) and multi-label (digits-multilabel) through slimnas search against Ridge and one-vs-rest logistic regression on the same splits, with the gaps' bootstrap intervals"),
    ("low_bit", "lowbit", "int8, int4/int2 with GPTQ against round-to-nearest, 4-bit palettizations and mixed precision under 0.6x int8's bytes, each file run in ONNX Runtime, its bytes on disk against the bytes reported; the Transformer's int4 latency at batch 1 (paper CNN, text Transformer, MobileNetV2-style, MLP)"),
    ("archive/low_bit_36df1eb*", "lowbit", "the low-bit benchmark at 36df1eb, before --auto's refinement became half the final fine-tune (mixed precision: the Transformer 0.587x, the MobileNet 0.28 points from fp32), superseded by low_bit"),
    ("archive/low_bit_311ef81*", "lowbit", "the low-bit benchmark at 311ef81, before palettes covered embeddings and held folded batch-norm factors at fp16 (4-bit palettes 0.66-0.68x of int8), superseded by low_bit"),
    ("archive/low_bit_f26227c*", "lowbit", "the low-bit benchmark at f26227c, before 4-bit codes were ONNX's UINT4 type (MobileNetV2 palette4 0.567x, paper CNN 0.604x of int8: 8-16 unpacking nodes a layer), superseded by low_bit"),
    ("archive/lowbit_*", "lowbit", "the first run of benchmarks/lowbit.py (MLP and paper CNN only, at 161a97a), superseded by low_bit"),
    ("seeds/tasks_detection_78e5f57_run*", "tasks-detection", "the same command at 78e5f57 with PYTHONHASHSEED 2 and 3 (the committed run had 1): every figure as in the committed run, 1.41 points lost"),
    ("seeds/tasks_detection_78e5f57_loaded*", "tasks-detection", "the same command at 78e5f57 beside two language-model benchmark runs on the 2 cores (PYTHONHASHSEED 0 and 3): every figure as in the committed run, 1.41 points lost: the timing-driven choices (channel rounding, int8 or fp32) held under load"),
    ("archive/tasks_detection_eee00d8_run1", "tasks-detection", "the first of three runs at eee00d8: channel counts rounded to multiples of 8 at 0.91x the allocation's MACs, kept because the rounded model timed faster than the unrounded one (not faster per MAC), taylor criterion, 0.45x MACs: 3.71 points of test mAP@0.5 lost (target: at most 2); 78e5f57 keeps a rounding only where it times faster per MAC"),
    ("archive/tasks_detection_eee00d8_run2", "tasks-detection", "the second of the three runs at eee00d8: 1.41 points lost, every figure as in the third"),
    ("archive/tasks_detection_eee00d8", "tasks-detection", "the third run at eee00d8, superseded by the run at 78e5f57 (every figure the same)"),
    ("archive/tasks_detection_883c7b4", "tasks-detection", "the run at 883c7b4, when --auto's refinement lasted a third of the final fine-tune: every figure as in the rerun with half (the int8 file 63 bytes larger)"),
    ("archive/tasks_detection_hashseed*", "tasks-detection", "the same command at 196c99d with PYTHONHASHSEED 1, 2 and 3: 1.41 / 1.41 / 1.38 points lost, hash seed 3 keeping the same ratios in fp32 instead of int8; the same --auto run repeated under two hash seeds gives identical trials, so the hash seed was not the cause: the int8-or-fp32 choice is a whole-file timing (int8 about 0.82x fp32 on this detector, each file timed twice in turn before 78e5f57, four interleaved rounds read as ratios since)"),
    ("tasks_detection", "tasks-detection", "a user's CenterNet on boxes64 through compress --auto to 50% of its MACs: test mAP@0.5 lost, and its int8 file's boxes against the eager model's"),
    ("tasks_lm", "tasks-lm", "a character-level decoder on pysource, --auto to 50% of its MACs against uniform pruning with the same fine-tune, test perplexity of each ONNX file"),
    ("seeds/tasks_lm_final20_seed*", "tasks-lm", "the same run with --lm-final-epochs 20 (auto's final fine-tune and uniform's, both twice as long; at 627179c, when --auto's refinement lasted a third of the final fine-tune, 6 epochs): how far the 10-epoch default leaves both rows from the unpruned decoder"),
    ("seeds/tasks_lm_refine3_seed*", "tasks-lm", "the same run with --lm-refine-epochs 3 (--auto's refinement a third of the final fine-tune, as before 6bc5dc3), seeds 0 and 1: its rows rank 0.003 above 0.009 (validation perplexity 10.44 / 10.65 and 10.16 / 10.21 with l1), the reverse of 5-epoch rows, and auto reads 8.026 / 8.024 (+11.5% / +11.7%)"),
    ("seeds/tasks_lm_refinetop3_seed*", "tasks-lm", "the same run with --lm-refine-top 3 (auto_compress(refine_top=3): the refinement fine-tunes the 3 best trials' shapes), seeds 0-3 at 55f3138: auto 7.772 / 7.749 / 7.707 / 7.674 (+8.0% / +7.9% / +9.4% / +8.6%, within 10% on all four), uniform 7.764 / 7.814 / 7.707 / 7.663; seeds 0 and 3 keep uniform's shape (trial 3) instead of the shapes that ended 0.13 above it"),
    ("seeds/tasks_lm_seed*", "tasks-lm", "the same run with --seed 1, 2 and 3 (another decoder, auto and fine-tune seed; the file names say which): the spread of the figures, each with the test split's paired bootstrap over its source files"),
    ("archive/tasks_lm_90af5a0", "tasks-lm", "seed 0 at 90af5a0, before the test split's bootstrap: every figure as in the rerun at 0f5bfd0 (auto 7.898, uniform 7.764)"),
    ("archive/tasks_lm_seed1_90af5a0", "tasks-lm", "--seed 1 at 90af5a0, before the bootstrap: every figure as at 0f5bfd0 (auto 7.749, uniform 7.814)"),
    ("archive/tasks_lm_627179c", "tasks-lm", "seed 0 at 627179c, when --auto's refinement lasted a third of the final fine-tune (3 epochs) and kept the recipe's learning rate 0.003: auto 8.026 (+11.5%, missed), uniform at its MACs 7.992"),
    ("archive/tasks_lm_seed1_627179c", "tasks-lm", "--seed 1 at 627179c, superseded the same way (3-epoch refinement, lr 0.003): auto 8.024 (+11.7%, missed), uniform at its MACs 8.075"),
    ("archive/tasks_lm_826b082", "tasks-lm", "seed 0 at 826b082, before --auto's uniform warm start kept whole heads (its rescaled 0.5 removed 3 of 4 heads, so uniform's shape was never tried): auto 7.811 (+8.6%), uniform at its MACs 7.764"),
    ("archive/tasks_lm_seed1_826b082", "tasks-lm", "--seed 1 at 826b082, superseded the same way: auto 8.007 (+11.4%), uniform at its MACs 8.075"),
    ("archive/tasks_lm_d9c91b9", "tasks-lm", "seed 0 at d9c91b9, before --auto could keep every head of an attention: auto 7.857 (its ratio 0.014 removed one of block 0's 4 heads), uniform at its MACs 7.764"),
    ("archive/tasks_lm_7499127", "tasks-lm", "the run at 7499127, superseded: uniform only at one ratio for every layer (53.5% / 39.0% of the MACs, not auto's 49.9%): auto 7.857, uniform 7.752 / 8.284"),
    ("archive/tasks_lm_seed1_7499127", "tasks-lm", "--seed 1 at 7499127, superseded the same way: auto 8.007, uniform 7.911 at 53.5% / 8.768 at 39.0%"),
    ("archive/tasks_lm_*", "tasks-lm", "the first run (at e5ba394), with shorter fine-tunes than --auto's own (1 epoch a trial, 6 final)"),
    ("bit_allocation", "bit-allocation", "mixed precision per layer under 0.6x uniform int8's bytes, within 1 point of fp32 (paper CNN)"),
    ("archive/bit_allocation_3b43af1", "bit-allocation", "the run at 3b43af1, before --auto's refinement lasted half the final fine-tune (auto 0.555x int8's bytes, 0.80 points below fp32, missed by 0.1 point on seed 1), superseded"),
    ("archive/bit_allocation_a893cc6*", "bit-allocation", "the first run (at a893cc6), every figure identical to the rerun at dbd35d1"),
    ("archive/bit_allocation_dbd35d1*", "bit-allocation", "the run at dbd35d1, before palettes' sensitive clustering and fp16 tables (auto 0.579x int8's bytes), superseded"),
    ("archive/scaling_*", "scaling", "an earlier run, replaced by the rerun at 864e684"),
]


def results() -> dict[str, list[Path]]:
    """Stem (relative to results/) -> its files."""
    out: dict[str, list[Path]] = {}
    for path in sorted(RESULTS.rglob("*")):
        if path.is_file() and path != INDEX:
            stem = str(path.relative_to(RESULTS).with_suffix(""))
            out.setdefault(stem, []).append(path)
    return out


def claim_of(stem: str) -> tuple[str, str] | None:
    for pattern, section, claim in CLAIMS:
        if fnmatch.fnmatchcase(stem, pattern):
            return section, claim
    return None


def package_of(files: list[Path]) -> dict:
    js = next((f for f in files if f.suffix == ".json"), None)
    if js is None:
        return {}
    try:
        doc = json.loads(js.read_text())
    except ValueError:
        return {}
    package = doc.get("package") if isinstance(doc, dict) else None
    package = dict(package) if isinstance(package, dict) else {}
    if "date" not in package and isinstance(doc, dict) and (doc.get("date") or doc.get("generated")):
        package["date"] = doc.get("date") or doc["generated"]  # older runs wrote it beside the package
    return package


def committed(path: Path) -> str:
    """When the newest commit that wrote ``path``'s content (not a pure move) was made, for results
    that did not record their date: ``YYYY-MM-DD HH:MM UTC``, or ``?`` outside a git checkout."""
    try:
        out = subprocess.run(["git", "log", "--follow", "--name-status", "--date=format-local:%Y-%m-%d %H:%M",
                              "--format=@%ad", "--", path.name], cwd=path.parent, capture_output=True, text=True,
                             timeout=30, env={**os.environ, "TZ": "UTC"}).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    for block in out.split("@")[1:]:
        date, *status = block.strip().splitlines()
        if not any(s.startswith(("R100", "C100")) for s in status):
            return f"{date} UTC"
    return "?"


def rows() -> tuple[list[dict], list[str]]:
    """One row per result, and the problems ``--check`` reports."""
    out, problems = [], []
    for stem, files in results().items():
        package, claim = package_of(files), claim_of(stem)
        if not package.get("date"):
            package["date"], package["date_committed"] = committed(files[0]), True
        if not package.get("commit"):
            problems.append(f"{stem}: no package.commit in its JSON")
        if claim is None:
            problems.append(f"{stem}: no claim in benchmarks/index_results.py CLAIMS")
        out.append({"stem": stem, "files": ", ".join(f.suffix[1:] for f in files),
                    "status": "superseded" if stem.startswith("archive/") else "current",
                    "commit": (package.get("commit") or "?")[:10] + (" (dirty)" if package.get("slimnas_dirty") else ""),
                    "date": package["date"] + (" (committed)" if package.get("date_committed") else ""),
                    "recorded": package.get("recorded"),
                    "section": claim[0] if claim else "", "claim": claim[1] if claim else "(no claim)"})
    return out, problems


def render(items: list[dict]) -> str:
    current = [r for r in items if r["status"] == "current"]
    lines = ["# Benchmark results: index", "",
             "Generated by `python benchmarks/index_results.py` from the files in `benchmarks/results/`; do not",
             "edit by hand. Each result's commit and date are its JSON's `package` entry (marked * where they",
             "were recovered afterwards from git history or the file's name, the run not having recorded them;",
             "\"(committed)\": the run recorded no date, the date is the commit that wrote the file).",
             "Current results are in `results/` (each benchmark's latest run) and `results/seeds/` (its other",
             "seeds, reruns that give its spread, and runs that are the only evidence of a setting the docs",
             "state); superseded ones are in `results/archive/`. The claims are on the benchmarks page of the",
             f"docs (`{PAGE}`, section in brackets).", "",
             f"{len(current)} current and {len(items) - len(current)} superseded results.", ""]
    for status in ("current", "superseded"):
        lines += [f"## {status.capitalize()}", "", "| result | files | commit | date | backs |", "|---|---|---|---|---|"]
        for r in items:
            if r["status"] == status:
                mark = "*" if r["recorded"] else ""
                lines.append(f"| `{r['stem']}` | {r['files']} | `{r['commit']}`{mark} | {r['date']}{mark} | "
                             f"{r['claim']} [{r['section']}] |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if INDEX.md is stale or a result lacks a claim or commit")
    args = parser.parse_args(argv)
    items, problems = rows()
    text = render(items)
    if args.check:
        written = INDEX.read_text() if INDEX.exists() else ""
        if written != text:
            problems.append(f"{INDEX} is stale: run python benchmarks/index_results.py")
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    INDEX.write_text(text)
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    print(f"wrote {INDEX} ({len(items)} results)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
