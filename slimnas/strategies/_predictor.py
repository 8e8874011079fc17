"""An accuracy predictor for sub-networks and their per-layer precision (APQ: Wang et al. 2020,
"APQ: Joint Search for Network Architecture, Pruning and Quantization Policy", CVPR).

APQ trains a small MLP on (architecture and precision encoding -> measured accuracy) pairs, then
ranks candidates by it instead of measuring each. Here the pairs are measured with a supernet's
inherited weights after batch-norm recalibration; a ridge regression on the same encoding is the
simpler alternative. What counts for a search is the order the predictor puts candidates in, so
it reports its rank correlation (Spearman's rho, Kendall's tau) on pairs it was not fitted on.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

PREDICTORS = ("mlp", "ridge")


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    for value in np.unique(x):
        tied = x == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a, b) -> float:
    """Spearman's rank correlation of two sequences (NaN when either is constant)."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def kendall(a, b) -> float:
    """Kendall's tau-b of two sequences (NaN when either is constant)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    da, db = np.sign(a[:, None] - a[None, :]), np.sign(b[:, None] - b[None, :])
    upper = np.triu_indices(len(a), 1)
    da, db = da[upper], db[upper]
    denom = np.sqrt(np.count_nonzero(da) * np.count_nonzero(db))
    return float((da * db).sum() / denom) if denom > 0 else float("nan")


class AccuracyPredictor:
    """Predicts validation accuracy from an encoding (rows of ``x``).

    Args:
        kind: ``mlp`` (APQ's: two hidden layers, trained with Adam on the squared error) or
            ``ridge`` (closed form).
        hidden: units per hidden layer of the MLP.
        epochs: full-batch Adam steps of the MLP.
        alpha: the ridge penalty (and the MLP's weight decay).
        seed: the MLP's initialisation.

    Example:
        >>> x = np.random.default_rng(0).random((200, 6)); y = x @ np.arange(6) / 15
        >>> p = AccuracyPredictor(kind="ridge", alpha=1e-3).fit(x, y)
        >>> spearman(p.predict(x), y) > 0.99
        True
    """

    def __init__(self, *, kind: str = "mlp", hidden: int = 128, epochs: int = 400, alpha: float = 1e-3,
                 seed: int = 0) -> None:
        if kind not in PREDICTORS:
            raise ValueError(f"kind: expected one of {PREDICTORS}, got {kind!r}")
        self.kind, self.hidden, self.epochs, self.alpha, self.seed = kind, hidden, epochs, alpha, seed

    def fit(self, x, y) -> AccuracyPredictor:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self.mean_, self.std_ = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mean_) / self.std_
        if self.kind == "ridge":
            a = np.hstack([x, np.ones((len(x), 1))])
            reg = self.alpha * np.eye(a.shape[1])
            reg[-1, -1] = 0.0  # no penalty on the intercept
            self.coef_ = np.linalg.solve(a.T @ a + reg, a.T @ z)
            return self
        gen = torch.Generator().manual_seed(self.seed)
        net = nn.Sequential(nn.Linear(x.shape[1], self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.hidden),
                            nn.ReLU(), nn.Linear(self.hidden, 1))
        with torch.no_grad():
            for p in net.parameters():  # a seeded initialisation, global RNG untouched
                p.uniform_(-1.0, 1.0, generator=gen).mul_(1.0 / np.sqrt(p.shape[-1]))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=self.alpha)
        xt, zt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(z, dtype=torch.float32)[:, None]
        for _ in range(self.epochs):
            opt.zero_grad()
            loss = ((net(xt) - zt) ** 2).mean()
            loss.backward()
            opt.step()
        self.net_ = net.eval()
        return self

    def predict(self, x) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if self.kind == "ridge":
            z = np.hstack([x, np.ones((len(x), 1))]) @ self.coef_
        else:
            with torch.no_grad():
                z = self.net_(torch.as_tensor(x, dtype=torch.float32))[:, 0].numpy().astype(np.float64)
        return z * self.std_ + self.mean_


def held_out_scores(x, y, *, kind: str, holdout: float = 0.2, seed: int = 0, **kwargs) -> dict:
    """Fit on a random ``1 - holdout`` of the pairs and score the rest: rank correlations and
    the error of the predicted accuracy."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = max(2, int(round(holdout * len(y))))
    test, train = order[:n_test], order[n_test:]
    pred = AccuracyPredictor(kind=kind, seed=seed, **kwargs).fit(x[train], y[train]).predict(x[test])
    return {"kind": kind, "n_train": int(len(train)), "n_test": int(len(test)),
            "spearman": spearman(pred, y[test]), "kendall": kendall(pred, y[test]),
            "rmse": float(np.sqrt(np.mean((pred - y[test]) ** 2))),
            "mae": float(np.mean(np.abs(pred - y[test])))}
