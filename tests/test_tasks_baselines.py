"""The classical baselines the task benchmark compares with run on slimnas's own splits and are
scored by the task's own metrics (benchmarks/_tasks_baselines.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from slimnas.data import load_task_dataset

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "_tasks_baselines.py"


@pytest.fixture(scope="module")
def baselines():
    spec = importlib.util.spec_from_file_location("_tasks_baselines", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ridge_r2_is_the_test_r2_of_ridge_on_the_same_split(baselines):
    # scikit-learn imported here, not at collection: a second of imports for every test process
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

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


@pytest.fixture(scope="module")
def bench():
    """benchmarks/tasks.py, imported as its script imports its neighbours (benchmarks/ on the path)."""
    import sys

    sys.path.insert(0, str(PATH.parent))
    try:
        spec = importlib.util.spec_from_file_location("tasks_benchmark", PATH.parent / "tasks.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(PATH.parent))
    return module


def _member(trial, val, test, loss=0.5):
    return {"trial": trial, "metrics": {"val_r2": val, "test_r2": test, "val_mse": -val, "val_loss": loss}}


def test_the_benchmark_keeps_the_best_validation_member_in_the_metrics_direction(bench):
    front = {"front": [_member(0, 0.40, 0.60), _member(1, 0.50, 0.30), _member(2, 0.50, 0.20, loss=0.4)]}
    assert bench.best_on_validation(front, "r2", maximize=True)["trial"] == 2  # tie on R²: the lower loss
    assert bench.best_on_validation(front, "mse", maximize=False)["trial"] == 2  # mse -0.5 is the lowest
    # the test figure never chooses: trial 0 has the best test R² and is not kept
    assert bench.best_on_validation({"front": front["front"][:2]}, "r2", maximize=True)["trial"] == 1


def test_the_paired_bootstrap_scores_truth_first_on_the_same_rows(bench):
    from sklearn.metrics import r2_score

    y = np.random.default_rng(0).normal(size=200)
    shrunk = 0.5 * y  # R² 0.75 against y; 'y against it' (arguments swapped) would read about -2
    draws = bench.paired_bootstrap(r2_score, shrunk, np.zeros_like(y), y, n=200, seed=1)
    assert draws.mean() == pytest.approx(r2_score(y, shrunk) - r2_score(y, np.zeros_like(y)), abs=0.03)
    assert np.all(bench.paired_bootstrap(r2_score, shrunk, shrunk, y, n=20) == 0.0)  # the same rows both sides
    out = bench.interval(draws)
    assert out["ci95"][0] < draws.mean() < out["ci95"][1] and out["se"] > 0


def test_the_benchmark_refuses_a_test_figure_its_onnx_file_does_not_give(bench):
    bench.same_figure(0.5012, 0.5003, "test R²")
    with pytest.raises(RuntimeError, match="test R²: the search recorded 0.5, its model.onnx gives 0.45"):
        bench.same_figure(0.5, 0.45, "test R²")


def test_the_lm_sections_ngram_scale_reads_test_text_by_training_counts(bench):
    """A corpus where each character fixes the next: the bigram's test perplexity is near 1, the
    unigram's near the number of characters used (each equally often)."""
    from slimnas.data._tasks import _token_splits
    from slimnas.tasks import get_task

    w = (np.arange(30 * 9).reshape(30, 9) % 5) + 1  # 1 2 3 4 5 1 2 ...: ids 1..5, id 0 never used
    data = _token_splits("ids", get_task("lm"), {s: (w[:, :-1], w[:, 1:]) for s in ("train", "val", "test")})
    assert bench.ngram_perplexity(data, 2) == pytest.approx(1.0, abs=0.05)
    assert bench.ngram_perplexity(data, 1) == pytest.approx(5.0, rel=0.02)


