"""MNIST-1D: how accurate the supernet route's cheapest candidates get, fine-tune seed by seed.

``benchmarks/supernet_mnist1d.py`` asks for a front model >= 94% test accuracy at <= 7,938 MACs
(a quarter of the paper CNN's). This script asks how much of that is in the candidates and how
much is the luck of one fine-tune: it takes a supernet run folder made by that benchmark, the
stored candidates at or below ``--max-macs``, and fine-tunes each from its inherited weights
under ``--seeds`` seeds, as the route's trials do (the stored recipe, ``finetune_epochs`` at
``finetune_lr`` times its learning rate, with its ``finetune_warmup``; fp32: the trials' int8
layers are left out), in each of six ways:

- ``plain``: the route's fine-tune;
- ``swa``: the same, with the weights averaged over its last quarter of epochs and batch norm
  recalibrated after (stochastic weight averaging, Izmailov et al. 2018);
- ``distill``: the same, with knowledge distillation (Hinton et al. 2015; T = 4, half the loss
  on the teacher) from the run's most expensive candidate, fine-tuned once;
- ``warmup``: the same, with the learning rate rising linearly from 1% over the first
  ``--warmup`` share of the steps (what the route's ``finetune_warmup`` option does);
- ``nodropout``: the same, with the sub-network's dropout off (a supernet trained with
  dropout, its candidates fine-tuned without);
- ``refit``: the same, on the training and validation samples together (what deploying a
  candidate refit on all non-test data after choosing it by cross-validation would give; its
  validation accuracy is then in-sample and not a score).

It writes ``results/cheap_end_variance.{json,md}``: per candidate and way, validation and test
accuracy of each seed, their mean and spread, and the share of seeds >= 94% on test. The test
set scores the fine-tunes here; nothing is chosen by it.

Usage::

    python benchmarks/supernet_mnist1d.py --seed 0 --run-dir runs/sn   # makes the supernet run
    python benchmarks/cheap_end_variance.py runs/sn/supernet-<stamp>/supernet
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from _common import package_state  # benchmarks/ is on sys.path when run as a script
from torch.optim.swa_utils import AveragedModel

from slimnas.compress import DistillationLoss
from slimnas.config import load_config
from slimnas.data import load_dataset
from slimnas.report import arch_summary
from slimnas.spaces import SearchSpace, TrainSpec, arch_from_dict, get_family
from slimnas.training import Callback, evaluate, fit, recalibrate_bn

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "configs" / "mnist1d_vs_paper.yaml"
NAME = "cheap_end_variance"
WAYS = ("plain", "swa", "distill", "warmup", "nodropout", "refit")
TARGET = 0.94


class _Average(Callback):
    """Averages the model's weights from epoch ``start`` on."""

    def __init__(self, model: torch.nn.Module, start: int) -> None:
        self.model, self.start, self.average = model, start, None

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch < self.start:
            return
        if self.average is None:
            self.average = AveragedModel(self.model)
        else:
            self.average.update_parameters(self.model)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("supernet", type=Path, help="a supernet run's supernet/ folder (report.json and the checkpoint)")
    p.add_argument("--max-macs", type=float, default=7938)
    p.add_argument("--min-macs", type=float, default=0, help="leave out candidates under this (default: none)")
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated, of {list(WAYS)}")
    p.add_argument("--warmup", type=float, default=0.1, help="the warmup way's share of the steps, in (0, 1)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    ways = [w for w in args.ways.split(",") if w]
    if not 0 < args.warmup < 1:
        print(f"error: --warmup: expected a share of the steps in (0, 1), got {args.warmup}", file=sys.stderr)
        return 2
    if not set(ways) <= set(WAYS):
        print(f"error: --ways: expected some of {list(WAYS)}, got {args.ways!r}", file=sys.stderr)
        return 2
    report_path = args.supernet / "report.json"
    if not report_path.is_file():
        print(f"error: {report_path}: no supernet report here (expected a supernet run's supernet/ folder)",
              file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    t0 = time.time()
    report = json.loads(report_path.read_text())
    opts = report["options"]
    cfg = load_config(CONFIG)
    data = load_dataset(cfg.data)
    params = SearchSpace.from_config(cfg.space, cfg.training).params["cnn"]
    net = get_family("cnn").supernet(params, data.input_shape, data.n_classes, fixed=opts["fixed"]["cnn"])
    # the validation split's supernet (a run with holdout_folds keeps one more per fold beside it)
    checkpoint = args.supernet / report["supernets"]["cnn"]["checkpoint"]
    net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True)["model"])
    recipe = TrainSpec(**report["recipe"])
    recipe = dataclasses.replace(recipe, lr=recipe.lr * opts["finetune_lr"], epochs=opts["finetune_epochs"],
                                 warmup=opts.get("finetune_warmup", 0.0))

    def inherited(spec) -> torch.nn.Module:
        model = net.extract(spec)
        recalibrate_bn(model, data.x_train[:opts["recal_samples"]])
        return model

    teacher = None
    if "distill" in ways:
        top = max(report["candidates"], key=lambda c: c["predicted"]["macs"])
        teacher = inherited(arch_from_dict(top["spec"]))
        torch.manual_seed(10_000)  # its dropout too: the same teacher in every run
        fit(teacher, data.x_train, data.y_train, recipe, seed=10_000)
        teacher.eval()
        teacher_val = float(evaluate(teacher, data.x_val, data.y_val)["accuracy"])
    everything = torch.cat([data.x_train, data.x_val]), torch.cat([data.y_train, data.y_val])  # the refit way's
    rows = []
    for index, record in enumerate(report["candidates"]):
        if not args.min_macs <= record["predicted"]["macs"] <= args.max_macs:
            continue
        spec = arch_from_dict(record["spec"])
        for way in ways:
            val, test = [], []
            for seed in range(args.seeds):
                model = inherited(spec)
                if way == "nodropout":
                    for module in model.modules():
                        if isinstance(module, torch.nn.Dropout):
                            module.p = 0.0
                callbacks, loss = [], {}
                if way == "swa":
                    callbacks = [_Average(model, start=max(1, int(recipe.epochs * 0.75)))]
                if way == "distill":
                    loss = {"loss_fn": DistillationLoss(teacher, temperature=4.0, alpha=0.5)}
                torch.manual_seed(seed)  # dropout draws from torch's global generator: pair the seeds across ways
                spec_way = dataclasses.replace(recipe, warmup=args.warmup) if way == "warmup" else recipe
                x, y = everything if way == "refit" else (data.x_train, data.y_train)
                fit(model, x, y, spec_way, seed=seed, callbacks=callbacks, **loss)
                if way == "swa":
                    model = callbacks[0].average.module
                    recalibrate_bn(model, data.x_train[:opts["recal_samples"]])
                model.eval()
                val.append(float(evaluate(model, data.x_val, data.y_val)["accuracy"]))
                test.append(float(evaluate(model, data.x_test, data.y_test)["accuracy"]))
            row = {"candidate": index, "architecture": arch_summary({"arch": record["spec"]}), "macs": record["predicted"]["macs"],
                   "way": way, "val": val, "test": test,
                   "val_mean": statistics.fmean(val), "test_mean": statistics.fmean(test),
                   "test_sd": statistics.stdev(test) if len(test) > 1 else 0.0,
                   "test_at_target": sum(a >= TARGET for a in test) / len(test)}
            rows.append(row)
            print(f"candidate {index} ({row['macs']:.0f} MACs) {way:8s} val {row['val_mean']:.4f} "
                  f"test {row['test_mean']:.4f} ± {row['test_sd']:.4f}, >= {TARGET:.0%} in {row['test_at_target']:.0%}",
                  flush=True)
    doc = {"supernet": str(args.supernet), "min_macs": args.min_macs, "max_macs": args.max_macs, "seeds": args.seeds, "warmup": args.warmup, "recipe": dataclasses.asdict(recipe),
           "teacher_val_accuracy": teacher_val if teacher is not None else None, "rows": rows,
           "seconds": round(time.time() - t0, 1), "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "package": package_state()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{NAME}.json").write_text(json.dumps(doc, indent=2))
    (args.out / f"{NAME}.md").write_text(markdown(doc, argv if argv is not None else sys.argv[1:]))
    return 0


