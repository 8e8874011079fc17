"""A user's detector as slimnas's data path takes models: one tensor in, one tensor out.

A detector in torchvision's convention answers in eval mode with ``boxes``, ``scores`` and
``labels`` and in training mode with a dict of its losses, given the targets. slimnas probes,
measures, prunes, calibrates and exports a model through one output tensor, so
:class:`DetectorModel` packs the eval-mode answer into ``(N, K, 6)`` (``x1, y1, x2, y2, score,
label``; :func:`~slimnas.tasks._detection.pack_outputs`) and passes ``targets`` through to the
detector in training mode (:meth:`slimnas.tasks.Task.train_output`). A detector whose answer is
batched tensors of a fixed ``K`` per image (CenterNet's peaks and top-K, no NMS) traces whole:
torch-pruning's dependency graph and the ONNX export see the packed tensor's graph.
"""

from __future__ import annotations

import torch
from torch import nn

from slimnas.tasks._detection import pack_outputs


class DetectorModel(nn.Module):
    """``model`` (a detector) answering with one packed ``(N, K, 6)`` tensor in eval mode, and
    with its dict of losses when called with ``targets``. The detector is ``.model``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None):
        if targets is not None:
            return self.model(x, targets)
        return pack_outputs(self.model(x))
