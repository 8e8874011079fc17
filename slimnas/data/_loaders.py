"""The user's own ``Dataset`` s and ``DataLoader`` s as :class:`DataSplits`.

Every batch of each split is read once (a ``Dataset`` through a ``DataLoader`` of 256 samples,
not shuffled) and split into the model's inputs and the target, as a Hugging Face collator or a
plain PyTorch loop shapes them: a dict batch (its ``labels`` key, or another of
:data:`~slimnas.models._io.TARGET_KEYS`, is the target, the other keys keyword inputs) or an
``(inputs, target)`` pair (inputs: a tensor, a tuple of tensors or a dict). The splits then hold
tensors as every other source does, so training, pruning, distillation, int8 calibration and the
ONNX Runtime measurements run as they always have (the same figures for the same tensors).

One float tensor per sample is held as it is. Anything else (keyword inputs, integer token ids,
several inputs) is packed into one float tensor per sample by :class:`BatchForm`, and the model
is wrapped in :class:`PackedInputsModel`, which unpacks it into the tensors, dtypes and keywords
the model takes (integer ids travel exactly as floats below 2**24). The user's batches are rebuilt
in their own form (:meth:`BatchForm.batch`) for a user training step or score function
(:mod:`slimnas.training._user`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from slimnas.errors import ConfigError

#: samples per batch where a ``Dataset`` (not a ``DataLoader``) is given
DATASET_BATCH = 256
#: integer inputs travel through the packed float tensor exactly up to this value
EXACT_INT = 2 ** 24


@dataclass(frozen=True)
class BatchForm:
    """How the user's batches look: ``kind`` ``dict`` (keyword inputs ``names`` and the target
    under ``target_key``) or ``pair`` (``(inputs, target)``; inputs positional, or keyword
    when ``keyword``); every input's per-sample ``shapes`` and ``dtypes``."""

    kind: str
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    keyword: bool = True
    target_key: str | None = None
    #: the user's model answers with a dict / ``ModelOutput`` (a score function reads ``.logits``)
    dict_output: bool = False
    #: inputs given as one positional tensor (``(x, y)``), not packed
    single: bool = False
    #: integer inputs' smallest and largest values over every split (``None`` for float ones):
    #: unpacked integers are clamped into them, so a random probe (tracing, MAC counting) stays
    #: within an embedding's rows while the data pass unchanged
    ranges: tuple = ()

    @property
    def packed(self) -> bool:
        return not self.single

    def to_dict(self) -> dict:
        """The form as JSON (``run.json``'s ``batch_form``: what rebuilds the packed model)."""
        return {"kind": self.kind, "names": list(self.names), "shapes": [list(s) for s in self.shapes],
                "dtypes": list(self.dtypes), "keyword": self.keyword, "target_key": self.target_key,
                "dict_output": self.dict_output, "single": self.single,
                "ranges": [list(r) if r is not None else None for r in self.ranges]}

    @classmethod
    def from_dict(cls, d: dict) -> BatchForm:
        try:
            return cls(str(d["kind"]), tuple(map(str, d["names"])), tuple(tuple(map(int, s)) for s in d["shapes"]),
                       tuple(map(str, d["dtypes"])), bool(d["keyword"]), d.get("target_key"),
                       bool(d.get("dict_output")), bool(d.get("single")),
                       tuple(tuple(map(float, r)) if r is not None else None for r in d.get("ranges", [])))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError("run.json batch_form", "the form of the batches the model was compressed on",
                              f"{type(e).__name__}: {e}") from None

    def sizes(self) -> list[int]:
        return [math.prod(s) for s in self.shapes]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.shapes[0] if self.single else (sum(self.sizes()),)

    def describe(self) -> str:
        inputs = ", ".join(f"{n}: {d} {(-1, *s)}" for n, s, d in zip(self.names, self.shapes, self.dtypes, strict=True))
        if self.kind == "dict":
            return f"dict batches {{{inputs}, {self.target_key!r}: target}}"
        return f"(inputs, target) batches with inputs {inputs}"

    def pack(self, inputs) -> torch.Tensor:
        """One batch's inputs (an :class:`ExampleInputs`) as the tensor the splits hold."""
        tensors = list(inputs.args) + [inputs.kwargs[n] for n in inputs.kwargs]
        if self.single:
            return tensors[0]
        return torch.cat([t.reshape(t.shape[0], -1).to(torch.float32) for t in tensors], dim=1)

    def unpack(self, x: torch.Tensor):
        """The inverse of :meth:`pack`: an :class:`ExampleInputs` of the model's own tensors."""
        from slimnas.models._io import ExampleInputs

        if self.single:
            return ExampleInputs((x,))
        parts, start = [], 0
        ranges = self.ranges or (None,) * len(self.shapes)
        for size, shape, dtype, span in zip(self.sizes(), self.shapes, self.dtypes, ranges, strict=True):
            t = x[:, start : start + size].reshape(-1, *shape)
            dt = getattr(torch, dtype)
            if not dt.is_floating_point:
                t = t.round()
                if span is not None:
                    t = t.clamp(*span)
            parts.append(t.to(dt))
            start += size
        if self.keyword:
            return ExampleInputs((), dict(zip(self.names, parts, strict=True)))
        return ExampleInputs(tuple(parts))

    def batch(self, x: torch.Tensor, y: torch.Tensor):
        """A batch in the user's own form, from the splits' tensors."""
        inputs = self.unpack(x)
        if self.kind == "dict":
            return {**inputs.kwargs, self.target_key: y}
        if self.keyword:
            return dict(inputs.kwargs), y
        return (inputs.args[0] if len(inputs.args) == 1 else inputs.args), y


