"""What the sequence families share for token-id inputs and per-token heads.

Token ids arrive as numbers (every slimnas input is a float tensor, so exported files take the
float input every slimnas file takes), shaped ``(L,)`` or ``(1, L)``, and are looked up in an
embedding table (:func:`embed_ids`). A per-token head (``per_token`` in a family's spec, which a
search of a per-token task sets, :meth:`slimnas.spaces.BaseFamily.per_token`) gives one
prediction per position: ``tokens`` from the whole sequence, ``causal`` from that position and
the earlier ones only (a language model).
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
