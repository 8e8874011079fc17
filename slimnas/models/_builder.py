"""Builders: an architecture spec plus the data's shapes -> an ``nn.Module``."""

from __future__ import annotations

from torch import nn

from slimnas.spaces import FAMILIES, get_family


def build_model(spec, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """Build the network a spec describes, with its family's builder.

    Example:
        >>> import torch
        >>> build_model(MLPSpec(widths=(32,)), (1, 40), 10)(torch.zeros(2, 1, 40)).shape  # doctest: +SKIP
        torch.Size([2, 10])
    """
    family = getattr(spec, "family", None)
    if family not in FAMILIES:
        raise TypeError(f"not an architecture spec of a registered family: {spec!r}")
    return get_family(family).build(spec, tuple(input_shape), n_classes)
