"""Classical baselines the task benchmark (``benchmarks/tasks.py``) compares slimnas with,
on the very splits slimnas uses (``slimnas.data.load_task_dataset``) and scored by the task's own
metrics (``slimnas.tasks``), so the two sides differ in the model only:

- regression, ``diabetes``: scikit-learn's Ridge on standardised features, its alpha chosen on
  the validation split, refit on train + validation, test R^2 (one figure per split seed);
- multi-label, ``digits-multilabel``: one-vs-rest logistic regression on the pixels, C chosen on
  the validation split, refit on train + validation, test mean average precision.

Run as a module for the figures: ``python benchmarks/_tasks_baselines.py`` (a few seconds).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slimnas.data import load_task_dataset  # noqa: E402
from slimnas.tasks import get_task  # noqa: E402

ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
CS = (0.01, 0.1, 1.0, 10.0)


def _score(task_name: str, splits: dict, outputs) -> float:
    """The task's primary metric, on the test split, of ``outputs(task, x)``: what a model would
    output (regression: standardised values), with the task fitted on the training targets as
    slimnas fits it."""
    task = get_task(task_name)
    y = {k: task.check_targets(v[1], field=f"y_{k}") for k, v in splits.items()}
    task.fit(y["train"])
    x_test = splits["test"][0].reshape(len(splits["test"][0]), -1)
    out = torch.as_tensor(np.asarray(outputs(task, x_test)), dtype=torch.float32)
    return task.score(out, task.encode(y["test"]))[task.primary]


def ridge_model(seed: int):
    """``(alpha, model, splits)``: Ridge on ``diabetes`` split by ``seed``, its alpha chosen on the
    validation split, refit on train + validation (``model.predict`` takes raw features)."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    _, s = load_task_dataset("diabetes", seed=seed)
    (x_tr, y_tr), (x_va, y_va) = s["train"], s["val"]
    val = {a: r2_score(y_va, make_pipeline(StandardScaler(), Ridge(alpha=a)).fit(x_tr, y_tr).predict(x_va))
           for a in ALPHAS}
    alpha = max(val, key=val.get)
    model = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(np.concatenate([x_tr, x_va]),
                                                                    np.concatenate([y_tr, y_va]))
    return alpha, model, s


def ridge_r2(seed: int) -> dict:
    """Test R^2 of Ridge on ``diabetes`` split by ``seed``, and the alpha the validation split chose."""
    alpha, model, s = ridge_model(seed)
    r2 = _score("regression", s, lambda task, x: task.encode(task.check_targets(model.predict(x))))
    return {"seed": seed, "alpha": alpha, "test_r2": r2}


def ovr_model(seed: int = 0):
    """``(C, model, splits)``: one-vs-rest logistic regression on ``digits-multilabel`` split by
    ``seed``, C chosen on the validation split, refit on train + validation (``model`` takes the
    flattened pixels)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.multiclass import OneVsRestClassifier

    _, s = load_task_dataset("digits-multilabel", seed=seed)
    flat = {k: (x.reshape(len(x), -1), y) for k, (x, y) in s.items()}
    (x_tr, y_tr), (x_va, y_va) = flat["train"], flat["val"]

    def fit(c, x, y):
        return OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000)).fit(x, y)

    val = {c: average_precision_score(y_va, fit(c, x_tr, y_tr).decision_function(x_va), average="macro") for c in CS}
    c = max(val, key=val.get)
    return c, fit(c, np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])), s


def ovr_logistic_map(seed: int = 0) -> dict:
    """Test mean average precision of one-vs-rest logistic regression on ``digits-multilabel``."""
    c, model, s = ovr_model(seed)
    return {"seed": seed, "C": c, "test_mean_ap": _score("multilabel", s, lambda task, x: model.decision_function(x))}


if __name__ == "__main__":  # pragma: no cover - figures for a look
    print(json.dumps({"ridge": [ridge_r2(s) for s in range(5)], "ovr_logistic": ovr_logistic_map(0)}, indent=1))
