"""``slimnas.load``: a model of a run, rebuilt and with its weights, from any folder slimnas
writes: a search run (a trial by number, or the best front member under extra budgets), one
trial's folder, a ``compress`` output folder, or a ``state-dict`` export.

Every such folder holds ``weights.pt`` (a state dict, read with ``weights_only=True``) and,
where compression changed layer shapes, ``structure.json``. The weights load into a fresh build
of the original architecture, reshaped by the structure: from ``arch.json`` (a search's
candidate) built at the shapes in ``run.json``, or from the ``--model`` of a ``compress``
(``run.json``), or from the ``model`` the caller passes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from slimnas._files import check_not_interrupted, load_weights, read_json
from slimnas.data import DataSplits, load_dataset
from slimnas.data._loaders import packed_rebuild
from slimnas.errors import ConfigError, DamagedFileError
from slimnas.export._info import INFO, read_run_info
from slimnas.export._structure import load_compressed
from slimnas.models import build_model
from slimnas.models._user import import_model
from slimnas.spaces._spec import Candidate
from slimnas.study._artifacts import RunFolder, read_arch
from slimnas.study._record import is_search_run, open_run, select_member

#: what ``run.json`` says of the data besides shapes (:meth:`slimnas.data.DataSplits.info`)
DATA_INFO = ("kind", "vocab_size", "pad_id", "preprocessing", "task")


@dataclass(frozen=True)
class LoadedModel:
    """A model read back from a folder, with what rebuilds and exports it.

    Attributes:
        model: the module, weights loaded, in eval mode.
        input_shape, n_classes: what it takes and gives (``None`` when the folder does not say).
        folder: where its weights were read.
        trial: its trial number, for a model of a search.
        rebuild: builds a fresh, untrained model of the original architecture.
        files: the JSON documents that rebuild it (``arch.json``, ``run.json``), written next to
            a ``state-dict`` export.
        data: :func:`slimnas.data.load_dataset`'s arguments for the data it was trained on.
        preprocessing: how raw samples become its inputs (standardisation statistics from the
            training split, layouts, tokenizer), as ``run.json`` saves it; ``None`` where the
            inputs are the source's samples as they are (MNIST-1D, digits).
            ``slimnas.data.Preprocessing.from_dict(...).transform(raw)`` applies it.
    """

    model: nn.Module
    input_shape: tuple[int, ...] | None
    n_classes: int | None
    folder: Path
    trial: int | None = None
    rebuild: Callable[[], nn.Module] | None = None
    files: dict = field(default_factory=dict)
    data: dict | None = None
    preprocessing: dict | None = None
    #: the run's task as ``run.json`` keeps it (``None``: classification;
    #: :func:`slimnas.tasks._run.task_from_record` rebuilds it)
    task: dict | None = None

    def load_data(self) -> DataSplits | None:
        """The data the model was trained on; a :class:`ConfigError` when what the folder names
        no longer gives the inputs and classes the model takes (a damaged ``config.yaml`` can
        still be valid YAML: cut short, it reads as the default data set)."""
        if self.data is None:
            return None
        splits = load_dataset(**self.data)
        recorded = (self.input_shape, self.n_classes)
        got = (tuple(splits.input_shape), splits.n_classes)
        if None not in recorded and got != (tuple(recorded[0]), recorded[1]):
            raise ConfigError("data", f"the data {self.folder} was trained on (inputs shaped {tuple(recorded[0])}, "
                              f"{recorded[1]} classes; the run's config.yaml may be damaged)",
                              f"{self.data.get('dataset') or 'the default data set'} giving inputs shaped {got[0]}, {got[1]} classes")
        return splits


def load(path: str | Path, trial: int | None = None, *, best: str | Sequence[str] | None = None,
         model: nn.Module | str | None = None) -> nn.Module:
    """The ``nn.Module`` of a run's model, weights loaded, in eval mode.

    Args:
        path: a search run folder, a trial's folder, a ``compress`` output folder or a
            ``state-dict`` export.
        trial: the trial to load from a search run folder.
        best: instead of ``trial``: the front member with the best objectives among those
            meeting these budgets (``"latency_ms<=0.2"``; ``""`` for the best of the front).
        model: the original architecture, for folders that do not record it (``compress`` run
            from Python): a fresh ``nn.Module`` (copied, never changed) or ``"file.py:callable"``.

    Example:
        >>> m = slimnas.load("runs/my-study", trial=17)  # doctest: +SKIP
        >>> m = slimnas.load("runs/my-study", best="macs<=10k")  # doctest: +SKIP
    """
    return open_model(path, trial, best=best, model=model).model


def open_model(path: str | Path, trial: int | None = None, *, best: str | Sequence[str] | None = None,
               model: nn.Module | str | None = None) -> LoadedModel:
    """:func:`load`, with the shapes, the rebuild and the data that exports need."""
    root = Path(path)
    check_not_interrupted(root)  # a compress output cut short while being replaced: never read half of it
    if not root.exists():
        raise ConfigError("run", "an existing run or model folder", str(root))
    if is_search_run(root):
        return _from_search(root, trial, best, model)
    if root.parent.name == "trials" and root.name.isdigit() and is_search_run(root.parent.parent) and trial is None:
        return _from_search(root.parent.parent, int(root.name), best, model)  # one trial's folder of a run
    if trial is not None or best is not None:
        raise ConfigError("trial" if trial is not None else "best",
                          "a search run folder (with config.yaml) to choose a model from", str(root))
    return _from_folder(root, model)


def _from_search(root: Path, trial: int | None, best, model) -> LoadedModel:
    run = open_run(root)
    if trial is not None and best is not None:
        raise ConfigError("best", "either a trial or best, not both", best)
    front = ", ".join(str(m["trial"]) for m in run.front) or "none yet"
    if trial is None and best is None:
        raise ConfigError("trial", f"a trial number, or a budget the best front member meets, for the search run "
                          f"{root} (front: {front})")
    if trial is None and run.pareto is None:
        raise ConfigError("best", f"a run with a front: {root} has none yet (its search has not finished: run the "
                          "same search command to resume it, or choose a trial by number)", best)
    if trial is None:
        trial = select_member(run.front, run.objectives, best)["trial"]
    if isinstance(trial, bool) or not isinstance(trial, int):
        raise ConfigError("trial", "a trial number", trial)
    folder = RunFolder(root).trial_dir(trial)
    recorded = _trial_metrics(folder)
    if recorded.get("state") == "skipped" or recorded.get("trained") is False:
        raise ConfigError("trial", f"a trained trial of {root} (trial {trial} was skipped before training: "
                          f"{recorded.get('skipped', 'over the budget')}; front: {front})", trial)
    if not (folder / "weights.pt").is_file():
        saved = sorted(int(p.parent.name) for p in (root / "trials").glob("*/weights.pt"))
        raise ConfigError("trial", f"a trial of {root} with saved weights ({_ranges(saved)}; front: {front})", trial)
    shape, n_classes = run.shapes()
    info = {"input_shape": list(shape), "n_classes": n_classes, "data": run.data_args,
            **{k: v for k, v in run.info.items() if k in DATA_INFO}}
    loaded = _from_folder(folder, model, info=info)
    files = {**loaded.files, INFO: {**loaded.files[INFO], "run": str(root), "trial": trial}}
    return LoadedModel(loaded.model, shape, n_classes, folder, trial, loaded.rebuild, files, run.data_args,
                       loaded.preprocessing, loaded.task)


def _trial_metrics(folder: Path) -> dict:
    """A trial's metrics.json, or ``{}`` where it is missing or unreadable (the weights decide then)."""
    if not (folder / "metrics.json").is_file():
        return {}
    try:
        return read_json(folder / "metrics.json", "a JSON object of the trial's metrics", lambda d: isinstance(d, dict))
    except DamagedFileError:
        return {}


