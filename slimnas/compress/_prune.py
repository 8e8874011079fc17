"""Structured pruning that physically removes channels, filters, neurons and hidden units.

Wraps torch-pruning's dependency graph (Fang et al. 2023, "DepGraph: Towards Any Structural
Pruning"), which keeps coupled layers consistent: residual sums, concatenations, BatchNorm,
grouped and depthwise convolutions. Recurrent layers (GRU, LSTM, any depth and direction) get a
pruning function of our own through torch-pruning's custom-layer hook, and attention modules
lose whole heads (see ``_prune_layers``); what cannot be expressed is left alone and reported.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn

from slimnas.compress._base import BaseCompressor, Gene, register_compressor
from slimnas.compress._distill import Retrain
from slimnas.compress._prune_layers import (
    FixedRNNPruningFunc,
    RNNHiddenPruningFunc,
    head_ratio,
    mask_rnn_units,
    residual_modules,
    rnn_unsupported_reason,
    split_attention,
    split_view,
    tied_to_embeddings,
    tracing_stand_ins,
)
from slimnas.data import DataSplits
from slimnas.errors import ConfigError, SlimnasError
from slimnas.measure._task_metrics import is_classification
from slimnas.models._detector import DetectorModel
from slimnas.models._heads import attention_blocks
from slimnas.models._io import ExampleInputs, example_for, flatten_outputs, main_output
from slimnas.registry import Registry
from slimnas.spaces import Key

#: importance criterion name -> factory of a torch-pruning importance
IMPORTANCES: Registry = Registry("prune.importance")


def register_importance(name: str, *, needs_gradients: bool = False):
    """Decorator: register a factory of a torch-pruning importance under ``name``
    (``prune.importance``). ``needs_gradients``: the criterion reads the weights' loss gradients
    (``.grad``), which pruning then accumulates on training samples before each step (and which
    makes it need the data splits). A factory registered with ``IMPORTANCES.register`` needs none."""

    def decorator(factory):
        factory.needs_gradients = needs_gradients
        IMPORTANCES.register(name)(factory)
        return factory

    return decorator


def needs_gradients(name: str) -> bool:
    """Whether the importance registered as ``name`` declared that it reads loss gradients."""
    return bool(getattr(IMPORTANCES.get(name), "needs_gradients", False))


register_importance("l1")(lambda: tp.importance.MagnitudeImportance(p=1))
register_importance("l2")(lambda: tp.importance.MagnitudeImportance(p=2))
# Molchanov et al. 2019: first-order Taylor expansion of the loss, |gradient x weight|
register_importance("taylor", needs_gradients=True)(lambda: tp.importance.TaylorImportance())
# Liu et al. 2017 (network slimming): |gamma| of the BatchNorm after each channel
register_importance("bn_scale")(lambda: tp.importance.BNScaleImportance())
register_importance("random")(lambda: tp.importance.RandomImportance())

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.GRU, nn.LSTM)
N_GRADIENT_SAMPLES = 512  # training samples whose loss gradient feeds a gradient criterion (Taylor)


def list_importances() -> list[str]:
    return IMPORTANCES.names()


def linear_schedule(ratio: float, steps: int) -> list[float]:
    """Cumulative ratios ``[0, r/n, 2r/n, ..., r]`` for iterative pruning."""
    return [ratio * i / steps for i in range(steps + 1)]


def agp_schedule(ratio: float, steps: int) -> list[float]:
    """Automated gradual pruning (Zhu & Gupta 2017): ``r * (1 - (1 - i/n)**3)``, fast early, slow late."""
    return [ratio * (1 - (1 - i / steps) ** 3) for i in range(steps + 1)]


SCHEDULES = {"linear": linear_schedule, "agp": agp_schedule}


@torch.no_grad()
def executed_layers(model: nn.Module, input_shape: tuple[int, ...] | ExampleInputs) -> list[tuple[str, nn.Module]]:
    """Prunable-type layers in the order a forward pass runs them (unused ones are left out), on
    a batch of zeros of ``input_shape`` or on the model's :class:`ExampleInputs`."""
    order: list[tuple[str, nn.Module]] = []
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(lambda mod, a, o: order.append((names[mod], mod)))
             for m in model.modules() if isinstance(m, PRUNABLE_TYPES)]
    was_training = model.training
    model.eval()
    try:
        example_for(input_shape, zeros=True)(model)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(order))


