"""``slimnas compress``: a thin command over :func:`slimnas.compress.compress`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

QUANTIZE_HELP = "none | int8 (static, QDQ) | int8-dynamic | fp16"

#: rows of the before/after table: (metric, label, format)
ROWS = [
    ("test_accuracy", "test accuracy (ONNX Runtime)", "{:.4f}"),
    ("val_accuracy", "val accuracy (ONNX Runtime)", "{:.4f}"),
    ("params", "params", "{:,}"),
    ("macs", "MACs / sample", "{:,}"),
    ("bytes", "ONNX file bytes", "{:,}"),
    ("weight_bytes", "  weight payload", "{:,}"),
    ("overhead_bytes", "  format overhead", "{:,}"),
    ("storage_bytes", "storage bytes", "{:,}"),
    ("latency_ms_b1", "latency ms, batch 1", "{:.4f}"),
    ("latency_ms_b64", "latency ms, batch 64", "{:.4f}"),
]


def render_table(before: dict, after: dict, title: str = "slimnas compress"):
    """A rich before/after table with the ratio after/before."""
    from rich.table import Table

    table = Table(title=title)
    for col, justify in [("metric", "left"), ("before", "right"), ("after", "right"), ("after/before", "right")]:
        table.add_column(col, justify=justify)
    for key, label, fmt in ROWS:
        if key not in before or key not in after:
            continue
        b, a = before[key], after[key]
        ratio = f"{a / b:.3f}" if b else "-"
        table.add_row(label, fmt.format(b), fmt.format(a), ratio)
    return table


def compress_command(
    model: Annotated[str, typer.Option(help="path/to/file.py:callable or package.module:callable returning an nn.Module")],
    weights: Annotated[Path | None, typer.Option(help="state dict (torch.save) of the trained model")] = None,
    dataset: Annotated[str, typer.Option(help="registered dataset name or a .npz/.csv file")] = "mnist1d",
    prune: Annotated[float, typer.Option(help="share of channels removed by structured pruning, in [0, 1)")] = 0.0,
    importance: Annotated[str, typer.Option(help="pruning criterion: l1, l2, taylor, bn_scale, random")] = "l1",
    distill: Annotated[bool, typer.Option("--distill/--no-distill", help="distil from the original model while retraining")] = False,
    temperature: Annotated[float, typer.Option(help="distillation temperature")] = 4.0,
    quantize: Annotated[str, typer.Option(help=QUANTIZE_HELP)] = "none",
    lowrank: Annotated[float | None, typer.Option(help="kept-rank ratio of low-rank factorisation, in (0, 1]")] = None,
    cluster: Annotated[int | None, typer.Option(help="k-means clusters per layer (weight sharing)")] = None,
    epochs: Annotated[int, typer.Option(help="retraining epochs after each step")] = 2,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    out: Annotated[Path, typer.Option(help="output folder for report.json, model.onnx and compressed/")] = Path("runs/compress"),
    device: Annotated[str, typer.Option(help="training device: cpu or cuda")] = "cpu",
    auto: Annotated[bool, typer.Option("--auto", help="search per-layer pruning ratios and precisions under --budget")] = False,
    budget: Annotated[list[str] | None, typer.Option(help="with --auto, repeatable: 'macs<=50%' (of the input model), 'bytes<=8KB'")] = None,
    n_trials: Annotated[int, typer.Option("--n-trials", help="with --auto: policies to try")] = 60,
    strategy: Annotated[str, typer.Option(help="with --auto: tpe, random, nsga2, gp, cmaes")] = "tpe",
    final_epochs: Annotated[int, typer.Option(help="with --auto: distillation fine-tune of the chosen policy")] = 10,
    early_stopping: Annotated[str, typer.Option(help="with --auto: median, hyperband or none; stops ranking fine-tunes that fall behind")] = "median",
) -> None:
    """Prune, factorise, cluster, quantize and distil a trained model; measure it before and after."""
    from slimnas.compress import compress, load_model
    from slimnas.compress._run import train_from_scratch
    from slimnas.data import load_dataset
    from slimnas.report import make_console

    console = make_console()
    if auto:  # validate at the edge, before any model is loaded or trained
        from slimnas.config import Budget
        from slimnas.errors import ConfigError

        if not budget:
            raise ConfigError("--budget", "at least one budget with --auto, such as 'macs<=50%'", None)
        from slimnas.study._auto import check_early_stopping

        check_early_stopping(early_stopping)
        for b in budget:
            Budget.parse(b, "--budget")
    net, _ = load_model(model, weights)
    data = load_dataset(dataset)
    try:
        with __import__("torch").no_grad():
            net(data.x_val[:2])
    except Exception as e:  # noqa: BLE001 - the user's model does not take this data
        from slimnas.errors import ConfigError

        raise ConfigError("--model", f"a model taking inputs shaped {data.input_shape}", f"{type(e).__name__}: {e}") from None
    if weights is None:
        console.print(f"no --weights: training the model from scratch on {dataset} first")
        train_from_scratch(net, data, epochs=20, seed=seed, device=device)
    if auto:
        _auto(net, data, budget=budget or [], n_trials=n_trials, strategy=strategy, epochs=epochs,
              final_epochs=final_epochs, seed=seed, out=out, device=device, console=console,
              early_stopping=early_stopping)
        return
    result = compress(net, data, prune=prune, importance=importance, distill=distill, temperature=temperature,
                      quantize=quantize, lowrank=lowrank, cluster=cluster, epochs=epochs, seed=seed, out=out,
                      device=device)
    console.print(render_table(result.before, result.after))
    console.print(f"wrote {out / 'report.json'}, {out / 'model.onnx'} and {out / 'compressed'}/")


def _auto(net, data, *, budget, n_trials, strategy, epochs, final_epochs, seed, out, device, console,
          early_stopping) -> None:
    from slimnas.report import explanation_table
    from slimnas.strategies import list_strategies
    from slimnas.study import auto_compress

    if strategy not in list_strategies() or strategy == "grid":
        from slimnas.errors import ConfigError

        raise ConfigError("--strategy", f"one of {[s for s in list_strategies() if s != 'grid']}", strategy)
    result = auto_compress(net, data, budget=budget, n_trials=n_trials, strategy=strategy,
                           finetune_epochs=min(epochs, 2), final_epochs=final_epochs, seed=seed, out=out,
                           device=device, console=console, early_stopping=early_stopping)
    console.print(render_table(result.before, result.after, title="slimnas compress --auto"))
    console.print(explanation_table({"layers": result.decisions}, "per-layer decisions and their sensitivity"))
    verdict = "meets" if result.feasible else "[yellow]misses[/]"
    console.print(f"the chosen policy {verdict} the budget {', '.join(map(str, result.budget))}; "
                  f"wrote {out / 'report.json'}, {out / 'policy.json'}, {out / 'model.onnx'}")
