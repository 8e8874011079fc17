"""Regression: real-valued targets, standardised from the training split; MSE loss; MSE, MAE and
R^2 in the targets' own units; the exported model outputs de-standardised values."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slimnas.tasks._base import LOSS, TargetError, Task, TaskMetric, numeric_targets, register_task

EXPECTED = "the regression task takes finite numbers, shape (N,) or (N, D)"


class Destandardise(nn.Module):
    """``y * std + mean`` per target column: the model's standardised outputs in the targets' units."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean


@register_task("regression")
class Regression(Task):
    """Real-valued targets, one or ``D`` per sample.

    Args:
        mean, std: the training targets' mean and standard deviation per column (learnt by
            :meth:`fit`; ``None``: targets used as they are). The model learns standardised
            targets; scores and the exported model are in the targets' own units.
    """

    description = "regression: MSE loss on standardised targets; MSE, MAE, R^2"
    metrics = (TaskMetric("r2", "maximize", "R²", -np.inf, 1.0, "coefficient of determination"),
               TaskMetric("mse", "minimize", "MSE", 0.0, np.inf, "mean squared error, in the targets' units squared"),
               TaskMetric("mae", "minimize", "MAE", 0.0, np.inf, "mean absolute error, in the targets' units"),
               LOSS)
    primary = "r2"
    exports = "predicted values in the targets' units (de-standardised), one per target column"

    def __init__(self, mean: list[float] | None = None, std: list[float] | None = None) -> None:
        if (mean is None) != (std is None) or (mean is not None and len(mean) != len(std)):
            raise TargetError("task.regression", "mean and std come together, one per target column")
        self.mean = None if mean is None else [float(v) for v in mean]
        self.std = None if std is None else [float(v) for v in std]

    def state(self) -> dict[str, Any]:
        return {} if self.mean is None else {"mean": self.mean, "std": self.std}

    def check_targets(self, y, *, n=None, input_shape=None, field="y") -> np.ndarray:
        y = numeric_targets(y, field, n, EXPECTED).astype(np.float32)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[1] == 0:
            raise TargetError(field, f"has shape {y.shape}; {EXPECTED}")
        if self.mean is not None and y.shape[1] != len(self.mean):
            raise TargetError(field, f"has {y.shape[1]} target columns, the training targets {len(self.mean)}")
        return y

    def fit(self, y_train) -> Regression:
        y = np.asarray(y_train, dtype=np.float64)
        std = y.std(0)
        self.mean, self.std = y.mean(0).tolist(), np.where(std > 0, std, 1.0).tolist()
        return self

    def _scale(self, d: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None:
            return torch.zeros(d), torch.ones(d)
        return torch.tensor(self.mean, dtype=torch.float32), torch.tensor(self.std, dtype=torch.float32)

    def encode(self, y) -> torch.Tensor:
        y = torch.as_tensor(np.asarray(y, dtype=np.float32))
        mean, std = self._scale(y.shape[1])
        return (y - mean) / std

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """Standardised values (model outputs, encoded targets) in the targets' units."""
        mean, std = self._scale(y.shape[1])
        return y * std.to(y.device) + mean.to(y.device)

    def head_size(self, y) -> int:
        return int(np.asarray(y).reshape(len(y), -1).shape[1])

    def loss(self, output, target) -> torch.Tensor:
        return F.mse_loss(output, target)

    def score(self, output, target) -> dict[str, float]:
        from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

        pred, true = self.decode(output.float()).numpy(), self.decode(target.float()).numpy()
        return {"r2": float(r2_score(true, pred)), "mse": float(mean_squared_error(true, pred)),
                "mae": float(mean_absolute_error(true, pred)), "loss": float(F.mse_loss(output, target))}

    def export_head(self) -> nn.Module:
        if self.mean is None:
            return nn.Identity()
        return Destandardise(self.mean, self.std)

    def example_targets(self, n: int, seed: int) -> np.ndarray:
        return 150.0 + 40.0 * np.random.default_rng(seed).normal(size=(n, 2))

    def perfect_output(self, target, head: int) -> torch.Tensor:
        return target.clone().float()

    def random_output(self, target, head: int, seed: int) -> torch.Tensor:
        return torch.randn(len(target), head, generator=torch.Generator().manual_seed(seed))

    def bad_targets(self, n: int) -> dict[str, Any]:
        good = self.example_targets(n, 0)
        return {"NaN targets": np.where(np.arange(n)[:, None] == 1, np.nan, good),
                "infinite targets": np.where(np.arange(n)[:, None] == 2, np.inf, good),
                "strings": np.array(["a"] * n), "3-D targets": good[:, :, None].repeat(2, 2),
                "fewer targets than samples": good[:-1]}
