"""The classical baselines the task benchmark compares with run on slimnas's own splits and are
scored by the task's own metrics (benchmarks/_tasks_baselines.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from slimnas.data import load_task_dataset

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "_tasks_baselines.py"


@pytest.fixture(scope="module")
def baselines():
    spec = importlib.util.spec_from_file_location("_tasks_baselines", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ridge_r2_is_the_test_r2_of_ridge_on_the_same_split(baselines):
    result = baselines.ridge_r2(seed=2)
    _, s = load_task_dataset("diabetes", seed=2)
    x = [s[k][0] for k in ("train", "val")]
    y = [s[k][1] for k in ("train", "val")]
    model = make_pipeline(StandardScaler(), Ridge(alpha=result["alpha"])).fit(np.concatenate(x), np.concatenate(y))
    assert result["test_r2"] == pytest.approx(r2_score(s["test"][1], model.predict(s["test"][0])), abs=1e-5)
    assert 0.3 < result["test_r2"] < 0.7  # diabetes' usual linear fit, not a broken one


def test_ovr_logistic_map_is_high_on_the_digit_attributes(baselines):
    result = baselines.ovr_logistic_map(seed=0)
    assert result["C"] in baselines.CS and 0.9 < result["test_mean_ap"] <= 1.0
