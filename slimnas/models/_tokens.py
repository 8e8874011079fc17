"""What the sequence families share for token-id inputs and per-token heads.

Token ids arrive as numbers (every slimnas input is a float tensor, so exported files take the
float input every slimnas file takes), shaped ``(L,)`` or ``(1, L)``, and are looked up in an
embedding table (:func:`embed_ids`). A per-token head (``per_token`` in a family's spec, which a
search of a per-token task sets, :meth:`slimnas.spaces.BaseFamily.per_token`) gives one
prediction per position: ``tokens`` from the whole sequence, ``causal`` from that position and
the earlier ones only (a language model). The convolutional families (cnn, resnet, mobilenet)
read their inputs through :func:`token_inputs` and :func:`embed_channels`, keep the length
(:func:`check_length_kept`) and pad causally (:func:`sequence_padding`) with the same helpers.
"""

from __future__ import annotations

import torch
from torch import nn

from slimnas.errors import ConfigError

#: the values of a spec's ``per_token``: "" one output per sample; "tokens" one per position;
#: "causal" one per position, from that position and the earlier ones only
PER_TOKEN = ("", "tokens", "causal")


def check_per_token(value: str, family: str) -> str:
    """``value`` when it is one of :data:`PER_TOKEN`, else a one-line :class:`ConfigError`."""
    if value not in PER_TOKEN:
        raise ConfigError(f"space.{family}.per_token", "'', 'tokens' or 'causal'", value)
    return value


def check_id_inputs(input_shape: tuple[int, ...], vocab_size: int, family: str) -> int:
    """The sequence length of token-id inputs (``(L,)`` or ``(1, L)``), else a one-line
    :class:`ConfigError` naming ``space.<family>.vocab_size``."""
    if len(input_shape) > 2 or (len(input_shape) == 2 and input_shape[0] != 1):
        raise ConfigError(f"space.{family}.vocab_size", "token-id inputs shaped (L,) or (1, L) "
                          "(0 for inputs that are values)", f"{vocab_size} with input {input_shape}")
    return input_shape[-1]


def embed_ids(embed: nn.Embedding, x: torch.Tensor) -> torch.Tensor:
    """``(N, L, dim)``: the rows of ``embed`` for the ids in ``x`` (``(N, L)`` or ``(N, 1, L)``,
    as numbers; ids beyond the table are clamped to it)."""
    return embed(x.flatten(1).clamp(0, embed.num_embeddings - 1).long())


def check_sequence_head(per_token: str, input_shape: tuple[int, ...], family: str) -> None:
    """A per-token head needs one sequence axis: inputs ``(C, L)`` or token ids."""
    if per_token and len(input_shape) > 2:
        raise ConfigError(f"space.{family}.per_token", "a pooled head ('') for inputs with more than one "
                          "sequence axis", f"{per_token!r} with input {input_shape}")


def token_inputs(spec, input_shape: tuple[int, ...], width: int,
                 family: str) -> tuple[str, nn.Embedding | None, tuple[int, ...]]:
    """What a convolutional family reads, from its spec's ``per_token`` and ``vocab_size``:
    ``(per_token, embed, input_shape)``, with token ids (``vocab_size > 0``) embedded ``width``
    wide (``embed``, else ``None``) and ``input_shape`` the ``(width, L)`` that the convolutions
    then see; a per-token head on inputs with more than one sequence axis is refused in one line."""
    mode = check_per_token(spec.per_token, family)
    embed = None
    if spec.vocab_size > 0:  # token ids -> (N, width, L)
        length = check_id_inputs(input_shape, spec.vocab_size, family)
        embed = nn.Embedding(spec.vocab_size, width)
        input_shape = (width, length)
    check_sequence_head(mode, input_shape, family)
    return mode, embed, input_shape


def embed_channels(embed: nn.Embedding | None, x: torch.Tensor) -> torch.Tensor:
    """``x`` as convolutions take it: token ids embedded to ``(N, dim, L)``; values as they are."""
    return x if embed is None else embed_ids(embed, x).transpose(1, 2)


def check_length_kept(per_token: str, shortened: bool, field: str, got) -> None:
    """A per-token head needs features as long as the sequence: refuse (a one-line
    :class:`ConfigError` naming ``field``, ``got`` the strides and poolings) a ``shortened`` one."""
    if per_token and shortened:
        raise ConfigError(field, "stride 1 and no pooling with a per-token head (the features keep the "
                          "sequence's length)", got)


def sequence_padding(kernel: int, dilation: int = 1, causal: bool = False) -> tuple[nn.Module, int]:
    """``(shift, padding)`` for a convolution that keeps the size: no shift and the padding split
    on both sides (1-D or 2-D), or, ``causal`` (1-D), all of it on the left (``shift``, a zero
    pad before the convolution; its own ``padding`` then 0), so position ``t`` reads positions
    ``<= t`` only (van den Oord et al. 2016's causal convolutions)."""
    reach = dilation * (kernel - 1)
    if causal:
        return (nn.ConstantPad1d((reach, 0), 0.0) if reach else nn.Identity()), 0
    return nn.Identity(), reach // 2


class Positions(nn.Module):
    """A per-token head's "pooling": features ``(N, C, L)`` to ``(N, L, C)``, so the classifier
    gives one prediction per position."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)
