"""The compressor contract, the registry compressors plug into, and a pipeline that chains them.

Compressors follow the scikit-learn estimator contract: ``__init__`` only stores its arguments,
:meth:`BaseCompressor.fit` does the work on a copy of the model and returns ``self``, learned
state ends in ``_`` (``model_`` always), and ``get_params``/``set_params`` let a search set them.

A registered compressor (:func:`register_compressor`) is a step of a
:class:`~slimnas.compress.CompressionPolicy`: the policy names it and gives its constructor
arguments; the policy's retraining recipe reaches it as ``retrain``. The class attributes say
where it runs in a policy built by a search or the command line (``order``), whether retraining
follows it, which per-layer setting reports show, and which genes it adds to a joint search.
"""

from __future__ import annotations

import abc
import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from slimnas.config._names import precision_names, register_precision
from slimnas.data import DataSplits
from slimnas.errors import ConfigError
from slimnas.models._io import ExampleInputs
from slimnas.spaces import Key
from slimnas.spaces._policy import COMPRESSORS, list_compressors

#: layers quantization, low rank and clustering act on (recurrent layers are pruned, not these)
WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def weighted_layers(model: nn.Module, layers: Sequence[str] | None = None, field: str = "layers") -> list[str]:
    """The Linear and convolution layers a step acts on: ``layers``, each checked to be one (a
    :class:`ConfigError` under ``field`` otherwise), or all of them."""
    modules = dict(model.named_modules())
    names = list(layers) if layers is not None else [n for n, m in modules.items() if isinstance(m, WEIGHTED)]
    bad = [n for n in names if not isinstance(modules.get(n), WEIGHTED)]
    if bad:
        raise ConfigError(field, "names of Linear or convolution layers", bad[0])
    return names


@dataclass(frozen=True)
class Gene:
    """A gene a compressor adds to ``space.compression``.

    Args:
        key: the config key: its type, what it accepts and its default.
        layers: for a per-layer gene (named ``comp.<name>_<i>`` by layer position):
            ``"prunable"`` (every layer but the output layer), ``"weighted"`` (the Linear and
            convolution layers: what quantization and low rank act on) or ``"all"``; ``None``
            for one value.
        tied_by: a boolean config key; when it is false, one value serves every layer.
    """

    key: Key
    layers: str | None = None
    tied_by: str | None = None
    #: a setting rather than a choice: the config must give one value
    fixed: bool = False


