"""How large a search space's candidates can get, estimated before any is built for real: the
largest candidate of each family (every parameter at its largest choice) is built on PyTorch's
meta device, which allocates nothing, and its parameters and MACs counted. A space whose largest
candidate is past a bound is refused in one line, before the run folder is written."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from slimnas.errors import ConfigError
from slimnas.measure import count_macs, count_params
from slimnas.models import build_model
from slimnas.spaces import SearchSpace, get_family

#: the largest candidate a search builds: 100M parameters (400 MB of float32 weights, about
#: four times that while training) and 100G multiply-accumulates per sample
MAX_PARAMS = 100_000_000
MAX_MACS = 100_000_000_000


def largest_candidate(space: SearchSpace, family: str):
    """``family``'s architecture with every parameter at its largest choice (every layer alike)."""
    params = space.params[family]
    return get_family(family).sample(lambda key, i=None: params[key].max())


def check_space_size(space: SearchSpace, input_shape: tuple[int, ...], n_classes: int,
                     vocab_size: int | None = None, field: str = "space") -> None:
    """Refuse a space whose largest candidate has more than :data:`MAX_PARAMS` parameters or
    :data:`MAX_MACS` MACs per sample, naming the family and the bound. A candidate that cannot
    be built on the meta device (a plug-in that needs real tensors, or one whose largest choices
    do not fit the data while others do) is not estimated: it is checked when it is built."""
    for family in space.families:
        try:
            arch = largest_candidate(space, family)
            if vocab_size and getattr(arch, "vocab_size", None) == 0:  # token ids: the data's vocabulary
                arch = dataclasses.replace(arch, vocab_size=vocab_size)
            with torch.device("meta"):
                model = build_model(arch, input_shape, n_classes)
            params = count_params(model)
            # recurrent layers on the meta device run step by step (seconds): their MACs follow their
            # parameters, which are bounded already
            recurrent = any(isinstance(m, nn.RNNBase) for m in model.modules())
            macs = count_macs(model, input_shape) if params <= MAX_PARAMS and not recurrent else 0
        except Exception:  # noqa: BLE001  (an estimate only: the real build reports its own errors)
            continue
        for what, value, bound in (("parameters", params, MAX_PARAMS), ("MACs per sample", macs, MAX_MACS)):
            if value > bound:
                raise ConfigError(f"{field}.{family}", f"a space whose largest candidate has at most {bound:,} "
                                  f"{what} (its largest choices give {value:,}; narrow widths or layers)")