def prunable_layers(model: nn.Module, input_shape: tuple[int, ...] | ExampleInputs) -> list[tuple[str, nn.Module]]:
    """Layers whose output channels structured pruning can remove, in forward order, of the
    model as pruning sees it (:func:`split_view`): every executed layer but the output layer;
    in a model with attention, one entry per attention (its ``query`` stands for its heads) and
    no layer whose output is the embedding width every block adds to."""
    view = split_view(model)
    layers = executed_layers(view, input_shape)[:-1]
    if any(isinstance(m, DetectorModel) for m in view.modules()):  # a detector's heads are its outputs' widths
        heads = {id(m) for m in output_layers(view, example_for(input_shape))}
        layers = [(n, m) for n, m in layers if id(m) not in heads]
    attention = attention_blocks(view)
    if not attention:
        return layers
    skip = {id(m) for b in attention for m in (b.key, b.value)} | {id(m) for m in _fixed_width(view, input_shape)}
    return [(n, m) for n, m in layers if id(m) not in skip]


def _fixed_width(model: nn.Module, input_shape: tuple[int, ...] | ExampleInputs) -> list[nn.Module]:
    """Layers whose output channels are tied to a LayerNorm or an embedding table."""
    residual = residual_modules(model)
    with warnings.catch_warnings(), tracing_stand_ins(model):
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(model, example_for(input_shape), **tracing_options(),
                                                      customized_pruners=pruning_functions(model))
    out = []
    for m in model.modules():
        if not isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) or m not in graph.module2node:
            continue
        group = graph.get_pruning_group(m, graph.get_pruner_of_module(m).prune_out_channels, [0])
        if any(dep.target.module in residual for dep, _ in group):
            out.append(m)
    return out


def output_layers(model: nn.Module, example: ExampleInputs) -> list[nn.Module]:
    """The layers whose outputs reach one of the model's outputs without passing through another
    layer (followed back through autograd's graph from the eval-mode outputs): every head of a
    detector (its class heatmap, its box sides), whose widths the outputs' shapes are."""
    produced: dict = {}

    def hook(mod, args, out):
        if isinstance(out, torch.Tensor) and out.grad_fn is not None:
            produced[out.grad_fn] = mod

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, PRUNABLE_TYPES)]
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            out = example(model)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    found: list[nn.Module] = []
    stack = [t.grad_fn for t in flatten_outputs(out).values() if t.grad_fn is not None]
    seen = set()
    while stack:
        fn = stack.pop()
        if fn in seen:
            continue
        seen.add(fn)
        if fn in produced:
            found.append(produced[fn])
            continue
        stack.extend(f for f, _ in fn.next_functions if f is not None)
    return list(dict.fromkeys(found))


def resolve_modules(model: nn.Module, names: Sequence[str], field: str) -> list[nn.Module]:
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        candidates = [n for n, m in modules.items() if isinstance(m, PRUNABLE_TYPES)]
        raise ConfigError(field, f"layer names of the model ({candidates})", missing[0])
    return [modules[n] for n in names]


def check_ratio(ratio: float, field: str) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
        raise ConfigError(field, "a ratio in [0, 1)", ratio)
    return float(ratio)


