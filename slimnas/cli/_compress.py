"""``slimnas compress``: one command for a given policy and for ``--auto``, over
:func:`slimnas.compress.compress` and :func:`slimnas.study.auto_compress`.

Every option either applies to the mode it is used in or is refused with one line naming the
conflict: nothing is ignored, capped or hard-coded behind the user's back.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import torch
import typer
import yaml

from slimnas._files import atomic_write, check_not_interrupted, clean_stale_staging
from slimnas.cli._options import (
    MAX_THREADS,
    Accumulate,
    Amp,
    Budget,
    Dataset,
    DataSource,
    Device,
    DeviceProfile,
    EarlyStopping,
    LabelColumn,
    Model,
    Name,
    NTrials,
    Out,
    Precision,
    Quiet,
    Seed,
    Strategy,
    Tensorboard,
    Threads,
    Timeout,
    Trial,
    split_list,
)
from slimnas.cli._progress import ConsoleListener
from slimnas.compress import (
    COMPRESSORS,
    FINETUNE_SPEC,
    CompressionPolicy,
    PolicyStep,
    compress,
    list_compressors,
)
from slimnas.compress._base import precision_steps
from slimnas.compress._compress import MAX_EPOCHS, PATIENCE, train_from_scratch
from slimnas.compress._quality import check_task_outputs
from slimnas.compress._quantize import MODES
from slimnas.compress._speed import latency_summary
from slimnas.config import DataConfig, parse_config
from slimnas.config._load import read_yaml
from slimnas.config._profile import allowed_precisions
from slimnas.config._schema import MAX_EPOCHS as MAX_RUN_EPOCHS
from slimnas.config._schema import MAX_SEED, data_to_dict
from slimnas.data import list_datasets, load_dataset
from slimnas.data._loaders import load_data_source, splits_from_loaders, unwrap
from slimnas.errors import ConfigError
from slimnas.export._info import write_run_info
from slimnas.measure import RUNTIMES
from slimnas.measure._profile import load_profile
from slimnas.models._hf import as_slimnas_model
from slimnas.models._user import import_model
from slimnas.report._compress import latency_rows, table_rows
from slimnas.report._explain import explanation_table, sensitivity_names
from slimnas.report._table import make_console
from slimnas.spaces._params import MAX_VALUE
from slimnas.study import ListenerGroup, TensorBoardListener, auto_compress
from slimnas.study._driver import torch_threads
from slimnas.study._search import resolve_device
from slimnas.training import report_phase

QUANTIZE_MODES = ("none", *(m for m in MODES if m != "fp32"))
TRAIN_EPOCHS = 20  # training from scratch when no --weights are given (--train-epochs)
AUTO_ONLY = ("budget", "n_trials", "strategy", "final_epochs", "early_stopping", "precision", "tensorboard",
             "device_profile", "hardware_aware", "timeout")
ONE_SHOT_ONLY = ("prune", "lowrank", "cluster", "quantize", "step")
# compress's fine-tunes, named for what they are (search's --epochs trains each candidate from scratch)
FinetuneEpochs = Annotated[int | None, typer.Option(
    "--finetune-epochs", help="Epochs of the fine-tune after compressing [default: until validation accuracy stops "
    f"improving for {PATIENCE} epochs, at most {MAX_EPOCHS}; --auto: 2, each policy's ranking fine-tune] "
    "(--epochs is read as its former name).")]

def render_table(before: dict, after: dict, title: str = "slimnas compress", latency: dict | None = None):
    """A rich before/after table with the ratio after/before; with ``latency`` (a
    :func:`~slimnas.compress.latency_change`), latency rows of a result slower than its input
    say so."""
    from rich.table import Table

    table = Table(title=title)
    for col, justify in [("metric", "left"), ("before", "right"), ("after", "right"), ("after/before", "right")]:
        table.add_column(col, justify=justify)
    batches = sorted(int(k[len("latency_ms_b"):]) for k in after if k.startswith("latency_ms_b") and k in before)
    for key, label, fmt in table_rows(before) + latency_rows(batches):
        if key not in before or key not in after:
            continue
        b, a = before[key], after[key]
        ratio = f"{a / b:.3f}" if b else "-"
        if latency is not None and key.startswith("latency_ms_b") and int(key[len("latency_ms_b"):]) in latency["slower_at"]:
            ratio = f"[bold yellow]{ratio} SLOWER[/]"
        table.add_row(label, fmt.format(b), fmt.format(a), ratio)
    return table


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_options(auto: bool, given: dict, *, weights: Path | None) -> None:
    """Refuse every option the chosen mode would not use, or that would change nothing."""
    if auto:
        for name in ONE_SHOT_ONLY:
            if given.get(name) is not None:
                raise ConfigError(_flag(name), "no per-step option with --auto (the search chooses per-layer "
                                  "ratios and precisions; use --precision and --importance to choose among)", given[name])
        if not given.get("budget"):
            raise ConfigError("--budget", "at least one budget with --auto, such as 'macs<=50%'", None)
    else:
        for name in AUTO_ONLY:
            if given.get(name) or (name == "hardware_aware" and given.get(name) is False):
                flag = _flag(name) if given.get(name) is not False else "--no-" + _flag(name)[2:]
                raise ConfigError(flag, "--auto (it only applies to the search)", given[name])
        if given.get("importance") is not None and "," in given["importance"]:
            raise ConfigError("--importance", "one criterion without --auto", given["importance"])
        if given.get("importance") is not None and not given.get("prune"):
            raise ConfigError("--importance", "--prune (it chooses which channels --prune removes; a --step prune "
                              "takes its own importance=...)", given["importance"])
    if given.get("importance") is not None:
        from slimnas.compress import IMPORTANCES

        for name in given["importance"].split(","):
            if name.strip() not in IMPORTANCES:
                raise ConfigError("--importance", f"criteria from {IMPORTANCES.names()}", name.strip())
    distilling = given.get("distill") if given.get("distill") is not None else auto  # --auto distils by default
    if given.get("temperature") is not None and not distilling:
        raise ConfigError("--temperature", "--distill (it is the distillation temperature)", given["temperature"])
    if weights is not None and given.get("train_epochs") is not None:
        raise ConfigError("--train-epochs", "no --weights (it sets how long an untrained model trains first)",
                          given["train_epochs"])


def check_out(out: Path, *, auto: bool, overwrite: bool) -> None:
    """Refuse an ``--out`` that holds files already, unless ``--overwrite`` says to replace them;
    ``--auto`` resumes the study of an earlier ``--auto`` in its folder (``study.db``). An output
    cut short while being replaced is refused, even with ``--overwrite`` (its backup is the result),
    unless the process that was replacing it is gone: then its backup is moved back first, and
    what killed processes left beside ``out`` is removed, each said in one line."""
    for line in clean_stale_staging(out):
        make_console().print(f"note: {line}", soft_wrap=True, highlight=False)
    check_not_interrupted(out)
    if overwrite or not out.exists():
        return
    if not out.is_dir():
        raise ConfigError("--out", "a folder (a file is there)", str(out))
    if auto and (out / "study.db").is_file():
        return
    if any(out.iterdir()):
        raise ConfigError("--out", "a new or empty folder, or --overwrite to replace what is there", str(out))


def parse_step(text: str) -> PolicyStep:
    """``name`` or ``name:key=value,key=value`` (values read as YAML scalars) as a policy step."""
    name, _, rest = text.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--step", "NAME[:key=value,...]", text)
        options[key.strip()] = yaml.safe_load(value)
    return PolicyStep(name.strip(), options)


def policy_from_options(*, prune, importance, lowrank, cluster, quantize, steps, distill, temperature) -> CompressionPolicy:
    """The policy the one-shot options describe, its steps in the registry's order; a bad value
    is reported under the option that gave it."""
    flagged: dict[str, tuple[str, dict]] = {}
    if prune:
        flagged["--prune"] = ("prune", {"ratio": prune, "importance": importance or "l1"})
    if lowrank is not None:
        flagged["--lowrank"] = ("lowrank", {"rank_ratio": lowrank})
    if cluster is not None:
        flagged["--cluster"] = ("cluster", {"n_clusters": cluster})
    if quantize not in (None, "none"):
        named = precision_steps()  # low-bit precisions, declared by their compressors
        if quantize in named:
            flagged["--quantize"] = named[quantize]
        elif quantize not in QUANTIZE_MODES:
            raise ConfigError("--quantize", f"one of {[*QUANTIZE_MODES, *named]}", quantize)
        else:
            flagged["--quantize"] = ("quantize", {"mode": quantize, "qat": quantize == "int8"})
    for text in steps or []:
        step = parse_step(text)
        flagged[f"--step {step.compressor}"] = (step.compressor, step.options)
    by_name: dict[str, dict] = {}
    for flag, (name, options) in flagged.items():
        if name not in list_compressors():
            raise ConfigError("--step", f"a compressor from {list_compressors()}", name)
        if name in by_name:
            raise ConfigError(flag.split()[0], f"one step per compressor ({name!r} is given twice)", options)
        try:
            PolicyStep(name, options).build()
        except ConfigError as e:
            raise ConfigError(flag.split()[0], e.expected, e.got if e.got is not None else options) from None
        by_name[name] = options
    clusters = by_name.get("cluster", {}).get("n_clusters")
    writes = any(COMPRESSORS.get(n).writes_file for n in by_name)
    if isinstance(clusters, int) and 2 <= clusters <= 256 and not writes:  # ship what storage counts
        by_name["palette"] = {"bits": max(1, (clusters - 1).bit_length()), "table": "fp32"}  # the shared values exactly
    if not by_name:
        raise ConfigError("compress", "at least one step: --prune, --lowrank, --cluster, --quantize or --step "
                          "(or --auto with a --budget)")
    return CompressionPolicy.of(**by_name, distill=bool(distill), temperature=temperature)


def compress_data_config(dataset: str | None, label_column: str | None, input_layout: str | None,
                         path: Path | None) -> DataConfig:
    """The data section compress reads: ``--data-config``'s ``data:`` (or defaults), with
    ``--dataset``, ``--label-column`` and ``--input-layout`` over it."""
    raw: dict = {}
    if path is not None:
        doc = read_yaml(path)
        raw = doc.get("data") if "data" in doc else None
        if not isinstance(raw, dict):
            raise ConfigError("--data-config", "a YAML file with a data: section (as in a search config)", str(path))
        raw = dict(raw)
    for key, value in (("dataset", dataset), ("label_column", label_column), ("input_layout", input_layout)):
        if value is not None:
            raw[key] = value
    return parse_config({"data": raw}).data


def check_run_options(run: Path | None, trial: int | None, **given) -> None:
    """``--run`` takes a trial of a search run in place of the model, its weights and its data:
    refuse ``--trial`` without it and the options it replaces beside it, in one line."""
    if run is None:
        if trial is not None:
            raise ConfigError("--trial", "--run (the search run whose trial to compress)", trial)
        return
    for name, value in given.items():
        if value is not None:
            raise ConfigError(_flag(name), "no such option with --run (the trial's model, weights, data and task "
                              "come from the run)", str(value))
    if trial is None:
        raise ConfigError("--trial", f"the trial of {run} to compress (--trial N)")


def absolute_model_spec(spec: str) -> str:
    """``file.py:callable`` with the file's absolute path, so the model is found from any folder."""
    target, _, attr = spec.rpartition(":")
    return f"{Path(target).resolve()}:{attr}" if target.endswith(".py") else spec


