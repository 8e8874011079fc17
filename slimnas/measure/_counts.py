"""Exact parameter and MAC counts of a built model."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from slimnas.models._io import ExampleInputs, example_for


def count_params(model: nn.Module, *, nonzero: bool = False) -> int:
    """Number of parameters; with ``nonzero``, only those that are not exactly zero."""
    if nonzero:
        return int(sum(int(torch.count_nonzero(p)) for p in model.parameters()))
    return int(sum(p.numel() for p in model.parameters()))


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...] | ExampleInputs) -> int:
    """Multiply-accumulates for one sample (of a shape, or the first of the model's
    :class:`~slimnas.models._io.ExampleInputs`), from PyTorch's exact FLOP counter (FLOPs / 2).

    Counts matrix products and convolutions (recurrent cells unroll into them); element-wise
    ops such as activations and BatchNorm are not counted, as is usual for MACs. PyTorch's fused
    Transformer kernels (the inference fast path of ``nn.TransformerEncoderLayer`` and
    ``nn.MultiheadAttention``) are invisible to the counter, so they are turned off meanwhile.
    """
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    rnn_inputs: dict[nn.Module, tuple[int, ...]] = {}
    hooks = [
        m.register_forward_hook(lambda mod, args, out: rnn_inputs.__setitem__(mod, tuple(args[0].shape)))
        for m in model.modules()
        if isinstance(m, nn.RNNBase)
    ]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FlopCounterMode(display=False) as counter:
            example_for(input_shape, 1, zeros=True, cut=True).to(device)(model)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model.train(was_training)
        for h in hooks:
            h.remove()
    macs = counter.get_total_flops() // 2
    # Fused recurrent kernels (LSTM on CPU) are invisible to the counter while GRU unrolls into
    # addmm: count every recurrent module analytically and drop whatever the counter saw of it.
    for mod, shape in rnn_inputs.items():
        with FlopCounterMode(display=False) as alone:
            mod(torch.zeros(shape, device=device))
        seq_len = shape[1] if mod.batch_first else shape[0]
        macs += _rnn_macs(mod, seq_len) - alone.get_total_flops() // 2
    return int(macs)


def _rnn_macs(rnn: nn.RNNBase, seq_len: int) -> int:
    """Input and recurrent matrix products of every gate, layer and direction, per sample."""
    gates = {"LSTM": 4, "GRU": 3}.get(rnn.mode, 1)
    dirs = 2 if rnn.bidirectional else 1
    total, n_in = 0, rnn.input_size
    for _ in range(rnn.num_layers):
        total += dirs * gates * (n_in * rnn.hidden_size + rnn.hidden_size * rnn.hidden_size)
        n_in = rnn.hidden_size * dirs
    return total * seq_len