class PackedInputsModel(nn.Module):
    """``model`` taking the packed float tensor the splits hold (:meth:`BatchForm.pack`): each
    batch is unpacked into the tensors, dtypes and keywords ``model`` takes. The user's model
    (compressed, after a compression) is ``.model``."""

    def __init__(self, model: nn.Module, form: BatchForm) -> None:
        super().__init__()
        self.model, self.form = model, form

    def forward(self, x: torch.Tensor):
        inputs = self.form.unpack(x)
        return self.model(*inputs.args, **inputs.kwargs)


def _as_loader(value, split: str):
    if isinstance(value, torch.utils.data.DataLoader):
        return value
    if isinstance(value, torch.utils.data.Dataset) or (hasattr(value, "__getitem__") and hasattr(value, "__len__")):
        return torch.utils.data.DataLoader(value, batch_size=DATASET_BATCH, shuffle=False, collate_fn=_collate)
    raise ConfigError(split, "a torch Dataset or DataLoader", type(value).__name__)


def _is_boxes(target) -> bool:
    """Whether a sample's target is a detection target (a dict of ``boxes`` and ``labels``)."""
    return isinstance(target, Mapping) and "boxes" in target and "labels" in target


def _collate(samples: list):
    """PyTorch's default collation, except that detection targets (per image a dict of ``boxes``
    and ``labels``, any number of them) stay a list of dicts beside the stacked images."""
    from torch.utils.data import default_collate

    if samples and isinstance(samples[0], (tuple, list)) and len(samples[0]) == 2 and _is_boxes(samples[0][1]):
        return default_collate([s[0] for s in samples]), [s[1] for s in samples]
    return default_collate(samples)


def _detection_batch(first, target):
    """An ``(images, targets)`` batch of a detection loader as one image tensor and a list of
    target dicts: torchvision's collation (``tuple(zip(*batch))``) gives tuples of both."""
    if isinstance(first, (tuple, list)) and len(first) == len(target) and all(
            isinstance(t, torch.Tensor) for t in first):
        shapes = {tuple(t.shape) for t in first}
        if len(shapes) == 1:
            first = torch.stack(list(first))
    return first, list(target)