def compress_command(
    ctx: typer.Context,
    model: Model = None,
    run: Annotated[Path | None, typer.Option("--run", help="a slimnas search run folder: compress one of its trials (--trial N), rebuilt with its weights, data and task (instead of --model, --weights and --dataset)")] = None,
    trial: Trial = None,
    weights: Annotated[Path | None, typer.Option(help="state dict (torch.save) of the trained model")] = None,
    dataset: Dataset = None,
    label_column: LabelColumn = None,
    input_layout: Annotated[str | None, typer.Option("--input-layout", help="the layout the model takes: channels_first ((N, C, L), (N, C, H, W)), channels_last ((N, L, C), (N, H, W, C)) or no_channel ((N, L), (N, F)) [default: channels_first]")] = None,
    data_source: DataSource = None,
    data_config: Annotated[Path | None, typer.Option("--data-config", help="a YAML file whose data: section (as in a search config) says how to read the data: layout, normalize, augment, tokenizer, stream, ...")] = None,
    prune: Annotated[float | None, typer.Option(help="share of channels structured pruning removes from every layer, in [0, 1)")] = None,
    importance: Annotated[list[str] | None, typer.Option(metavar="CRITERION", help="pruning criterion (l1, l2, taylor, bn_scale, random); with --auto, the candidates, repeatable or comma-separated [default: l1 (--auto: l1,taylor)]")] = None,
    lowrank: Annotated[float | None, typer.Option(help="kept-rank ratio of low-rank factorisation, in (0, 1]")] = None,
    cluster: Annotated[int | None, typer.Option(help="k-means clusters per layer (weight sharing); without a --quantize, the file is written palettized (indices at ceil(log2 k) bits plus the shared values), so its bytes are the storage reported")] = None,
    quantize: Annotated[str | None, typer.Option(help="none | int8 (static QDQ, with quantization-aware fine-tuning when it loses accuracy) | int8-dynamic | int8-auto (both, the faster one within the accuracy tolerance kept) | fp16 | "
                                                          f"{' | '.join(precision_steps())} (weights below 8 bits, activations fp32)")] = None,
    step: Annotated[list[str] | None, typer.Option(metavar="NAME[:K=V,...]", help="any registered compressor as NAME[:key=value,...], repeatable")] = None,
    distill: Annotated[bool | None, typer.Option("--distill/--no-distill", help="distil from the original model while retraining [default: off; --auto: on]")] = None,
    temperature: Annotated[float | None, typer.Option(help="distillation temperature, with --distill [default: 4.0]")] = None,
    finetune_epochs: FinetuneEpochs = None,
    epochs: Annotated[int | None, typer.Option(hidden=True, help="The former name of --finetune-epochs.")] = None,
    train_epochs: Annotated[int | None, typer.Option(help=f"without --weights: epochs to train the model first [default: {TRAIN_EPOCHS}]")] = None,
    seed: Seed = None,
    out: Out = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace what an earlier compress wrote in --out (else it must be new or empty; --auto resumes its own study there)")] = False,
    name: Name = None,
    device: Device = None,
    threads: Threads = None,
    amp: Amp = False,
    accumulate: Accumulate = None,
    timeout: Timeout = None,
    auto: Annotated[bool, typer.Option("--auto", help="search per-layer pruning ratios and precisions under --budget")] = False,
    budget: Budget = None,
    n_trials: NTrials = None,
    strategy: Strategy = None,
    final_epochs: Annotated[int | None, typer.Option(help="--auto: fine-tune of the chosen policy [default: 10]")] = None,
    early_stopping: EarlyStopping = None,
    precision: Precision = None,
    device_profile: DeviceProfile = None,
    hardware_aware: Annotated[bool | None, typer.Option("--hardware-aware/--no-hardware-aware", help="--auto: choose channel counts by latency (rounded to multiples of 8 or 16 where the runtime rewards it) and int8 only where it is faster (or a byte budget needs it), on the --device-profile's target or this machine at batch 1 with ONNX Runtime, one thread; --no-hardware-aware: odd channel counts and int8 wherever the search puts it [default: on]")] = None,
    tensorboard: Tensorboard = False,
    quiet: Quiet = False,
) -> None:
    """Prune, factorise, cluster, quantize and distil a trained model; measure it before and after."""
    if epochs is not None and finetune_epochs not in (None, epochs):
        raise ConfigError("--epochs", f"--finetune-epochs alone (--epochs is its former name; both given: "
                          f"{finetune_epochs} and {epochs})", epochs)
    epochs = finetune_epochs if finetune_epochs is not None else epochs
    check_run_options(run, trial, model=model, weights=weights, dataset=dataset, label_column=label_column,
                      input_layout=input_layout, data_config=data_config, train_epochs=train_epochs)
    if model is None and run is None:
        raise ConfigError("--model", "the model to compress: path/to/file.py:callable or package.module:callable")
    # the options shared with search, resolved to compress's defaults (cli/_options.py)
    precision, importance = (",".join(split_list(v)) or None for v in (precision, importance))
    budget = split_list(budget) or None
    seed, device, accumulate = 0 if seed is None else seed, device or "cpu", 1 if accumulate is None else accumulate
    out = out if out is not None else Path("runs") / (name or "compress")
    if threads is not None and not 0 <= threads <= MAX_THREADS:
        raise ConfigError("--threads", f"an integer from 0 (PyTorch's own) to {MAX_THREADS}", threads)
    ctx.with_resource(torch_threads(1 if threads is None else threads))  # for the whole command
    given = {"prune": prune, "lowrank": lowrank, "cluster": cluster, "quantize": quantize, "step": step,
             "budget": budget, "n_trials": n_trials, "strategy": strategy, "final_epochs": final_epochs,
             "early_stopping": early_stopping, "precision": precision, "importance": importance,
             "train_epochs": train_epochs, "tensorboard": tensorboard, "device_profile": device_profile,
             "hardware_aware": hardware_aware, "timeout": timeout, "distill": distill, "temperature": temperature}
    check_options(auto, given, weights=weights if run is None else run)  # at the edge, before any model is loaded or trained
    if data_source is not None:  # the user's loaders replace every way of reading a dataset
        clash = [f for f, v in (("--dataset", dataset), ("--label-column", label_column), ("--input-layout", input_layout),
                                ("--data-config", data_config), ("--run", run)) if v is not None]
        if clash:
            raise ConfigError("--data", f"your Datasets / DataLoaders alone ({', '.join(clash)} reads a dataset)",
                              data_source)
    check_out(out, auto=auto, overwrite=overwrite)
    temperature = 4.0 if temperature is None else temperature
    for flag, value, high in (("--seed", seed, MAX_SEED), ("--finetune-epochs", epochs, MAX_RUN_EPOCHS),
                              ("--train-epochs", train_epochs, MAX_RUN_EPOCHS), ("--final-epochs", final_epochs, MAX_RUN_EPOCHS),
                              ("--n-trials", n_trials, MAX_VALUE), ("--accumulate", accumulate, MAX_VALUE)):
        if value is not None and not 0 <= value <= high:  # NumPy refuses seeds past 2**32; the rest would run on
            raise ConfigError(flag, f"an integer in 0..{high:,}", value)
    device = str(resolve_device(device))  # 'auto' becomes the device it picks
    if isinstance(accumulate, bool) or accumulate < 1:
        raise ConfigError("--accumulate", "an integer >= 1", accumulate)
    recipe = dataclasses.replace(FINETUNE_SPEC, amp=amp, accumulate=accumulate) if amp or accumulate > 1 else None
    if auto:
        from slimnas.study._auto import AutoSettings

        settings = dict(budget=tuple(budget or ()), seed=seed, device=device, train=recipe,
                        distill=True if distill is None else distill, temperature=temperature,
                        **{k: v for k, v in dict(n_trials=n_trials, strategy=strategy, final_epochs=final_epochs,
                                                 early_stopping=early_stopping, finetune_epochs=epochs,
                                                 device_profile=device_profile, timeout=timeout,
                                                 hardware_aware=hardware_aware).items()
                           if v is not None})
        if precision is not None:
            settings["precisions"] = tuple(p.strip() for p in precision.split(","))
        if device_profile is not None:  # the device's weight precisions bound the per-layer choice (of those
            # named, or of the run's default for its budget)
            profile = load_profile(device_profile, "--device-profile")
            given = precision is not None
            if given:  # one the device does not run is named as that, first
                allowed_precisions(profile, settings["precisions"], field="--precision")
            settings["precisions"] = allowed_precisions(profile, AutoSettings(**settings).precisions,
                                                        field="--precision", given=given)
        if importance is not None:
            settings["importances"] = tuple(i.strip() for i in importance.split(","))
        AutoSettings(**settings)
        policy = None
    else:
        policy = policy_from_options(prune=prune, importance=importance, lowrank=lowrank, cluster=cluster,
                                     quantize=quantize, steps=step, distill=distill, temperature=temperature)
    console = make_console()
    loaded = None
    if run is not None:  # the trial's model and weights, its run's data and task
        from slimnas.study._load import open_model

        loaded = open_model(run, trial)
        dataset, model = loaded.data["name"], f"{run}, trial {trial}"
    data_cfg = compress_data_config(dataset, label_column, input_layout, data_config) if loaded is None else None
    dataset = data_cfg.dataset if loaded is None else dataset
    board = TensorBoardListener(out / "tensorboard") if tensorboard else None  # a missing package: one line now
    with ConsoleListener(console, live=not quiet) as listener:
        with report_phase(listener, "load", label=f"loading {data_source or dataset} and the model {model}") as found:
            if data_source is not None:  # the user's Datasets / DataLoaders, read against the model
                torch.manual_seed(seed)
                net, _ = import_model(model, weights)
                net, data = splits_from_loaders(unwrap(net), **load_data_source(data_source), name=data_source)
                net = as_slimnas_model(net, data.input_shape)  # a dict / ModelOutput answer: its logits
                dataset = data_source
            else:
                data = load_dataset(data_cfg) if loaded is None else loaded.load_data()
            if budget:  # a budget on another task's metric (accuracy of a regression): before any training
                from slimnas.measure import Budget as ParsedBudget
                from slimnas.measure._task_metrics import check_task_objectives

                check_task_objectives(data.task, [ParsedBudget.parse(b, "--budget").metric for b in budget], "--budget")
            for note in data.notes:  # what was assumed reading the data (a layout)
                listener.note(note, level="warning")
            torch.manual_seed(seed)
            if data_source is None:
                net = import_model(model, weights)[0] if loaded is None else loaded.model
            try:
                check_task_outputs(net, data)
            except ConfigError as e:
                if input_layout is not None or data.kind == "text":
                    raise
                raise ConfigError(e.field, f"{e.expected}; if it takes another layout, say so with --input-layout "
                                  "channels_last or no_channel", e.got) from None
            found["weights"] = str(weights) if weights is not None else (str(loaded.folder) if loaded else None)
        if weights is None and loaded is None:
            n = TRAIN_EPOCHS if train_epochs is None else train_epochs
            listener.note(f"no --weights: training the model from scratch on {dataset} for {n} epochs first")
            train_from_scratch(net, data, epochs=n, seed=seed, device=device, listener=listener,
                               amp=amp, accumulate=accumulate)
        if auto:
            try:
                result = auto_compress(net, data, out=out, listener=ListenerGroup(listener, board), **settings)
            finally:
                if board is not None:
                    board.close()
        else:
            result = compress(net, data, policy, epochs=epochs, seed=seed, out=out, device=device, train=recipe,
                              listener=listener)
    if loaded is None:
        source = dataset if dataset in list_datasets() else str(Path(dataset).resolve())
        saved = data_to_dict(data_cfg)
        saved.pop("dataset")
        info = {"model": absolute_model_spec(model), "data": {"name": source, **saved}, **data.info(),
                **({"name": name} if name is not None else {})}
    else:  # the trial's architecture (arch.json) rebuilds the compressed model; run.json names where it came from
        info = {"data": loaded.data, **data.info(), "source": {"run": str(run.resolve()), "trial": trial},
                **({"name": name} if name is not None else {})}
        atomic_write(out / "arch.json", json.dumps(loaded.files["arch.json"], indent=2))
    # run.json: what rebuilds the compressed model later (slimnas.load, slimnas export)
    write_run_info(out, data.input_shape, data.n_classes, **info)
    if auto:
        console.print(render_table(result.before, result.after, title="slimnas compress --auto", latency=result.latency))
        console.print(latency_summary(result.latency), highlight=False)
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False)
        console.print(explanation_table({"layers": result.decisions}, "per-layer decisions and their sensitivity",
                                        sensitivity_names(result.sensitivity.quality)))
        if result.hardware is not None:
            h = result.hardware
            console.print(f"on the target (batch {h['batch']}): latency predicted {h['predicted_latency_ms']:.4f} ms, "
                          f"measured here {h['measured_latency_ms']:.4f} ms; precision: {h['precision']['reason']}",
                          highlight=False)
        verdict = "meets" if result.feasible else "[yellow]misses[/]"
        console.print(f"the chosen policy {verdict} the budget {', '.join(map(str, result.budget))}; "
                      f"wrote {out / 'report.json'}, {out / 'policy.json'}, {out / 'model.onnx'}")
        if result.hardware is not None and RUNTIMES.get(result.hardware["runtime"]).layout == "rows":
            # model.onnx is the plain layout; the latency above is the rows layout's
            console.print(f"the target runs {result.hardware['runtime']}: ship the file it was timed as with "
                          f"`slimnas export {out} --format onnx-fp32-rows --out model.onnx`", highlight=False)
        return
    console.print(render_table(result.before, result.after, latency=result.latency))
    console.print(latency_summary(result.latency), highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    console.print(f"wrote {out / 'report.json'}, {out / 'model.onnx'} and {out / 'compressed'}/")