class BaseCompressor(abc.ABC):
    """One compression step.

    Call order: ``__init__`` stores the parameters, unchanged (``self._store(locals())``); :meth:`fit` compresses a deep copy
    of ``model`` (the caller's model is never modified) and sets ``model_``, plus any
    step-specific learned state (``report_`` is a JSON-ready dict of what the step did). Steps
    that produce an ONNX file (quantization) also set ``onnx_`` (the file's bytes) and
    ``precision_``.

    Subclasses implement :meth:`_fit`, which receives the copy and may change it in place.
    """

    #: registry name, set by :func:`register_compressor`
    name: ClassVar[str] = ""
    #: position in a policy built by a search or the command line (smaller runs first)
    order: ClassVar[int] = 50
    #: a retraining step (the policy's ``retrain``) follows this step
    retrains: ClassVar[bool] = True
    #: this step writes the artifact's file (quantization): it runs last
    writes_file: ClassVar[bool] = False
    #: per-layer setting shown in reports (``ratio``, ``rank``, ``precision``), if any
    layer_column: ClassVar[str | None] = None
    #: that setting's value when a policy has no step of this compressor
    layer_off: ClassVar[Any] = None
    #: precision names this compressor gives ``compress --quantize``, each with its step options
    #: (``{"int4": {"bits": 4}}``): names come from the registry, not from a list kept by hand; a
    #: compressor with an ``encode(model, data, names)`` method (returning each named layer's
    #: :class:`~slimnas.compress._lowbit.LowBitWeight`) also writes them for single layers
    #: (``quantize.layer_precision``, ``compress --auto --precision``)
    precisions: ClassVar[dict[str, dict[str, Any]]] = {}
    #: genes this compressor adds to a joint search (``space.compression``)
    genes: ClassVar[dict[str, Gene]] = {}
    #: constructor arguments the conformance suite (:mod:`slimnas.testing`) fits with: ones for
    #: which :meth:`reference_model` builds a reference
    conformance_options: ClassVar[dict[str, Any]] = {}

    #: set by steps whose artifact is an ONNX file rather than the eager model alone
    onnx_: bytes | None = None
    #: bytes of a compressed encoding the ONNX file does not show (weight clustering)
    storage_bytes_: int | None = None

    def fit(
        self,
        model: nn.Module,
        data: DataSplits | None = None,
        *,
        teacher: nn.Module | None = None,
        input_shape: tuple[int, ...] | None = None,
        example_inputs: Any = None,
    ):
        """Compress a copy of ``model``.

        Args:
            model: the trained model; left untouched.
            data: train/val/test splits; needed for calibration, retraining and data-driven
                criteria (Taylor importance, sensitivity).
            teacher: the model to distil from during retraining; the uncompressed input by default.
            input_shape: shape of one sample; taken from ``data`` when omitted.
            example_inputs: a batch of the model's inputs, for a model that takes more than one
                float tensor: a tensor, a tuple of positional tensors, a dict of keyword tensors
                (``{"input_ids": ..., "attention_mask": ...}``), ``(args, kwargs)``
                (:class:`~slimnas.models._io.ExampleInputs`), or a ``DataLoader`` whose first
                batch is read (without its targets); it replaces ``input_shape``. A model that
                does not take them is a :class:`ConfigError`.

        Returns:
            self, with ``model_`` set.
        """
        if not isinstance(model, nn.Module):
            raise ConfigError("model", "a torch.nn.Module", type(model).__name__)
        work = copy.deepcopy(model).cpu()
        if teacher is None:
            teacher = model
        shape = _input_shape(data, input_shape, type(self).__name__, example_inputs, model)
        out = self._fit(work, data, teacher, shape)
        self.model_ = work if out is None else out
        return self

    @abc.abstractmethod
    def _fit(
        self, model: nn.Module, data: DataSplits | None, teacher: nn.Module, input_shape: tuple[int, ...]
    ) -> nn.Module | None:
        """Compress ``model`` in place (or return a replacement)."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD]

    def _store(self, arguments: dict[str, Any]) -> None:
        """The whole of a compressor's ``__init__``, as ``self._store(locals())``: each constructor
        argument kept, unchanged, as the attribute of its name (what :meth:`get_params` reads)."""
        for name in self._param_names():
            setattr(self, name, arguments[name])

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, by name (scikit-learn's contract)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any):
        """Set constructor arguments by name; returns self."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ConfigError(f"{type(self).__name__}.{key}", f"one of {sorted(valid)}", key)
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # --- as a policy step (optional hooks, defaults suit most compressors) -------------------

    @classmethod
    def from_options(cls, options: dict[str, Any], *, retrain=None, field: str | None = None) -> BaseCompressor:
        """The compressor a policy step describes: ``options`` are constructor arguments, and
        the policy's ``retrain`` goes to compressors that retrain."""
        field = field or f"compression.{cls.name}"
        valid = set(cls._param_names()) - {"retrain"}
        unknown = set(options) - valid
        if unknown:
            raise ConfigError(f"{field}.{sorted(unknown)[0]}", f"one of the options {sorted(valid)}")
        extra = {"retrain": retrain} if retrain is not None and "retrain" in cls._param_names() else {}
        return cls(**options, **extra)

    def validate(self) -> None:
        """Raise :class:`ConfigError` on a bad parameter, before any work (no-op by default)."""
        return None

    def is_noop(self) -> bool:
        """Whether this step would leave the model as it is (a policy skips it)."""
        return False

    def not_done(self) -> dict[str, str]:
        """After :meth:`fit`: the layers this step was asked to change and left as they were,
        each with why (reports and the command line say so)."""
        return {}

    def did_nothing(self) -> bool:
        """After :meth:`fit`: whether the step changed nothing at all (a request that does
        nothing fails instead of passing in silence)."""
        return False

    def layer_values(self, layers: Sequence[str]) -> dict[str, Any]:
        """This step's :attr:`layer_column` value for each of ``layers`` (for reports)."""
        return {}

    def reference_model(self, original: nn.Module) -> nn.Module | None:
        """After :meth:`fit`: a model built another way that must compute what ``model_`` does
        (the original with the removed channels masked, the layers a full-rank factorisation
        replaced, ...), or ``None`` when there is none. Conformance checks compare the two."""
        return None

    @classmethod
    def options_from_genes(cls, values: dict[str, Any]) -> dict[str, Any] | None:
        """Step options from the sampled genes (per-layer genes as ``{layer: value}``); ``None``
        when the sampled values ask for nothing."""
        return None


