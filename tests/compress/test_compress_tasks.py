"""Tasks through ``slimnas compress``: ``--auto`` on a regression meets its MAC budget and speaks
R² everywhere, a plain prune of a multi-label model reports mean average precision, a search
run's trial is compressed with its task, distillation follows the task, and a budget on another
task's metric is refused; nothing of these outputs falls back to accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_search_tasks import keys_of  # every key and string of a JSON document

from slimnas.compress import CompressionPolicy, compress
from slimnas.compress._distill import DistillationLoss
from slimnas.data import load_dataset
from slimnas.errors import ConfigError

NETS = '''
import torch

def reg():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 32), torch.nn.ReLU(),
                               torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))

def multilabel():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 6))
'''




def no_accuracy(folder) -> None:
    for name in ("report.json", "policy.json", "sensitivity.json", "run.json"):
        if (folder / name).is_file():
            keys = keys_of(json.loads((folder / name).read_text()))
            assert not [k for k in keys if "accuracy" in k], (name, [k for k in keys if "accuracy" in k])


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nets")
    (folder / "nets.py").write_text(NETS)
    return folder / "nets.py"


def test_auto_on_a_regression_meets_its_mac_budget_and_reports_r2(nets, tmp_path, cli_here):
    out = tmp_path / "auto"
    r = cli_here("compress", "--model", f"{nets}:reg", "--dataset", "diabetes", "--auto", "--budget", "macs<=50%",
                "--n-trials", "2", "--finetune-epochs", "1", "--final-epochs", "1", "--train-epochs", "3",
                "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    before, after = report["before"], report["after"]
    assert report["feasible"] and after["macs"] <= 0.5 * before["macs"]
    for key in ("val_r2", "val_mse", "test_r2", "test_mae"):
        assert isinstance(after[key], float) and isinstance(before[key], float), key
    sens = json.loads((out / "sensitivity.json").read_text())
    assert (sens["metric"], sens["direction"]) == ("r2", "maximize")
    assert json.loads((out / "run.json").read_text())["task"]["name"] == "regression"
    no_accuracy(out)
    assert "val R²" in r.stdout and "r2@" in r.stdout and "accuracy" not in r.stdout


def test_a_pruned_multilabel_model_reports_mean_average_precision(nets, tmp_path, cli_here):
    out = tmp_path / "prune"
    r = cli_here("compress", "--model", f"{nets}:multilabel", "--dataset", "digits-multilabel", "--prune", "0.5",
                "--distill", "--finetune-epochs", "1", "--train-epochs", "2", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["after"]["macs"] < report["before"]["macs"]
    assert 0 <= report["after"]["val_mean_ap"] <= 1 and 0 <= report["after"]["test_mean_ap"] <= 1
    no_accuracy(out)
    assert "val mAP" in r.stdout and "accuracy" not in r.stdout
    from slimnas.study._runs import _compress as summary

    assert summary(out).objectives == ("mean_ap", "macs")  # slimnas runs: "test mAP 0.87, 1.1k macs"


def test_a_lost_quality_warning_speaks_the_tasks_metric():
    """R² loses points; MSE (no points scale) gets worse by a relative share."""
    from slimnas.compress._quality import Quality
    from slimnas.tasks import get_task

    r2, ppl = Quality.of(get_task("regression")), Quality.of(get_task("lm"))
    assert r2.key == "val_r2" and not r2.relative and r2.worse_by(0.5, 0.45) == pytest.approx(0.05)
    assert ppl.relative and ppl.worse_by(10.0, 11.0) == pytest.approx(0.1) and ppl.worse_by(10.0, 9.0) < 0
    assert "10.0% higher" in ppl.amount(0.1) and "5.0 points of validation R²" in r2.amount(0.05)


def test_regression_distils_by_mse_to_the_teacher():
    data = load_dataset("diabetes")
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 1))
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 1))
    x, y = data.x_train[:32], data.y_train[:32]
    loss = DistillationLoss(teacher, temperature=4.0, alpha=0.7, task=data.task)
    out = student(x)
    with torch.no_grad():
        expected = 0.7 * F.mse_loss(out, teacher(x)) + 0.3 * F.mse_loss(out, y)
    assert float(loss(out, y, x)) == pytest.approx(float(expected), rel=1e-6)
    ml = load_dataset("digits-multilabel")
    t2 = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 6))
    s2 = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 6))
    x2, y2 = ml.x_train[:32], ml.y_train[:32]
    with torch.no_grad():
        soft = 4.0 ** 2 * F.binary_cross_entropy_with_logits(s2(x2) / 4, torch.sigmoid(t2(x2) / 4))
        expected2 = 0.9 * soft + 0.1 * F.binary_cross_entropy_with_logits(s2(x2), y2)
    assert float(DistillationLoss(t2, task=ml.task)(s2(x2), y2, x2)) == pytest.approx(float(expected2), rel=1e-6)


def test_the_library_takes_task_and_refuses_another_tasks_data():
    data = load_dataset("diabetes")
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    res = compress(net, data, CompressionPolicy.of(prune={"ratio": 0.5}), epochs=0, latency_repeats=3,
                   task="regression")
    assert "val_r2" in res.after and "val_accuracy" not in res.after
    with pytest.raises(ConfigError, match="multilabel on data made for regression"):
        compress(net, data, CompressionPolicy.of(prune={"ratio": 0.5}), epochs=0, task="multilabel")


@pytest.mark.parametrize(("args", "field"), [
    (["--dataset", "diabetes", "--auto", "--budget", "macs<=50%", "--budget", "accuracy>=0.9"], "--budget"),
    (["--dataset", "diabetes", "--prune", "0.5", "--trial", "3"], "--trial"),
])
def test_a_tolerance_on_another_tasks_metric_is_refused_in_one_line(nets, tmp_path, args, field, cli_here):
    r = cli_here("compress", "--model", f"{nets}:reg", *args, "--train-epochs", "1", "--out", str(tmp_path / "o"),
                "--quiet")
    assert r.returncode == 2 and field in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o" / "report.json").exists()


def test_a_language_model_of_a_search_run_goes_through_auto_to_half_its_macs(tmp_path, cli_here):
    """compress --run DIR --trial N: the trial's transformer (per-token causal head), its run's
    pysource data and lm task; --auto to 50% of its MACs, scored by perplexity."""
    (tmp_path / "lm.yaml").write_text(
        "data: {dataset: pysource, options: {n: 200, seq_len: 16}}\n"
        "space: {family: [transformer], transformer: {depth: [1], heads: [2], dim: [16]}}\n"
        "training: {epochs: 1, lr: 0.003, optimizer: adam}\n")
    r = cli_here("search", str(tmp_path / "lm.yaml"), "--n-trials", "1", "--out", str(tmp_path / "run"), "--quiet")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "auto"
    r = cli_here("compress", "--run", str(tmp_path / "run"), "--trial", "0", "--auto", "--budget", "macs<=50%",
                "--n-trials", "1", "--finetune-epochs", "1", "--final-epochs", "1", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["feasible"] and report["after"]["macs"] <= 0.5 * report["before"]["macs"]
    assert report["after"]["val_perplexity"] >= 1 and "test_perplexity" in report["after"]
    assert json.loads((out / "run.json").read_text())["task"]["name"] == "lm"
    no_accuracy(out)


def test_run_replaces_the_model_and_data_options():
    from slimnas.cli._compress import check_run_options

    with pytest.raises(ConfigError, match="--dataset"):
        check_run_options(Path("run"), 0, model=None, dataset="diabetes")
    with pytest.raises(ConfigError, match="--trial"):
        check_run_options(Path("run"), None, model=None)


def test_a_share_of_a_negative_r2_is_refused_as_a_budget():
    from slimnas.measure import Budget

    assert Budget.parse("r2>=95%", "--budget").resolve({"val_r2": 0.4}).limit == pytest.approx(0.38)
    with pytest.raises(ConfigError, match="absolute limit on r2"):
        Budget.parse("r2>=95%", "--budget").resolve({"val_r2": -0.1})


def test_taylor_pruning_of_a_language_model_reads_the_gradients_of_its_own_loss():
    """Taylor importance of a causal decoder: the gradients come from the next-token loss (a
    RuntimeError when cross-entropy over (N, V) outputs was applied to its (N, L, V) ones); half
    the heads and MLP neurons go."""
    from slimnas.compress import StructuredPruner, list_prunable_layers
    from slimnas.data._tasks import _token_splits
    from slimnas.models._transformer import TransformerNet, TransformerSpec
    from slimnas.tasks import get_task

    g = torch.Generator().manual_seed(0)
    w = torch.randint(0, 8, (40, 13), generator=g).numpy()
    data = _token_splits("ids", get_task("lm"), {s: (w[:, :-1], w[:, 1:]) for s in ("train", "val", "test")})
    torch.manual_seed(0)
    net = TransformerNet(TransformerSpec(depth=1, heads=2, dim=16, vocab_size=8, per_token="causal"), (1, 12), 8)
    pruned = StructuredPruner(ratio=0.5, importance="taylor").fit(net, data).model_
    assert pruned(data.x_val[:2]).shape == (2, 12, 8)
    assert [lay.out_channels for lay in list_prunable_layers(pruned, (1, 12))] == [8, 16]
