"""A toy compressor in one file: weights of Linear and conv layers rounded to a grid of ``step``."""

import copy

import torch
from torch import nn

from slimnas.compress import BaseCompressor, register_compressor
from slimnas.errors import ConfigError

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d)


def rounded(model: nn.Module, step: float) -> nn.Module:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, WEIGHTED):
                m.weight.copy_(torch.round(m.weight / step) * step)
    return model


@register_compressor("round")
class WeightRounder(BaseCompressor):
    """Round every weight to the nearest multiple of ``step`` (a test plug-in)."""

    order = 35
    retrains = False
    conformance_options = {"step": 0.05}

    def __init__(self, step: float = 0.01) -> None:
        self.step = step

    def validate(self) -> None:
        if not isinstance(self.step, (int, float)) or isinstance(self.step, bool) or self.step <= 0:
            raise ConfigError("round.step", "a number > 0", self.step)

    def reference_model(self, original):
        # elementwise, computed on the original's weights in place of the copy's
        return rounded(copy.deepcopy(original), self.step).eval()

    def _fit(self, model, data, teacher, input_shape):
        self.validate()
        self.report_ = {"step": self.step}
        return rounded(model, self.step).eval()
