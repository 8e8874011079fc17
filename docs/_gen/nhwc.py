import torch
from torch import nn


class NHWC(nn.Module):
    """A CNN that takes images channels-last, (N, H, W, C)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x.permute(0, 3, 1, 2))).mean((2, 3)))


def build():
    return NHWC()