def _from_folder(root: Path, model, info: dict | None = None) -> LoadedModel:
    """A folder with ``weights.pt`` (or ``compressed/weights.pt``), built from ``model``,
    ``arch.json`` or ``run.json``'s ``model``."""
    weights = root / "compressed" if (root / "compressed" / "weights.pt").is_file() else root
    if not (weights / "weights.pt").is_file():
        raise ConfigError("run", "a folder with a model's weights.pt (a trial, compress output or state-dict export)",
                          str(root))
    info = info or read_run_info(root)
    shape = tuple(info["input_shape"]) if "input_shape" in info else None
    n_classes = int(info["n_classes"]) if "n_classes" in info else None
    files: dict = {}
    if model is not None:
        rebuild = _given(model)
        files[INFO] = {k: v for k, v in info.items() if k != "model"}
        if isinstance(model, str):
            files[INFO]["model"] = model
    elif (root / "arch.json").is_file():
        cand = read_arch(root / "arch.json")
        if shape is None:
            raise ConfigError("run", f"{root / INFO} with the input shape and class count", str(root))
        arch = Candidate.from_dict(cand).arch
        rebuild = lambda: build_model(arch, shape, n_classes)  # noqa: E731
        files = {"arch.json": cand, INFO: {k: v for k, v in info.items() if k in ("input_shape", "n_classes", "data",
                                                                                  *DATA_INFO)}}
    elif "model" in info:
        rebuild = _given(info["model"])
        files[INFO] = dict(info)
    else:
        raise ConfigError("model", f"the original architecture of {root} (no arch.json or {INFO} says it): pass "
                          "model= (a fresh nn.Module or 'file.py:callable')")
    rebuild = packed_rebuild(rebuild, info)  # a model compressed on the user's loaders: wrapped as it was
    rebuild = detector_rebuild(rebuild, shape)  # a detector: wrapped as compress wrapped it
    return LoadedModel(_load_weights(rebuild(), weights), shape, n_classes, weights, None, rebuild, files,
                       info.get("data"), info.get("preprocessing"), info.get("task"))


