"""A model's inputs and outputs beyond one tensor in, one tensor out.

A model may take several positional tensors, keyword tensors (``input_ids=``,
``attention_mask=``; integer ids included) and answer with a tensor, a tuple, a dict or a
Hugging Face ``ModelOutput``. :class:`ExampleInputs` holds a batch of inputs as positional
tensors plus keyword tensors (what ``torch.export`` takes) and calls a model with them, turning a
model that does not take them into one :class:`~slimnas.errors.ConfigError` line;
:func:`flatten_outputs` turns any output into named tensors (``logits``, ``hidden_states.0``),
:func:`main_output` picks the one a loss reads, and :class:`FlatModel` is the reverse direction
an exporter needs: the named inputs as plain positional tensors in, the flattened outputs as a
tuple out. Pruning, distillation, ONNX export and int8 calibration all go through these, so a
Hugging Face model needs no wrapper.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from slimnas.errors import ConfigError
from slimnas.registry import user_failure

#: the name a model's only output gets (what slimnas's single-output ONNX files call it)
SINGLE_OUTPUT = "logits"
#: keys of a dict batch that hold targets, not inputs (Hugging Face collators' names)
TARGET_KEYS = ("labels", "label", "targets", "target")


@dataclass(frozen=True)
class ExampleInputs:
    """A batch of a model's inputs: positional tensors ``args`` and keyword tensors ``kwargs``.

    Example:
        >>> ex = ExampleInputs.of({"input_ids": torch.zeros(2, 5, dtype=torch.long)})
        >>> ex.names(), ex.batch_size
        (['input_ids'], 2)
    """

    args: tuple[torch.Tensor, ...] = ()
    kwargs: Mapping[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def of(cls, value: object, field_name: str = "example_inputs", model: nn.Module | None = None) -> ExampleInputs:
        """From a tensor, a tuple/list of tensors, a dict of keyword tensors, an
        ``(args, kwargs)`` pair, an :class:`ExampleInputs`, or a ``DataLoader`` (its first batch,
        read by :meth:`from_batch`); anything else is a ConfigError."""
        if isinstance(value, ExampleInputs):
            return value
        if isinstance(value, torch.utils.data.DataLoader):
            try:
                batch = next(iter(value))
            except StopIteration:
                raise ConfigError(field_name, "a DataLoader that yields at least one batch", "an empty one") from None
            return cls.from_batch(batch, field_name, model)
        if isinstance(value, torch.Tensor):
            return cls((value,))
        if isinstance(value, Mapping) and value:
            return cls((), _tensors(dict(value), field_name))
        if (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], (tuple, list))
                and isinstance(value[1], Mapping)):
            return cls(tuple(_tensors(dict(enumerate(value[0])), field_name).values()),
                       _tensors(dict(value[1]), field_name))
        if isinstance(value, (tuple, list)) and value:
            return cls(tuple(_tensors(dict(enumerate(value)), field_name).values()))
        raise ConfigError(field_name, "a tensor, a tuple of tensors, a dict of keyword tensors or (args, kwargs)",
                          f"an empty {type(value).__name__}" if isinstance(value, (Mapping, tuple, list))
                          else type(value).__name__)

    @classmethod
    def from_batch(cls, batch: object, field_name: str = "example_inputs",
                   model: nn.Module | None = None) -> ExampleInputs:
        """The inputs of one batch of a ``DataLoader``: a dict batch without its targets (keys
        in :data:`TARGET_KEYS`, as a Hugging Face collator names them), an ``(inputs, target)``
        pair's inputs (unless ``model`` takes both tensors and not the first alone), else the
        batch itself (:meth:`of`).

        Example:
            >>> ExampleInputs.from_batch({"input_ids": torch.zeros(2, 3), "labels": torch.zeros(2)}).names()
            ['input_ids']
            >>> ExampleInputs.from_batch((torch.zeros(2, 3), torch.zeros(2))).names()
            ['input']
        """
        if isinstance(batch, Mapping):
            return cls.of({k: v for k, v in batch.items() if k not in TARGET_KEYS}, field_name)
        if isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[1], torch.Tensor):
            first, both = cls.of(batch[0], field_name), cls.of(tuple(batch), field_name)
            return both if model is not None and both.takes(model) and not first.takes(model) else first
        return cls.of(batch, field_name)

    @classmethod
    def random(cls, input_shape: Sequence[int], batch: int = 2, *, zeros: bool = False) -> ExampleInputs:
        """One float input of ``batch`` samples shaped ``input_shape`` (what slimnas probes a
        single-input model with): standard-normal, or zeros."""
        return cls(((torch.zeros if zeros else torch.randn)(batch, *input_shape),))

    @property
    def batch_size(self) -> int:
        return int(next(iter(self.tensors().values())).shape[0])

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every input by name: keyword inputs by their keyword, positional ones as ``input_<i>``
        (:meth:`names` gives them the names the model's ``forward`` calls them)."""
        return {**{f"input_{i}": t for i, t in enumerate(self.args)}, **self.kwargs}

    def names(self, model: nn.Module | None = None) -> list[str]:
        """Input names in the order :meth:`flat` lists them: positional inputs named after the
        parameters of ``model.forward`` where it has them (``input_ids``), else ``input_<i>``
        (``input`` for a model's only input), then the keywords."""
        if len(self.args) == 1 and not self.kwargs:
            return ["input"]  # what slimnas's single-input ONNX files call it
        params: list[str] = []
        if model is not None:
            try:
                params = [p.name for p in inspect.signature(model.forward).parameters.values()
                          if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            except (TypeError, ValueError):
                params = []
        positional = [params[i] if i < len(params) else f"input_{i}" for i in range(len(self.args))]
        return [*positional, *self.kwargs]

    def flat(self) -> tuple[torch.Tensor, ...]:
        """The inputs as one positional tuple: the positional ones, then the keyword ones."""
        return (*self.args, *self.kwargs.values())

    def take(self, n: int) -> ExampleInputs:
        """The first ``n`` samples of every input (cycled when there are fewer)."""
        def cut(t: torch.Tensor) -> torch.Tensor:
            if t.shape[0] >= n:
                return t[:n]
            return t[torch.arange(n) % t.shape[0]]
        return ExampleInputs(tuple(cut(t) for t in self.args), {k: cut(t) for k, t in self.kwargs.items()})

    def to(self, device: torch.device | str) -> ExampleInputs:
        return ExampleInputs(tuple(t.to(device) for t in self.args), {k: t.to(device) for k, t in self.kwargs.items()})

    def takes(self, model: nn.Module) -> bool:
        """Whether ``model.forward``'s signature accepts these inputs."""
        try:
            self.check(model)
        except ConfigError:
            return False
        return True

    def check(self, model: nn.Module, field_name: str = "example_inputs") -> None:
        """Raise :class:`ConfigError` unless ``model.forward`` accepts these inputs by position
        and keyword (checked on its signature, before any layer runs)."""
        try:
            sig = inspect.signature(model.forward)
        except (TypeError, ValueError):
            return
        try:
            sig.bind(*self.args, **self.kwargs)
        except TypeError as e:
            raise ConfigError(field_name, f"inputs {type(model).__name__}.forward takes {describe_signature(sig)}",
                              f"{self.describe()} ({e})") from None

    def __call__(self, model: nn.Module):
        """``model(*args, **kwargs)``, after :meth:`check` (a call its signature refuses is a
        ConfigError); what the model raises inside passes through."""
        self.check(model)
        return model(*self.args, **self.kwargs)

    @torch.no_grad()
    def probe(self, model: nn.Module, field_name: str = "example_inputs"):
        """The model's output on these inputs, in eval mode (its training mode restored); a model
        that does not take them, by signature or by failing on them, is one ConfigError line."""
        self.check(model, field_name)
        was_training = model.training
        model.eval()
        try:
            return model(*self.args, **self.kwargs)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - the user's model does not take these inputs
            raise ConfigError(field_name, f"inputs {type(model).__name__} runs on",
                              f"{self.describe()} ({user_failure(e)})") from None
        finally:
            model.train(was_training)

    def describe(self) -> str:
        """The inputs in one line: ``input_ids: int64 (2, 12), attention_mask: int64 (2, 12)``."""
        return ", ".join(f"{name}: {str(t.dtype).removeprefix('torch.')} {tuple(t.shape)}"
                         for name, t in self.tensors().items())


def _tensors(values: dict, field_name: str) -> dict:
    for key, v in values.items():
        if not isinstance(v, torch.Tensor):
            raise ConfigError(f"{field_name}[{key!r}]", "a tensor", type(v).__name__)
    return values


def describe_signature(sig: inspect.Signature) -> str:
    names = [p.name + ("=..." if p.default is not p.empty else "") for p in sig.parameters.values()
             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return "(" + ", ".join(names[:8]) + (", ..." if len(names) > 8 else "") + ")"


def example_for(inputs: ExampleInputs | Sequence[int], batch: int = 2, *, zeros: bool = False,
                cut: bool = False) -> ExampleInputs:
    """``inputs`` as they are (their first ``batch`` samples with ``cut``), or random (or zero)
    float inputs of ``batch`` samples for a shape."""
    if isinstance(inputs, ExampleInputs):
        return inputs.take(batch) if cut else inputs
    return ExampleInputs.random(tuple(inputs), batch, zeros=zeros)


def flatten_outputs(out: object, prefix: str = "") -> dict[str, torch.Tensor]:
    """Any model output as named tensors: a tensor is ``logits`` (:data:`SINGLE_OUTPUT`), a
    dict or ``ModelOutput`` gives its keys, a tuple ``output_<i>``, nested ones joined by dots
    (``hidden_states.0``); what is not a tensor (``None``, a key/value cache object) is left out.

    Example:
        >>> sorted(flatten_outputs({"logits": torch.zeros(1), "extra": (torch.zeros(1), None)}))
        ['extra.0', 'logits']
    """
    if isinstance(out, torch.Tensor):
        return {prefix or SINGLE_OUTPUT: out}
    flat: dict[str, torch.Tensor] = {}
    if isinstance(out, Mapping):
        items = [(str(k), v) for k, v in out.items()]
    elif isinstance(out, (tuple, list)):
        items = [(str(i) if prefix else f"output_{i}", v) for i, v in enumerate(out)]
    else:
        return {}  # None, a number, a key/value cache object: not a tensor output
    for key, value in items:
        flat.update(flatten_outputs(value, f"{prefix}.{key}" if prefix else key))
    return flat


def main_output(out: object, key: str | None = None, field_name: str = "output_key") -> torch.Tensor:
    """The output a loss reads: ``out`` itself when it is a tensor; else the flattened output
    named ``key``, or by default ``logits``, else the first floating-point one with a batch axis
    (a scalar ``loss`` a Hugging Face model puts first is passed over).

    Example:
        >>> main_output({"loss": torch.tensor(1.0), "scores": torch.ones(2, 3)}, "scores").shape
        torch.Size([2, 3])
    """
    if isinstance(out, torch.Tensor) and key is None:
        return out
    flat = flatten_outputs(out)
    if key is not None:
        if key not in flat:
            raise ConfigError(field_name, f"one of the model's outputs {list(flat)}", key)
        return flat[key]
    if SINGLE_OUTPUT in flat:
        return flat[SINGLE_OUTPUT]
    floating = [t for t in flat.values() if t.is_floating_point() and t.dim() > 0]  # not a scalar loss
    if not floating:
        raise ConfigError("model output", "at least one floating-point tensor with a batch axis",
                          list(flat) or type(out).__name__)
    return floating[0]


class FlatModel(nn.Module):
    """``model`` with its inputs as positional tensors in the order of ``inputs.names()`` and
    its outputs flattened into a tuple (:func:`flatten_outputs`): what an exporter traces. The
    output names, known after one call, are in :meth:`output_names`.

    Example:
        >>> ex = ExampleInputs((torch.randn(2, 4),))
        >>> FlatModel(nn.Linear(4, 3), ex).output_names()
        ['logits']
    """

    def __init__(self, model: nn.Module, inputs: ExampleInputs) -> None:
        super().__init__()
        self.model = model
        self.n_args, self.keywords = len(inputs.args), list(inputs.kwargs)
        self._example = inputs
        self._names: list[str] | None = None

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        args, rest = tensors[: self.n_args], tensors[self.n_args :]
        flat = flatten_outputs(self.model(*args, **dict(zip(self.keywords, rest, strict=True))))
        self._names = list(flat)
        return tuple(flat.values())

    def output_names(self) -> list[str]:
        if self._names is None:
            with torch.no_grad():
                self(*self._example.flat())
        return list(self._names or [])