def _split_batch(batch, split: str, i: int):
    """``(ExampleInputs, target, kind, target_key, keyword)`` of one batch."""
    from slimnas.models._io import TARGET_KEYS, ExampleInputs

    expected = "batches of (inputs, target) or dicts of input tensors with a 'labels' key"
    where = f"{split} batch {i}"
    if isinstance(batch, Mapping):
        key = next((k for k in TARGET_KEYS if k in batch), None)
        if key is None:
            raise ConfigError(where, expected, f"a dict with keys {sorted(map(str, batch))} (no target among "
                              f"{', '.join(TARGET_KEYS)})")
        target = batch[key]
        inputs = ExampleInputs.of({k: v for k, v in batch.items() if k != key}, where)
        kind, keyword = "dict", True
    elif isinstance(batch, (tuple, list)) and len(batch) == 2:
        first, target = batch
        if isinstance(target, (tuple, list)) and target and all(_is_boxes(t) for t in target):
            first, target = _detection_batch(first, target)  # images and per-image dicts of boxes and labels
        inputs = ExampleInputs.of(first, where)
        kind, key, keyword = "pair", None, isinstance(first, Mapping)
    else:
        got = (f"a {type(batch).__name__} of {len(batch)}" if isinstance(batch, (tuple, list))
               else type(batch).__name__)
        raise ConfigError(where, expected, got)
    if not isinstance(target, (torch.Tensor, list)):
        target = torch.as_tensor(np.asarray(target))
    return inputs, target, kind, key, keyword


def read_loader(value, split: str, form: BatchForm | None = None) -> tuple[torch.Tensor, torch.Tensor, BatchForm]:
    """Every batch of ``value`` (a ``Dataset`` or ``DataLoader``) as ``(x, y)`` tensors and the
    batches' :class:`BatchForm`; a batch of another structure than ``form`` (or than the first
    batch) is one :class:`ConfigError` line naming both."""
    loader = _as_loader(value, split)
    xs, ys = [], []
    for i, batch in enumerate(loader):
        inputs, target, kind, key, keyword = _split_batch(batch, split, i)
        tensors = inputs.tensors()
        names = tuple(inputs.kwargs) if keyword else tuple(f"input_{j}" for j in range(len(inputs.args)))
        this = BatchForm(kind, names, tuple(tuple(t.shape[1:]) for t in tensors.values()),
                         tuple(str(t.dtype).removeprefix("torch.") for t in tensors.values()), keyword, key,
                         single=(kind == "pair" and not keyword and len(tensors) == 1
                                 and next(iter(tensors.values())).is_floating_point()))
        if form is None:
            form = this
        elif (this.kind, this.names, this.shapes, this.dtypes, this.target_key) != \
                (form.kind, form.names, form.shapes, form.dtypes, form.target_key):
            raise ConfigError(f"{split} batch {i}", f"the structure of the training data's batches "
                              f"({form.describe()})", this.describe())
        if len(target) != inputs.batch_size:
            raise ConfigError(f"{split} batch {i}", f"one target per sample ({inputs.batch_size})",
                              f"{len(target)} targets")
        for name, t in tensors.items():
            if not t.is_floating_point() and t.numel() and int(t.abs().max()) >= EXACT_INT:
                raise ConfigError(f"{split} batch {i} {name}", f"integers below {EXACT_INT}", int(t.abs().max()))
        xs.append(form.pack(inputs).detach().cpu())
        ys.append(target if isinstance(target, list) else target.detach().cpu())
    if form is None or not xs:
        raise ConfigError(split, "a Dataset or DataLoader that yields at least one batch", "an empty one")
    if any(isinstance(y, list) for y in ys):  # detection: one dict of boxes and labels per image
        if not all(isinstance(y, list) for y in ys):
            raise ConfigError(split, "the same kind of target in every batch", "per-image dicts of boxes in some only")
        return torch.cat(xs), [t for y in ys for t in y], form
    return torch.cat(xs), torch.cat(ys), form