def test_the_lm_sections_uniform_row_keeps_at_least_autos_macs_with_whole_heads(bench):
    """Uniform at another policy's MACs: one MLP ratio, the nearest whole head count of it in
    every attention, never fewer MACs than the target and within one neuron per block of it
    (one ratio for every layer would jump over it: heads go whole)."""
    from slimnas.compress._allocate import pruned_macs
    from slimnas.measure import count_macs
    from slimnas.models._transformer import TransformerNet, TransformerSpec

    model = TransformerNet(TransformerSpec(depth=2, heads=4, dim=16, mlp_ratio=2.0, vocab_size=12, per_token="causal"),
                           (8,), 12).eval()
    full = count_macs(model, (8,))
    step = 2 * 2 * 16 * 8  # one MLP neuron in each of 2 blocks: its fc1 and fc2 MACs over 8 positions
    for share in (0.5, 0.3):
        target = int(share * full)
        u = bench.uniform_at_macs(model, (8,), target)
        assert target <= u["macs"] <= target + step and u["macs"] == pruned_macs(model, u["ratios"], (8,))
        assert set(u["heads_removed"].values()) == {round(u["q"] * 4)}  # the same whole heads in each block
        assert u["ratios"]["blocks.0.fc1"] == u["ratios"]["blocks.1.fc1"] == pytest.approx(u["q"], abs=1e-4)


def test_the_lm_sections_bootstrap_resamples_whole_files_the_same_for_every_model(bench):
    """The test split's sampling error of auto against uniform: files, not windows, are drawn
    (windows of one file rise and fall together), the same files for every model."""
    files = np.repeat([7, 3, 9], [4, 2, 6])  # three files, their windows in file order
    one = np.full(12, 8.0)  # 8 tokens a window, 1 nat each
    nll = {"unpruned": 0.9 * one, "uniform": one, "auto": one - 0.4}
    out = bench.file_bootstrap(nll, files, tokens=8, n=200, seed=1)
    assert out["files"] == 3 and out["auto_below_uniform_share"] == 1.0 and out["auto_within_10_share"] == 1.0
    above = 100 * (np.exp(0.95) / np.exp(0.9) - 1)  # every file alike: every draw gives the whole split's figure
    assert out["auto_percent_above_unpruned"]["ci95"] == pytest.approx([above, above], abs=1e-3)
    assert out["auto_minus_uniform"]["ci95"][1] == pytest.approx(np.exp(0.95) - np.exp(1.0), abs=1e-3)
    # auto better on file 3, worse on file 9 by as much per token: either side, by which files are drawn
    mixed = {**nll, "auto": one + np.where(files == 3, -0.6, 0.0) + np.where(files == 9, 0.2, 0.0)}
    out = bench.file_bootstrap(mixed, files, tokens=8, n=400, seed=1)
    assert 0.1 < out["auto_below_uniform_share"] < 0.9
    assert out["auto_minus_uniform"]["ci95"][0] < 0 < out["auto_minus_uniform"]["ci95"][1]
    # one file: every draw is the whole split, however its windows disagree with each other
    assert bench.file_bootstrap(mixed, np.zeros(12), tokens=8, n=50)["auto_minus_uniform"]["se"] == 0.0


def test_the_lm_sections_window_loss_is_the_onnx_files_cross_entropy(bench):
    import torch

    from slimnas.compress import quantize_model
    from slimnas.models._transformer import TransformerNet, TransformerSpec

    torch.manual_seed(0)
    model = TransformerNet(TransformerSpec(depth=1, heads=2, dim=16, mlp_ratio=2.0, vocab_size=12, per_token="causal"),
                           (8,), 12).eval()
    x = torch.randint(0, 12, (5, 8))
    y = torch.randint(0, 12, (5, 8))
    got = bench.window_nll(quantize_model(model, (8,), mode="fp32"), x.numpy(), y.numpy())
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(model(x).transpose(1, 2), y, reduction="none").sum(1)
    assert got.shape == (5,) and np.allclose(got, want.numpy(), atol=1e-4)