@register_compressor("prune")
class StructuredPruner(BaseCompressor):
    """Remove whole channels (conv filters, Linear neurons, recurrent hidden units).

    Args:
        ratio: share of channels removed from every prunable group (``0 <= ratio < 1``).
        importance: criterion by name: ``l1``, ``l2``, ``taylor``, ``bn_scale``, ``random``.
        global_pruning: rank channels across layers instead of within each layer.
        layer_ratios: per-layer ratios by module name; they override ``ratio``.
        ignored: module names left alone (the output layer always is).
        steps: number of pruning steps (with ``retrain`` between them).
        schedule: how the ratio grows over the steps: ``linear`` or ``agp``.
        retrain: retraining after each step (``Retrain(epochs=0)`` for none).

    Learned state: ``model_``; ``layers_`` (name -> [channels before, after]); ``removed_``
    (per step, name -> removed output indices); ``left_alone_`` (name -> why it was not pruned).

    Example:
        >>> from slimnas.models import mnist1d_paper_cnn
        >>> p = StructuredPruner(ratio=0.5).fit(mnist1d_paper_cnn(), input_shape=(1, 40))
        >>> p.layers_["0"]
        [25, 12]
    """

    def __init__(
        self,
        ratio: float = 0.5,
        importance: str = "l1",
        *,
        global_pruning: bool = False,
        layer_ratios: Mapping[str, float] | None = None,
        ignored: Sequence[str] = (),
        steps: int = 1,
        schedule: str = "linear",
        retrain: Retrain | None = None,
    ) -> None:
        self._store(locals())

    order = 10
    layer_column = "ratio"
    layer_off = 0.0
    genes = {
        "prune": Gene(Key(float, "ratios in [0, 0.95]", {"low": 0.0, "high": 0.8}, lambda v: 0 <= v <= 0.95),
                      layers="prunable", tied_by="per_layer"),
        "per_layer": Gene(Key(bool, "true/false", True), fixed=True),
        "importance": Gene(Key(str, "criteria from " + ", ".join(repr(n) for n in IMPORTANCES.names()), ["l1"],
                               lambda v: v in IMPORTANCES)),
    }

    @classmethod
    def options_from_genes(cls, values):
        ratios = {k: float(v) for k, v in values["prune"].items() if v > 0}
        return {"ratio": 0.0, "importance": values["importance"], "layer_ratios": ratios}

    conformance_options = {"ratio": 0.5}

    def validate(self) -> None:
        self._validate()

    def reference_model(self, original: nn.Module) -> nn.Module | None:
        """The original with the removed channels zeroed (one step without retraining)."""
        if len(self.removed_) != 1 or self.history_:
            return None
        return masked_copy(original, self.removed_[0])

    def is_noop(self) -> bool:
        return self.ratio == 0 and not any(r > 0 for r in (self.layer_ratios or {}).values())

    def not_done(self) -> dict[str, str]:
        return dict(self.left_alone_)

    def did_nothing(self) -> bool:
        return all(before == after for before, after in self.layers_.values())

    def layer_values(self, layers):
        ratios = self.layer_ratios or {}
        return {n: float(ratios.get(n, self.ratio)) for n in layers}

    def _validate(self) -> None:
        check_ratio(self.ratio, "prune.ratio")
        for name, r in (self.layer_ratios or {}).items():
            check_ratio(r, f"prune.layer_ratios.{name}")
        IMPORTANCES.get(self.importance)  # raises ConfigError naming the choices
        if self.schedule not in SCHEDULES:
            raise ConfigError("prune.schedule", f"one of {sorted(SCHEDULES)}", self.schedule)
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError("prune.steps", "an integer >= 1", self.steps)

    def _fit(self, model, data, teacher, input_shape):
        self._validate()
        split_left = split_attention(model)  # nn.MultiheadAttention -> separate projections
        names = {m: n for n, m in model.named_modules()}
        executed = executed_layers(model, input_shape)
        if not executed:
            raise SlimnasError("the model has no Linear, Conv or GRU/LSTM layer to prune")
        self.left_alone_ = {name: f"attention left whole: {why}" for name, why in split_left.items()}
        custom = pruning_functions(model)
        ignored = self._ignored_layers(model, executed, custom, input_shape)
        before = {n: _width(m) for n, m in executed}
        ratio_dict = self._ratio_dict(model, executed, before, ignored)
        attention = attention_blocks(model)
        heads: dict = {}
        if attention:  # keep the embedding width; prune whole heads (and MLP neurons)
            ignored += residual_modules(model)
            heads = self._head_options(attention, ratio_dict)
        importance = IMPORTANCES.get(self.importance)()
        example = example_for(input_shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch-pruning warns about unwrapped parameters it skips
            pruner = _build_pruner(
                model, example, importance=importance, global_pruning=self.global_pruning,
                pruning_ratio=float(self.ratio), pruning_ratio_dict=ratio_dict or None,
                iterative_steps=self.steps, iterative_pruning_ratio_scheduler=SCHEDULES[self.schedule],
                ignored_layers=ignored, customized_pruners=custom,
                root_module_types=[tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR, nn.GRU, nn.LSTM], **heads,
            )
        epochs_run = self._prune_steps(model, data, teacher, pruner, example, names, attention)
        self.layers_ = {n: [before[n], _width(m)] for n, m in executed}
        self._explain_unpruned(model, executed, names, attention)
        self.report_ = {"importance": self.importance, "ratio": self.ratio, "layers": self.layers_,
                        "left_alone": self.left_alone_, "steps": self.steps, "epochs_run": epochs_run}
        if attention:
            self.report_["heads"] = {names[b.module]: b.heads for b in attention}
        return model.eval()

    def _ignored_layers(self, model, executed, custom, input_shape) -> list[nn.Module]:
        """The layers torch-pruning must leave whole: ``ignored``, the output layer and recurrent
        layers it cannot prune (each recorded in ``left_alone_`` with why)."""
        ignored = resolve_modules(model, list(self.ignored), "prune.ignored")
        ignored.append(executed[-1][1])  # the output layer: its width is the number of classes
        if any(isinstance(m, DetectorModel) for m in model.modules()):  # a detector's heads: classes, box sides
            self.heads_ = [m for m in output_layers(model, example_for(input_shape)) if m not in ignored]
            ignored += self.heads_
        for name, mod in model.named_modules():
            if isinstance(mod, nn.RNNBase) and (rnn_unsupported_reason(mod) is not None  # plain RNN cells
                                                or isinstance(custom.get(type(mod)), FixedRNNPruningFunc)):
                ignored.append(mod)
                self.left_alone_[name] = rnn_unsupported_reason(mod) or (
                    f"left alone with the model's other {mod.mode} layers (one of them is unsupported)")
        return ignored

    def _ratio_dict(self, model, executed, before, ignored) -> dict:
        """Per-layer ratios by module (``layer_ratios``); outside global pruning, every ratio
        capped so that at least one channel of each layer stays."""
        ratio_dict = {m: r for m, r in zip(resolve_modules(model, list(self.layer_ratios or {}),
                                                           "prune.layer_ratios"),
                                           (self.layer_ratios or {}).values(), strict=True)}
        if not self.global_pruning:
            # torch-pruning leaves a layer whole when its ratio would remove every channel: cap
            # each ratio so that one channel stays, rather than silently not pruning
            for name, mod in executed[:-1]:
                target = ratio_dict.get(mod, self.ratio)
                cap = max(0.0, 1 - 1.5 / max(before[name], 1))
                if target > cap and mod not in ignored:
                    ratio_dict[mod] = cap
        return ratio_dict

    def _prune_steps(self, model, data, teacher, pruner, example, names, attention) -> int:
        """Run the pruning steps, each followed by its retraining; records ``removed_`` and
        ``history_``; returns the epochs retrained."""
        retrain = self.retrain or Retrain()
        self.removed_ = []
        self.history_ = []
        epochs_run = 0
        shapes = _output_shapes(model, example)
        for step in range(self.steps):
            if needs_gradients(self.importance):
                _accumulate_gradients(model, data, example, self.importance)
            torch.manual_seed(retrain.seed + step)  # the random criterion draws from torch's RNG
            removed: dict[str, list[int]] = {}
            for group in pruner.step(interactive=True):
                for dep, idxs in group:
                    if dep.handler.__name__ == "prune_out_channels" and dep.target.module in names:
                        removed[names[dep.target.module]] = sorted(int(i) for i in idxs)
                group.prune()
            for block in attention:
                block.sync()
            _check_consistent(model, example, shapes)
            model.zero_grad(set_to_none=True)
            self.removed_.append(removed)
            history = retrain.run(model, data, teacher)
            if history is not None:
                self.history_.append(history.last)
                epochs_run += len(history.epochs)
        return epochs_run

    def _explain_unpruned(self, model, executed, names, attention) -> None:
        """Why each layer that was to be pruned kept every channel, in ``left_alone_``."""
        tied = {names[m] for m in tied_to_embeddings(model)}
        for name, (b, a) in self.layers_.items():
            target = (self.layer_ratios or {}).get(name, self.ratio)
            heads = {names[m] for m in getattr(self, "heads_", ())}
            if a == b and target > 0 and name not in self.left_alone_ and name != executed[-1][0] and name not in heads:
                self.left_alone_[name] = (
                    "shares its weights with an embedding table (tied weights)" if name in tied else
                    "keeps the embedding width every Transformer block adds to (heads and MLP neurons are pruned)"
                    if attention else
                    f"no channel removed ({self.importance!r} scores none, or a coupled layer is ignored)")

    def _head_options(self, attention, ratio_dict) -> dict:
        """torch-pruning's head-pruning arguments: heads per projection, and per attention
        module the head ratio its query/key/value ratio (or the model's ratio) asks for."""
        num_heads, ratios = {}, {}
        for block in attention:
            projections = (block.query, block.key, block.value)
            num_heads.update(dict.fromkeys(projections, block.heads))
            given = [ratio_dict[p] for p in projections if p in ratio_dict]
            r = max(given) if given else float(self.ratio)
            if given:  # the group's ratio must be > 0 for torch-pruning to look at its heads
                ratio_dict.update(dict.fromkeys(projections, r))
            ratios[block.module] = head_ratio(r, block.heads)
        overall = head_ratio(float(self.ratio), max(b.heads for b in attention))
        return {"num_heads": num_heads, "prune_num_heads": True, "prune_head_dims": False,
                "head_pruning_ratio": overall, "head_pruning_ratio_dict": ratios}


def pruning_functions(model: nn.Module) -> dict:
    """torch-pruning's custom pruners for recurrent layers. It takes them per layer type: one
    unsupported GRU (or LSTM) means every GRU (or LSTM) of the model is left alone."""
    custom: dict = {nn.GRU: RNNHiddenPruningFunc(), nn.LSTM: RNNHiddenPruningFunc(),
                    nn.RNN: FixedRNNPruningFunc()}  # plain tanh/ReLU cells: kept whole
    for mod in model.modules():
        if isinstance(mod, (nn.GRU, nn.LSTM)) and rnn_unsupported_reason(mod):
            custom[type(mod)] = FixedRNNPruningFunc()
    return custom


@torch.no_grad()
def masked_copy(original: nn.Module, removed: Mapping[str, Sequence[int]]) -> nn.Module:
    """The original with the given output channels zeroed (weights, biases; every gate's rows of
    a recurrent layer, in all its layers and directions; the projections of removed attention
    heads, ``nn.MultiheadAttention`` split first): what structured pruning must compute."""
    model = copy.deepcopy(original)
    split_attention(model)
    modules = dict(model.named_modules())
    for name, idxs in removed.items():
        m, idx = modules[name], torch.tensor(list(idxs), dtype=torch.long)
        if isinstance(m, nn.RNNBase):
            mask_rnn_units(m, idxs)
        elif isinstance(m, nn.Embedding):  # its channels are its columns
            m.weight[:, idx] = 0
        else:
            m.weight[idx] = 0
            if m.bias is not None:
                m.bias[idx] = 0
    return model.eval()


@torch.no_grad()
def _output_shapes(model: nn.Module, example: ExampleInputs) -> dict[str, tuple[int, ...]]:
    """The shape of every output of the model (flattened: a dict's, a ``ModelOutput``'s)."""
    was_training = model.training
    try:
        return {k: tuple(v.shape) for k, v in flatten_outputs(example(model.eval())).items()}
    finally:
        model.train(was_training)


@torch.no_grad()
def _check_consistent(model: nn.Module, example: ExampleInputs,
                      shapes: Mapping[str, tuple[int, ...]] | None = None) -> None:
    """The pruned model still runs, and answers with outputs of the shapes it had (``shapes``):
    a layer whose coupling torch-pruning traced wrongly shows up as a shape mismatch here, not
    later inside training or export, and so does a pruned layer whose width is an output's."""
    was_training = model.training
    try:
        got = {k: tuple(v.shape) for k, v in flatten_outputs(example(model.eval())).items()}
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SlimnasError(f"structured pruning left layers of mismatched widths ({first}); torch-pruning "
                           "misread how they connect: list them in prune.ignored") from None
    finally:
        model.train(was_training)
    for name, shape in (shapes or {}).items():
        if got.get(name) != shape:
            raise SlimnasError(f"structured pruning changed the model's output {name!r} from {shape} to "
                               f"{got.get(name)}: list the layer computing it in prune.ignored")


def tracing_options() -> dict:
    """How torch-pruning runs the model on its :class:`ExampleInputs` (positional and keyword
    tensors) and reads its outputs (any structure, flattened: a ``ModelOutput``'s tensors)."""
    return {"forward_fn": lambda model, example: example(model),
            "output_transform": lambda out: tuple(flatten_outputs(out).values())}


def _build_pruner(model: nn.Module, example: ExampleInputs, **kwargs) -> tp.pruner.BasePruner:
    try:
        with tracing_stand_ins(model):
            pruner = tp.pruner.BasePruner(model, example, **tracing_options(), **kwargs)
    except (TypeError, ValueError, RuntimeError, AssertionError, KeyError, IndexError) as e:
        raise SlimnasError(
            f"torch-pruning cannot trace this model for structured pruning ({type(e).__name__}: {e}); "
            "list the layers it trips on in prune.ignored, or use unstructured pruning"
        ) from None
    _custom_layer_ratios(pruner, kwargs.get("pruning_ratio_dict") or {})
    return pruner


def _custom_layer_ratios(pruner: tp.pruner.BasePruner, ratio_dict: Mapping[nn.Module, float]) -> None:
    """torch-pruning reads per-layer ratios only for its built-in layer types: give the layers
    pruned by a function of ours (GRU, LSTM) theirs too, each its own scope as a local ratio
    gets, so ``layer_ratios`` prunes what ``ratio`` prunes."""
    for i, (module, ratio) in enumerate(ratio_dict.items()):
        if module in pruner.pruning_ratio_dict or not isinstance(module, nn.RNNBase):
            continue
        pruner._layer_to_scope[module] = (f"_slimnas_recurrent_{i}", [module])
        pruner.pruning_ratio_dict[module] = pruner.iterative_pruning_ratio_scheduler(ratio, pruner.iterative_steps)


def _width(module: nn.Module) -> int:
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.RNNBase):
        return module.hidden_size
    return module.out_channels