def markdown(doc: dict, argv) -> str:
    lines = [
        "# MNIST-1D: the supernet route's cheapest candidates, fine-tune seed by seed", "",
        f"Generated by `python benchmarks/cheap_end_variance.py {' '.join(map(str, argv))}` on {doc['generated']} "
        f"({doc['seconds']:.0f} s).", "",
        f"Candidates of `{doc['supernet']}` from {doc['min_macs']:,.0f} to {doc['max_macs']:,.0f} MACs, each fine-tuned from its inherited "
        f"weights under {doc['seeds']} seeds ({doc['recipe']['epochs']} epochs, {doc['recipe']['optimizer']} lr "
        f"{doc['recipe']['lr']:.4g}, warm-up {doc['recipe']['warmup']:.0%} of the steps; fp32). Ways: plain (the route's), "
        "swa (weights averaged over the last quarter), distill (from the run's most expensive candidate"
        + (f", {doc['teacher_val_accuracy']:.1%} validation" if doc["teacher_val_accuracy"] is not None else "")
        + f"), warmup (the learning rate rising from 1% over {doc['warmup']:.0%} of the steps), "
        "nodropout (the sub-network's dropout off), refit (on the training and validation samples together: "
        "its validation accuracy is in-sample).",
        "",
        "| candidate | architecture | MACs | way | val mean | test mean | test sd | test per seed | seeds >= 94% test |",
        "|---:|---|---:|---|---:|---:|---:|---|---:|",
    ]
    for r in doc["rows"]:
        lines.append(f"| {r['candidate']} | {r['architecture']} | {r['macs']:,.0f} | {r['way']} | {r['val_mean']:.1%} | "
                     f"{r['test_mean']:.1%} | {r['test_sd']:.1%} | {' '.join(f'{a:.3f}' for a in r['test'])} | "
                     f"{r['test_at_target']:.0%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