def detector_rebuild(rebuild: Callable[[], nn.Module], shape) -> Callable[[], nn.Module]:
    """``rebuild`` whose detectors come wrapped in :class:`~slimnas.models._detector.DetectorModel`
    (what compress saved the weights of); other models as they are."""
    if shape is None:
        return rebuild

    def build() -> nn.Module:
        from slimnas.models._detector import DetectorModel
        from slimnas.models._hf import _probe
        from slimnas.tasks._detection import is_detections

        model = rebuild()
        return DetectorModel(model) if is_detections(_probe(model, shape)) else model

    return build


def _given(model: nn.Module | str) -> Callable[[], nn.Module]:
    if isinstance(model, nn.Module):
        return lambda: copy.deepcopy(model).cpu()
    if isinstance(model, str):
        _, factory = import_model(model)
        return factory
    raise ConfigError("model", "an nn.Module or 'path/to/file.py:callable'", type(model).__name__)


def _load_weights(model: nn.Module, folder: Path) -> nn.Module:
    """Reshape to ``structure.json`` where there is one (pruned, factorised), then load."""
    if (folder / "structure.json").is_file():
        return load_compressed(model, folder)
    state = load_weights(folder / "weights.pt")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ConfigError("model", f"the architecture {folder / 'weights.pt'} was saved from",
                          str(e).strip().splitlines()[0]) from None
    return model.eval()


def _ranges(numbers: list[int]) -> str:
    """``0-4, 7, 9-10``: trial numbers, compactly."""
    if not numbers:
        return "no trial has saved weights"
    out, start, prev = [], numbers[0], numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(f"{start}-{prev}" if prev > start else str(start))
        if n is not None:
            start = prev = n
    return "trials " + ", ".join(out)