def _accumulate_gradients(model: nn.Module, data: DataSplits | None, example: ExampleInputs,
                          importance: str) -> None:
    """Gradients of the task's loss (``data.task``: next-token cross-entropy of a language model,
    MSE of a regressor, ...) on training samples, for a criterion that reads them (Taylor)."""
    if data is None:
        raise ConfigError("prune.importance", f"dataset splits for {importance!r} (it needs loss gradients)",
                          importance)
    model.zero_grad(set_to_none=True)
    was_training = model.training
    model.eval()
    n = min(len(data.y_train), N_GRADIENT_SAMPLES)
    task = getattr(data, "task", None)
    own = task is not None and task.own_losses  # a detector: the losses it computes given the targets
    if own:  # which it computes in training mode only: its normalisation statistics are put back after
        saved = [(b, b.detach().clone()) for b in model.buffers()]
        model.train()
    for i in range(0, n, 128):
        xb, yb = data.x_train[i : min(i + 128, n)], data.y_train[i : min(i + 128, n)]
        if own:
            loss = task.loss(task.train_output(model, xb, yb), yb) * (len(xb) / n)
        elif is_classification(task):
            loss = F.cross_entropy(main_output(model(xb)), yb, reduction="sum") / n
        else:  # the task's mean over the batch, weighted by its share of the n samples
            loss = task.loss(main_output(model(xb)), yb) * (len(yb) / n)
        loss.backward()
    if own:
        with torch.no_grad():
            for b, v in saved:
                b.copy_(v)
    model.train(was_training)
    if not math.isfinite(float(loss.detach())):
        raise SlimnasError(f"the loss is not finite; the {importance!r} importance cannot be computed")
