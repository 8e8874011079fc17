"""``slimnas export``: a run's model in a registered format, verified against the eager model
on the run's own validation data (int8 calibrated on its training data)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from slimnas.errors import ConfigError
from slimnas.export import ExportResult, export_model, get_export_format
from slimnas.models._detector import holds_detector
from slimnas.study._artifacts import MARKER, write_json
from slimnas.study._load import open_model
from slimnas.study._runs import is_run
from slimnas.tasks._run import task_from_record

N_VERIFY = 256  # validation samples every export is checked on


def export_run(path: str | Path, out: str | Path, *, format: str, trial: int | None = None,
               best: str | Sequence[str] | None = None, model: nn.Module | str | None = None) -> ExportResult:
    """Export a model of a run folder (see :func:`slimnas.load` for ``trial``, ``best`` and
    ``model``) to ``out`` in ``format``, and verify the file.

    The run's data is loaded to calibrate and verify on real samples; where the folder does
    not name its data, formats that need no calibration are verified on random inputs. A run of
    a task whose exported model outputs something else than what it trains on gets the task's
    head appended (:meth:`slimnas.tasks.Task.export_head`: regression's values in the targets'
    units, multi-label's probabilities); a ``state-dict`` export keeps the trained model's weights.

    Example:
        >>> export_run("runs/my-study", "model.onnx", format="onnx-int8", trial=17).top1_agreement  # doctest: +SKIP
        0.996
    """
    fmt = get_export_format(format)
    check_not_managed(out)
    loaded = open_model(path, trial, best=best, model=model)
    if loaded.input_shape is None:
        raise ConfigError("run", "a folder whose run.json gives the input shape (or a search run) to export from",
                          str(path))
    splits = loaded.load_data()
    if splits is None and fmt.calibrated:
        raise ConfigError("format", f"a run that names its data ({format} calibrates on its training samples)", format)
    model = loaded.model
    if loaded.task is not None and format != "state-dict":  # what the task exports: values in the targets' units, ...
        head = task_from_record(loaded.task).export_head()
        if not isinstance(head, nn.Identity):
            model = nn.Sequential(model, head).eval()
    result = export_model(model, out, loaded.input_shape, format=format,
                          calibration=None if splits is None else splits.x_train,
                          inputs=None if splits is None else splits.x_val[:N_VERIFY],
                          rebuild=loaded.rebuild, files=loaded.files)
    if holds_detector(model) and format.startswith("onnx") and result.path.suffix == ".onnx":
        from slimnas.export._detection import split_detection_outputs

        split_detection_outputs(result.path)  # boxes, scores, labels: what a detector's user reads
    if loaded.preprocessing is not None and result.path.is_file():  # a folder export has it in run.json
        write_json(preprocessing_sidecar(result.path), loaded.preprocessing)
    return result


def preprocessing_sidecar(path: str | Path) -> Path:
    """Where an exported file's input preparation is written beside it: ``model.onnx`` ->
    ``model.preprocessing.json`` (:class:`slimnas.data.Preprocessing` reads it back)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.preprocessing.json")


#: what a run folder holds at its top (a search's, or a ``compress`` output's); ``study.db``
#: with SQLite's side files
MANAGED_FILES = ("config.yaml", "pareto.json", "run.json", MARKER, "report.json", "report.html", "report.md",
                 "model.onnx", "policy.json", "weights.pt", "structure.json")
MANAGED_FOLDERS = ("trials", "compressed", "tensorboard")


def check_not_managed(out: str | Path) -> None:
    """Refuse (one line) an export path that is, or lies inside, a file or folder a run manages:
    its study, config, front, trial folders, compressed model. A new file beside them is fine."""
    target = Path(out).absolute()
    for folder in target.parents:
        if not is_run(folder) and not (folder / MARKER).is_file():
            continue
        rel = target.relative_to(folder).parts
        if rel[0] in MANAGED_FOLDERS or (len(rel) == 1 and (rel[0] in MANAGED_FILES or rel[0].startswith("study.db"))):
            raise ConfigError("out", f"a path outside the files of the run in {folder} (--out would overwrite its "
                              f"{'/'.join(rel[:2])}): write the export beside them or elsewhere", str(out))
        return
    if is_run(target) or (target / MARKER).is_file():
        raise ConfigError("out", "a path outside the run folders (it is one)", str(out))
