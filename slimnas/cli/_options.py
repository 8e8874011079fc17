"""The options several commands share, defined once, and library errors named as the
command's options."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from slimnas.errors import ConfigError


@contextlib.contextmanager
def as_options(*fields: str) -> Iterator[None]:
    """Report a :class:`ConfigError` on one of the library's ``fields`` (``format``) under the
    command's option (``--format``), so the message names what the user typed."""
    try:
        yield
    except ConfigError as e:
        if e.field not in fields:
            raise
        raise ConfigError("--" + e.field.replace("_", "-"), e.expected, e.got) from None


#: the --early-stopping default of every command that takes it (search; compress --auto)
EARLY_STOPPING_DEFAULT = "none, the strategy's own rule (hyperband for bohb), or the config's; a resumed study's own"

# One definition per option that several commands take: the same name means one thing, has one
# type, one default and one help everywhere (tests/test_cli_options.py walks every command and
# checks). Defaults the command resolves itself (None here) are written in the help as
# "[default: ...]", the form typer uses for the others. A list-valued option is repeatable, and
# each value may also list several items separated by commas (:func:`split_list`).
# Helps that name registry entries are completed when the command line is built (registry_helps).

Dataset = Annotated[str | None, typer.Option(
    help="The data: a dataset name, a .csv/.npz file or a folder [default: mnist1d, or the config's].")]
DataSource = Annotated[str | None, typer.Option(
    "--data", metavar="FILE.py:CALLABLE", help="Your own data: a callable returning {'train': ..., 'val': ..., 'test': ...} torch Datasets or DataLoaders (batches of (inputs, target) or dicts with a 'labels' key), in place of --dataset [default: none].")]
LabelColumn = Annotated[str | None, typer.Option(
    "--label-column", help="Label column of a .csv data file, or several joined by commas (multi-label, several regression targets) [default: label].")]
Seed = Annotated[int | None, typer.Option(
    help="Seed of everything drawn at random: architectures, policies, initialisation, data order [default: 0, "
         "or the config's].")]
Epochs = Annotated[int | None, typer.Option(
    help="Training epochs of each candidate, trained from scratch [default: the config's recipe]. (compress names "
         "its own: --train-epochs, --finetune-epochs, --final-epochs.)")]
Out = Annotated[Path | None, typer.Option(
    help="Where to write: search and compress, the run folder [default: runs/<name>]; report, the report's "
         "folder [default: the run folder]; export, the model file (a folder for state-dict); device profile, "
         "the profile YAML.")]
Name = Annotated[str | None, typer.Option(
    help="The run's name, and its folder's under runs/ [default: search, <data>-<strategy>; compress, "
         "compress; device profile, the --out file's stem].")]
Timeout = Annotated[float | None, typer.Option(
    help="Stop starting trials after this many seconds; what finished is kept (compress: --auto) "
         "[default: none].")]
Device = Annotated[str | None, typer.Option(help="Training device: cpu, cuda, cuda:<n> or auto [default: cpu].")]
Threads = Annotated[int | None, typer.Option(
    help="PyTorch CPU threads for training; 0 keeps PyTorch's own [default: 1, or the config's].")]
Amp = Annotated[bool, typer.Option("--amp", help="Mixed-precision training on CUDA (no effect on the CPU).")]
Accumulate = Annotated[int | None, typer.Option(
    help="Micro-batches whose gradients make one optimizer step [default: 1, or the config's].")]
Quiet = Annotated[bool, typer.Option(
    "--quiet", help="No live progress display (a line is still printed as each trial or phase ends).")]
Tensorboard = Annotated[bool, typer.Option(
    "--tensorboard", help="Also write TensorBoard event files under the run folder's tensorboard/ "
                          "(compress: --auto).")]
Strategy = Annotated[str | None, typer.Option(help="Search strategy [default: tpe, or the config's].")]
NTrials = Annotated[int | None, typer.Option(
    "--n-trials", help="Trials in all; a resumed study runs the missing ones [default: search, 20 or the "
                       "config's; compress --auto, 60 policies].")]
EarlyStopping = Annotated[str | None, typer.Option(
    "--early-stopping", help=f"Stop weak trials early [default: {EARLY_STOPPING_DEFAULT}].")]
Budget = Annotated[list[str] | None, typer.Option(
    metavar="BUDGET", help="Hard constraint, repeatable or comma-separated: 'macs<=20000', 'bytes<=8KB', 'bits<=4.5' "
                           "(bits per weight of the file); "
                           "compress --auto also takes a share of the input model, 'macs<=50%', and needs one [default: none, "
                           "or the config's].")]
Precision = Annotated[list[str] | None, typer.Option(
    metavar="PRECISION", help="Precisions, repeatable or comma-separated: compress --auto, the per-layer precisions to choose "
         "from (fp32, fp16, int8, int4, int2, palette1..palette8; under a 'bits<=N' budget, or a bytes budget with "
         "one below int8, each layer's is allocated by its measured sensitivity); device profile, the precisions to "
         "time [default: fp32,int8; under a bits budget fp32,fp16,int8,int4,palette8,palette4,palette2].")]
DeviceProfile = Annotated[str | None, typer.Option(
    "--device-profile", help="Target a device: a profile YAML (slimnas device profile) or a built-in name "
                             "(mcu, phone, server-cpu); its runtime, threads and batch time latency, its table predicts "
                             "it, its limits join the budget, its weight precisions bound the "
                             "per-layer choice (compress: --auto); export: only the formats it loads [default: none: "
                             "latency is measured here].")]
Task = Annotated[str | None, typer.Option(
    help="What the model is trained to do: classification, regression, multilabel, or path/to/file.py:callable "
         "returning a slimnas.tasks.Task [default: the dataset's own task, or the config's].")]
Trial = Annotated[int | None, typer.Option(
    help="Trial number, in a search run folder (compress: with --run, the trial to compress).")]
Model = Annotated[str | None, typer.Option(
    help="path/to/file.py:callable or package.module:callable returning the (original) nn.Module.")]

#: the most PyTorch CPU threads --threads takes
MAX_THREADS = 1024


def split_list(values: list[str] | tuple[str, ...] | str | None) -> list[str]:
    """The items of a list-valued option: each value given (repeatable) split at commas, blanks
    dropped; ``[]`` when none was given."""
    if values is None:
        return []
    values = [values] if isinstance(values, str) else values
    return [item.strip() for value in values for item in str(value).split(",") if item.strip()]