def splits_from_loaders(model: nn.Module, train, val, test=None, *, task=None, name: str = "your data"):
    """``(model, DataSplits)`` from the user's ``train`` / ``val`` / ``test`` Datasets or
    DataLoaders (``test``: the validation data when not given). ``model`` comes back wrapped in
    :class:`PackedInputsModel` where the inputs are packed; the model must run on the first
    training batch (else one ConfigError line naming what its ``forward`` takes and what the
    batches hold). ``task``: a :class:`~slimnas.tasks.Task` or its name (default
    classification): it checks the targets, is fitted on the training ones and encodes all.

    Example:
        >>> ds = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.arange(8) % 2)
        >>> m, data = splits_from_loaders(torch.nn.Linear(4, 2), ds, ds)
        >>> data.input_shape, data.n_classes
        ((4,), 2)
    """
    if val is None:
        raise ConfigError("val", "validation data (a Dataset or DataLoader) beside the training data")
    x_tr, y_tr, form = read_loader(train, "train")
    x_va, y_va, _ = read_loader(val, "val", form)
    x_te, y_te, _ = read_loader(test, "test", form) if test is not None else (x_va, y_va, form)
    form = BatchForm(**{**form.__dict__, "ranges": _int_ranges(form, (x_tr, x_va, x_te))})
    first = form.unpack(x_tr[:2])
    out = first.probe(model, "train")  # a model that does not take the batches: one line
    from slimnas.models._io import flatten_outputs, main_output

    form = BatchForm(**{**form.__dict__, "dict_output": not isinstance(out, torch.Tensor)})
    if not flatten_outputs(out):
        raise ConfigError("model output", "at least one tensor", type(out).__name__)
    wrapped = PackedInputsModel(model, form) if form.packed else model
    data = _splits(form, {"train": (x_tr, y_tr), "val": (x_va, y_va), "test": (x_te, y_te)}, task, name,
                   width=int(main_output(out).shape[-1]))
    return wrapped, data


def search_splits(train, val, test=None, *, task=None, name: str = "your data"):
    """:class:`DataSplits` for a search from the user's Datasets / DataLoaders: batches of
    ``(x, y)`` with one float tensor per sample (what the searched families take); the input
    shape is the first batch's, the kind (tabular, sequence, image) follows its dimensions."""
    if val is None:
        raise ConfigError("val", "validation data (a Dataset or DataLoader) beside the training data")
    x_tr, y_tr, form = read_loader(train, "train")
    if not form.single:
        raise ConfigError("train", "(inputs, target) batches with one float tensor of inputs per sample for a "
                          "search (its families take one tensor)", form.describe())
    x_va, y_va, _ = read_loader(val, "val", form)
    x_te, y_te, _ = read_loader(test, "test", form) if test is not None else (x_va, y_va, form)
    data = _splits(form, {"train": (x_tr, y_tr), "val": (x_va, y_va), "test": (x_te, y_te)}, task, name)
    data.kind = {1: "tabular", 2: "sequence", 3: "image"}.get(len(form.shapes[0]), "")
    from slimnas.data._tasks import check_wired

    check_wired(data.task, data.kind, name)  # a task search is not wired for: one line
    return data