def register_compressor(name: str) -> Callable[[type[BaseCompressor]], type[BaseCompressor]]:
    """Class decorator: register a :class:`BaseCompressor` as the policy step ``name``.

    Example:
        >>> @register_compressor("toy")  # doctest: +SKIP
        ... class ToyCompressor(BaseCompressor):
        ...     order = 40
        ...     def __init__(self, scale: float = 1.0, *, retrain=None): ...
        ...     def _fit(self, model, data, teacher, input_shape): ...
    """

    def decorator(cls: type[BaseCompressor]) -> type[BaseCompressor]:
        COMPRESSORS.register_class(name)(cls)
        for precision, options in cls.precisions.items():  # one name list: the precision registry
            if precision not in precision_names():
                # a compressor that encodes chosen layers (``encode``) writes its precision per layer too
                register_precision(precision, bits=int(options.get("bits", 0)), layer=callable(getattr(cls, "encode", None)))
        return cls

    return decorator


def precision_steps() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every precision name a registered compressor declares: name -> (compressor, step options)."""
    return {p: (name, dict(options)) for name in list_compressors()
            for p, options in COMPRESSORS.get(name).precisions.items()}


def _input_shape(data: DataSplits | None, input_shape: tuple[int, ...] | None, who: str,
                 example_inputs: Any = None, model: nn.Module | None = None) -> tuple[int, ...] | ExampleInputs:
    """What ``_fit`` runs the model on: the :class:`ExampleInputs` given (checked to run on the
    model), else the shape of one sample."""
    if example_inputs is not None:
        example = ExampleInputs.of(example_inputs, model=model)
        if model is not None:
            example.probe(model)
        return example
    if isinstance(input_shape, ExampleInputs):
        return input_shape
    if input_shape is not None:
        return tuple(input_shape)
    if data is None:
        raise ConfigError(f"{who}.fit", "data splits or an input_shape")
    return data.input_shape


def _require_data(data: DataSplits | None, who: str) -> DataSplits:
    if data is None:
        raise ConfigError(f"{who}.data", "dataset splits (this step calibrates or retrains on data)")
    return data


class Pipeline(BaseCompressor):
    """Chains compressors: each step fits on the previous step's ``model_``.

    The teacher for distillation is the pipeline's input model in every step, so later steps
    distil from the uncompressed model rather than from an already-compressed one.

    Example:
        >>> from slimnas.compress import LowRankFactorizer, StructuredPruner
        >>> from slimnas.models import mnist1d_paper_cnn
        >>> pipe = Pipeline([("prune", StructuredPruner(ratio=0.25)),
        ...                  ("lowrank", LowRankFactorizer(rank_ratio=0.5))])
        >>> pipe.fit(mnist1d_paper_cnn(), input_shape=(1, 40)).model_ is not None
        True
    """

    def __init__(self, steps: Sequence[tuple[str, BaseCompressor]]) -> None:
        self.steps = steps

    @property
    def named_steps(self) -> dict[str, BaseCompressor]:
        return dict(self.steps)

    def fit(self, model, data=None, *, teacher=None, input_shape=None, example_inputs=None):
        names = [name for name, _ in self.steps]
        if len(set(names)) != len(names) or any("__" in n for n in names):
            raise ConfigError("pipeline.steps", "unique step names without '__'", names)
        teacher = model if teacher is None else teacher
        current = model
        self.onnx_, self.precision_ = None, None
        self.report_ = {}
        for name, step in self.steps:
            given = {} if example_inputs is None else {"example_inputs": example_inputs}  # a plug-in's own fit may not take it
            step.fit(current, data, teacher=teacher, input_shape=input_shape, **given)
            current = step.model_
            self.report_[name] = getattr(step, "report_", {})
            if getattr(step, "onnx_", None) is not None:
                self.onnx_, self.precision_ = step.onnx_, getattr(step, "precision_", None)
        self.model_ = current
        return self

    def _fit(self, model, data, teacher, input_shape):  # pragma: no cover - fit is overridden
        raise NotImplementedError

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": self.steps}
        if deep:
            for name, step in self.steps:
                out[name] = step
                for key, value in step.get_params().items():
                    out[f"{name}__{key}"] = value
        return out

    def set_params(self, **params: Any):
        steps = self.named_steps
        for key, value in params.items():
            if key == "steps":
                self.steps = value
                continue
            name, _, sub = key.partition("__")
            if name not in steps or not sub:
                raise ConfigError(f"Pipeline.{key}", f"'steps' or '<step>__<param>' with a step in {list(steps)}", key)
            steps[name].set_params(**{sub: value})
        return self
