"""Calibrated rounding of low-bit weights: GPTQ (Frantar et al. 2023, "GPTQ: Accurate
Post-Training Quantization for Generative Pre-trained Transformers").

Round-to-nearest rounds every weight on its own. GPTQ rounds the weights of a row one input
column at a time and spreads each rounding error over the columns not yet rounded, weighted by
the inverse of the layer's input Hessian ``H = X^T X`` (from calibration samples), so the
layer's *output* on those samples moves as little as it can (Optimal Brain Quantization).
Scales are set per block of ``block`` columns when the block's first column is reached, from the
weights as updated so far (the paper's grouped variant). Every layer's Hessian is taken from
the float model's activations, not from already-quantized layers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from slimnas.compress._lowbit import LowBitWeight, block_scales, uniform_weight

DAMP = 0.01  # added to the Hessian's diagonal, as a share of its mean (the paper's 1%)


def _patches(module: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """The layer's input as rows matching ``weight.reshape(out, -1)``'s columns, or ``None``
    where GPTQ here does not apply (grouped or padded-by-copy convolutions)."""
    if isinstance(module, nn.Linear):
        return x.reshape(-1, module.in_features)
    if isinstance(module, (nn.Conv1d, nn.Conv2d)) and module.groups == 1 and module.padding_mode == "zeros" \
            and not isinstance(module.padding, str):
        if isinstance(module, nn.Conv1d):
            x = x.unsqueeze(2)
            k, d, p, s = (1, *module.kernel_size), (1, *module.dilation), (0, *module.padding), (1, *module.stride)
        else:
            k, d, p, s = module.kernel_size, module.dilation, module.padding, module.stride
        cols = F.unfold(x, k, dilation=d, padding=p, stride=s)  # (N, C_in * k, positions)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    return None


@torch.no_grad()
def input_hessians(model: nn.Module, names: list[str], x: torch.Tensor, *, batch_size: int = 128) -> dict[str, np.ndarray]:
    """``X^T X / n`` of each named layer's input over the samples ``x`` (layers GPTQ cannot take are left out)."""
    modules = dict(model.named_modules())
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    skipped: set[str] = set()

    def hook(name):
        def record(module, args, out):
            rows = _patches(module, args[0].detach().double())
            if rows is None:
                skipped.add(name)
                return
            sums[name] = sums.get(name, 0) + rows.T @ rows
            counts[name] = counts.get(name, 0) + rows.shape[0]
        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    was_training = model.training
    try:
        model.eval()
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {n: (sums[n] / counts[n]).numpy() for n in sums if n not in skipped}


def obq_columns(rows: torch.Tensor, hessian: np.ndarray, quantize, *, damp: float = DAMP) -> None:
    """GPTQ's loop: ``rows`` (``(C, L)`` float64, changed in place) quantized one input column
    at a time by ``quantize(i, column) -> quantized column``, each column's error spread over the
    columns not yet quantized through the inverse of the input Hessian ``hessian``."""
    n = rows.shape[1]
    h = torch.from_numpy(np.array(hessian, dtype=np.float64))
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    rows[:, dead] = 0.0
    h += damp * torch.mean(torch.diag(h)) * torch.eye(n, dtype=torch.float64)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    for i in range(n):
        col = rows[:, i].clone()
        err = (col - quantize(i, col)) / hinv[i, i]
        rows[:, i + 1 :] -= err[:, None] * hinv[i, i + 1 :][None, :]


def gptq_weight(w: np.ndarray, hessian: np.ndarray, bits: int, block: int, *, damp: float = DAMP) -> LowBitWeight:
    """``w`` (``(out, ...)``) at ``bits`` bits with one scale per ``block`` columns, rounded by GPTQ."""
    rows = torch.from_numpy(w.reshape(w.shape[0], -1).astype(np.float64)).clone()
    c, n = rows.shape
    block = min(block, n) if block > 0 else n
    half = 2 ** (bits - 1)
    nb = -(-n // block)
    scales = np.ones((c, nb), np.float32)
    q = torch.zeros((c, n), dtype=torch.float64)

    def rounded(i, col):
        if i % block == 0:
            scales[:, i // block] = block_scales(rows[:, i : i + block].numpy().astype(np.float32), bits, block)[:, 0]
        s = torch.from_numpy(scales[:, i // block].astype(np.float64))
        q[:, i] = torch.clamp(torch.round(col / s), -half, half - 1)
        return q[:, i] * s

    obq_columns(rows, hessian, rounded, damp=damp)
    return uniform_weight(q.numpy().astype(np.int64), scales, bits, block, w.shape)