def _splits(form: BatchForm, raw: dict, task, name: str, width: int | None = None):
    """The splits of ``raw`` (``{split: (x, y)}``) with their targets checked by ``task`` (a
    Task, a name or ``None``: classification) and encoded. Classification keeps class ids as
    they are, its head the larger of the model's output ``width`` and the largest id + 1."""
    from slimnas.data._base import DataSplits
    from slimnas.tasks import Task, get_task, load_task
    from slimnas.tasks._base import measured_metric_names
    from slimnas.tasks._classification import Classification

    if task is None:  # targets that are per-image dicts of boxes and labels: detection
        task = get_task("detection") if isinstance(raw["train"][1], list) else Classification()
    elif isinstance(task, str):
        task = load_task(task, reserved=measured_metric_names())
    if not isinstance(task, Task):
        raise ConfigError("task", "a slimnas.tasks.Task or a task's name", type(task).__name__)
    ys = {s: task.check_targets(y if isinstance(y, list) else y.numpy(), n=len(y), input_shape=form.input_shape,
                                field=f"{s} targets")
          for s, (_, y) in raw.items()}
    if isinstance(task, Classification):
        head = max(width or 0, int(np.max(ys["train"])) + 1)
        enc = {s: torch.as_tensor(np.asarray(y).astype(np.int64)) for s, y in ys.items()}  # class ids as they are
        for s, y in enc.items():
            if len(y) and int(y.max()) >= head:
                raise ConfigError(f"{s} targets", f"class ids below the model's {head} outputs", int(y.max()))
    else:
        task.fit(ys["train"])
        head = task.head_size(ys["train"])
        enc = {s: task.encode(y) for s, y in ys.items()}
    return DataSplits(name=name, x_train=raw["train"][0], y_train=enc["train"], x_val=raw["val"][0],
                      y_val=enc["val"], x_test=raw["test"][0], y_test=enc["test"], n_classes=head, task=task,
                      batch_form=form)


def _int_ranges(form: BatchForm, xs) -> tuple:
    if form.single:
        return ()
    ranges, start = [], 0
    for size, dtype in zip(form.sizes(), form.dtypes, strict=True):
        if getattr(torch, dtype).is_floating_point:
            ranges.append(None)
        else:
            part = torch.cat([x[:, start : start + size] for x in xs])
            ranges.append((float(part.min()), float(part.max())) if part.numel() else None)
        start += size
    return tuple(ranges)


def packed_rebuild(rebuild, info: dict):
    """``rebuild`` (a factory of the user's model) wrapped as the run wrapped it where
    ``run.json`` records a packed ``batch_form``: what a compressed model's weights load into."""
    if not isinstance(info.get("batch_form"), dict):
        return rebuild
    form = BatchForm.from_dict(info["batch_form"])

    def build() -> nn.Module:
        from slimnas.models._hf import as_slimnas_model

        return as_slimnas_model(PackedInputsModel(unwrap(rebuild()), form), form.input_shape)

    return build


def unwrap(model: nn.Module) -> nn.Module:
    """The user's own model inside slimnas's adapters (:class:`PackedInputsModel`, the
    Hugging Face adapters): what a user training step or score function is given, and what a
    compressed result's ``.model`` chain ends in."""
    from slimnas.models._detector import DetectorModel
    from slimnas.models._hf import MainOutputModel, TokenIdsModel

    while isinstance(model, (PackedInputsModel, MainOutputModel, TokenIdsModel, DetectorModel)):
        model = model.model
    return model


def load_data_source(spec: str, field: str = "--data") -> dict:
    """``{'train', 'val'[, 'test']}`` Datasets or DataLoaders from ``path/to/file.py:callable``
    (or ``package.module:callable``), called without arguments; anything else is one line."""
    from slimnas.registry import import_object, user_failure

    factory = import_object(spec, field)
    try:
        value = factory()
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's callable failed
        raise ConfigError(field, "a callable returning {'train': ..., 'val': ..., 'test': ...} without arguments",
                          f"{spec} ({user_failure(e)})") from None
    if not isinstance(value, Mapping) or not {"train", "val"} <= set(value) or set(value) - {"train", "val", "test"}:
        got = sorted(map(str, value)) if isinstance(value, Mapping) else type(value).__name__
        raise ConfigError(field, "a dict {'train': ..., 'val': ...[, 'test': ...]} of Datasets or DataLoaders", got)
    return dict(value)
