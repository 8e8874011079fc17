"""compress and --auto tell the truth: the same prunable layers on both paths, latency changes
stated and slower results flagged, options that do nothing refused (issue 46)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from slimnas.compress import StructuredPruner, list_prunable_layers
from slimnas.data import DataSplits


class BiGRU(nn.Module):
    """The issue's bidirectional one-layer GRU classifier, input (N, 40, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(1, 12, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


def gru_data() -> DataSplits:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 40, 1, generator=g), torch.randint(0, 10, (96,), generator=g)
    return DataSplits("gru", x[:64], y[:64], x[64:80], y[64:80], x[80:], y[80:], 10)


def test_per_layer_ratios_prune_every_layer_the_uniform_ratio_prunes():
    """One list of prunable layers, and each of them prunes by its own ratio as by the model's:
    --auto (per-layer ratios) reaches what --prune (one ratio) reaches."""
    torch.manual_seed(0)
    model = BiGRU().eval()
    names = [lay.name for lay in list_prunable_layers(model, (40, 1))]
    assert names == ["rnn"]
    uniform = StructuredPruner(ratio=0.5).fit(model, input_shape=(40, 1))
    per_layer = StructuredPruner(ratio=0.0, layer_ratios=dict.fromkeys(names, 0.5)).fit(model, input_shape=(40, 1))
    assert uniform.layers_ == per_layer.layers_ == {"rnn": [12, 6], "fc": [10, 10]}
    assert sum(p.numel() for p in per_layer.model_.parameters()) == 454


def test_auto_prunes_a_bidirectional_gru_under_a_mac_budget():
    from slimnas.study import auto_compress

    torch.manual_seed(0)
    res = auto_compress(BiGRU().eval(), gru_data(), budget=["macs<=60%"], n_trials=1, finetune_epochs=0,
                        final_epochs=0, refine_epochs=0, latency_repeats=2, early_stopping="none",
                        hardware_aware=False)
    assert res.after["macs"] <= 0.6 * res.before["macs"] and res.after["params"] < res.before["params"]
    assert res.feasible


# --- latency: stated for every result, a slower one flagged ---------------------------------


def test_a_result_slower_than_its_input_is_flagged_in_the_table_and_the_warning():
    from rich.console import Console

    from slimnas.cli._compress import render_table
    from slimnas.compress import latency_change
    from slimnas.compress._speed import latency_summary, slower_warning

    before = {"macs": 100, "latency_ms_b1": 0.0095, "latency_ms_b64": 0.20}
    after = {"macs": 50, "latency_ms_b1": 0.0268, "latency_ms_b64": 0.19}
    change = latency_change(before, after)
    assert change["slower_at"] == [1] and change["batches"]["1"]["ratio"] == pytest.approx(2.8211, abs=1e-3)
    assert "SLOWER" in slower_warning(change) and "2.82x the latency at batch 1" in slower_warning(change)
    assert latency_summary(change).endswith("2.82x at batch 1, 0.95x at batch 64")
    console = Console(width=200, record=True)
    console.print(render_table(before, after, latency=change))
    rows = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if line.count("│") > 2}
    assert "SLOWER" in rows["latency ms, batch 1"] and "SLOWER" not in rows["latency ms, batch 64"]
    assert slower_warning(latency_change(before, {**after, "latency_ms_b1": 0.0097})) is None  # within 5%


def test_compress_states_its_latency_change_and_warns_exactly_when_slower(tmp_path, data):
    from slimnas.compress import CompressionPolicy, compress
    from slimnas.models import mnist1d_paper_cnn

    res = compress(mnist1d_paper_cnn(), data, CompressionPolicy.of(prune={"ratio": 0.5}), epochs=0,
                   latency_repeats=5, out=tmp_path / "o")
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    change = report["latency_change"]
    assert set(change["batches"]) == {"1", "64"} and change["runtime"] == "onnxruntime"
    for b, row in change["batches"].items():
        assert row["ratio"] == pytest.approx(res.after[f"latency_ms_b{b}"] / res.before[f"latency_ms_b{b}"], rel=1e-3)
    slower = [int(b) for b, row in change["batches"].items() if row["ratio"] > 1.05]
    assert change["slower_at"] == slower
    assert any("SLOWER" in w for w in report["warnings"]) == bool(slower)


def test_the_int8_file_of_a_slower_result_gives_way_to_a_faster_fp32_file(data, trained_cnn):
    """--auto keeps int8 only where it is not slower (no byte budget): given a final model whose
    int8 file measured slower than the input, the same weights as fp32 are measured and kept."""
    from slimnas.compress import CompressionPolicy, apply_policy, latency_change
    from slimnas.config import MeasureSettings
    from slimnas.study._auto import _fp32_if_faster

    policy = CompressionPolicy.of(prune={"ratio": 0.0, "layer_ratios": {"0": 0.5}},
                                  quantize={"mode": "fp32", "layer_precision": {"0": "int8", "2": "int8", "4": "int8",
                                                                                "7": "int8"}})
    art = apply_policy(trained_cnn, policy, data, epochs=0)
    before = {"latency_ms_b1": 1.0}
    after = {"latency_ms_b1": 1e6, "latency_ms": 1e6, "val_loss": 0.5}  # as measured slower
    kept, metrics, change, note = _fp32_if_faster(art, after, latency_change(before, after), data,
                                                  MeasureSettings(latency_repeats=5, latency_batch=1))
    assert note.startswith("fp32 kept") and metrics["latency_ms_b1"] < 1e6
    assert set(kept.policy.options("quantize")["layer_precision"].values()) == {"fp32"}
    assert change["batches"]["1"]["after_ms"] == pytest.approx(metrics["latency_ms_b1"], rel=1e-3)


def test_runtime_friendly_rounding_is_the_default_of_auto_and_can_be_turned_off(tmp_path):
    from typer.testing import CliRunner

    from slimnas.cli import build_app
    from slimnas.study._auto import AutoSettings

    assert AutoSettings(budget=("macs<=50%",)).hardware_aware is not False
    (tmp_path / "net.py").write_text(
        "import torch\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Conv1d(1, 32, 5, 2, 2), torch.nn.ReLU(), torch.nn.Conv1d(32, 32, 3, 2, 1),\n"
        "                               torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(320, 10))\n")
    hardware, budgets = {}, {}
    # the second run's latency budget allows a slower model: a slower policy is over budget all the same
    for flag in ([], ["--no-hardware-aware", "--budget", "latency_ms<=150%"]):
        out = tmp_path / f"o{len(flag)}"
        r = CliRunner().invoke(build_app(), [
            "compress", "--model", f"{tmp_path / 'net.py'}:build", "--train-epochs", "1", "--auto", "--budget",
            "macs<=50%", "--n-trials", "1", "--epochs", "0", "--final-epochs", "0", "--out", str(out), *flag])
        assert r.exit_code == 0, r.output
        assert "latency after/before on onnxruntime, 1 thread:" in " ".join(r.output.split())
        report = json.loads((out / "report.json").read_text())
        assert set(report["latency_change"]["batches"]) == {"1"}
        hardware[bool(flag)], budgets[bool(flag)] = report.get("hardware"), report["budget"]
    assert hardware[False]["mac_rounding"]["tried"][0]["rounding"] == 1  # roundings were tried ...
    assert hardware[True] is None  # ... and not with --no-hardware-aware
    before_ms = json.loads((tmp_path / "o3" / "report.json").read_text())["before"]["latency_ms"]
    assert budgets[True][-1] == f"latency_ms<={before_ms:.12g}" and len(budgets[False]) == 1


# --- --auto: the final fine-tune, the MAC budget, the allocation ----------------------------


def test_keep_best_keeps_the_best_epoch_on_validation(data):
    """--auto's final fine-tune ended below its own trial (0.540 against 0.585): with keep_best
    the model leaves with its best epoch's weights, not its last's. The last epoch is made the
    worst here (its weights zeroed, its validation accuracy 0), through the retraining's callbacks."""
    from slimnas.compress import Retrain
    from slimnas.models import mnist1d_paper_cnn
    from slimnas.training import Callback, evaluate

    class SpoilTheLastEpoch(Callback):
        def __init__(self, model, last):
            self.model, self.last = model, last

        def on_epoch_end(self, epoch, metrics):
            if epoch == self.last:
                with torch.no_grad():
                    for p in self.model.parameters():
                        p.zero_()
                metrics["val_accuracy"] = 0.0

    accs = {}
    for keep_best in (False, True):
        torch.manual_seed(0)
        model = mnist1d_paper_cnn()
        history = Retrain(epochs=2, keep_best=keep_best).run(model, data, None,
                                                             callbacks=[SpoilTheLastEpoch(model, 2)])
        accs[keep_best] = (evaluate(model, data.x_val, data.y_val)["accuracy"], history.epochs[0]["val_accuracy"])
    (last, first), (kept, same) = accs[False], accs[True]
    assert first == same and kept == pytest.approx(first) and last < first


def _eager_allocation(parent, sens, shape, target, step=0.05, max_ratio=0.9):
    """The allocation as it was: every layer's next step counted on a pruned copy, every step."""
    import numpy as np

    from slimnas.compress._allocate import channel_ratio, fill_to_macs, pruned_macs, removed

    widths = {lay.name: lay.out_channels for lay in list_prunable_layers(parent, shape)}
    curves = {k: v for k, v in sens.curves.items() if k in widths}

    def drop(name, r):
        return float(np.interp(r, [0.0] + [p[0] for p in curves[name]],
                               [0.0] + [max(0.0, sens.baseline - p[1]) for p in curves[name]]))

    ratios = dict.fromkeys(curves, 0.0)
    macs = pruned_macs(parent, ratios, shape)
    while macs > target:
        best = None
        for name, r in ratios.items():
            k = removed(r, widths[name]) + max(1, round(step * widths[name]))
            new_r = channel_ratio(k, widths[name])
            if new_r > max_ratio or k >= widths[name]:
                continue
            trial = {**ratios, name: new_r}
            new_macs = pruned_macs(parent, trial, shape)
            if new_macs < macs:
                cost = (drop(name, new_r) + 1e-3) / (macs - new_macs)
                if best is None or cost < best[0]:
                    best = (cost, trial, new_macs)
        if best is None:
            break
        _, ratios, macs = best
    return fill_to_macs(parent, ratios, shape, target) if macs <= target else ratios


def test_the_lazy_allocation_picks_what_counting_every_layer_picks_with_fewer_copies(trained_cnn, data,
                                                                                      monkeypatch):
    """The allocation rebuilt a ResNet-18 1,515 times, silently: it now counts lazily (the same
    ratios) and tells its progress."""
    from slimnas.compress import _allocate, analyze_sensitivity
    from slimnas.measure import count_macs

    shape = data.input_shape
    sens = analyze_sensitivity(trained_cnn, data, ratios=(0.3, 0.6, 0.9))
    target = int(0.4 * count_macs(trained_cnn, shape))
    copies = []
    real = _allocate.pruned_model
    monkeypatch.setattr(_allocate, "pruned_model", lambda *a: copies.append(1) or real(*a))
    _allocate._COUNTS.clear()
    eager = _eager_allocation(trained_cnn, sens, shape, target)
    n_eager, copies[:] = len(copies), []
    _allocate._COUNTS.clear()
    steps = []
    lazy = _allocate.allocate_by_sensitivity(trained_cnn, sens, shape, target,
                                             progress=lambda done, info: steps.append(done))
    assert lazy == eager and _allocate.pruned_macs(trained_cnn, lazy, shape) <= target
    assert len(copies) < n_eager
    assert steps and steps == sorted(steps) and steps[-1] == 100


def test_a_mac_budget_is_met_by_widening_a_policy_that_prunes_too_few_layers(trained_cnn, data):
    """A policy that prunes one layer cannot reach a deep MAC cut alone (a BERT trial came out
    'over budget' although the budget is met by construction): the other layers join."""
    from slimnas.compress import CompressionPolicy, prune_ratios
    from slimnas.compress._allocate import fit_to_macs, pruned_macs
    from slimnas.measure import Budget, count_macs

    shape = data.input_shape
    target = int(0.3 * count_macs(trained_cnn, shape))
    policy = CompressionPolicy.of(prune={"ratio": 0.0, "layer_ratios": {"4": 0.2}})
    fitted = fit_to_macs(trained_cnn, policy, shape, [Budget("macs", "<=", target)])
    assert pruned_macs(trained_cnn, prune_ratios(fitted), shape) <= target
    assert len(prune_ratios(fitted)) > 1


def test_auto_refuses_a_mac_budget_pruning_cannot_reach_in_one_line():
    from slimnas.errors import ConfigError
    from slimnas.study import auto_compress

    torch.manual_seed(0)
    with pytest.raises(ConfigError, match=r"^--budget: expected a MAC budget structured pruning can reach \(with 95%"):
        auto_compress(BiGRU().eval(), gru_data(), budget=["macs<=1%"], n_trials=1, latency_repeats=2)


# --- Hugging Face token models ---------------------------------------------------------------

BERT_FILE = """
import torch, transformers

def build():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16, num_labels=4)
    return transformers.BertForSequenceClassification(config)
"""


def test_a_raw_bert_classifier_takes_token_ids_as_the_data_holds_them(tmp_path):
    """A raw BertForSequenceClassification was refused by --auto: every model is probed with a
    batch of zeros of the data's shape, as numbers, and BERT wants integer ids and answers with a
    ModelOutput. It is taken as slimnas takes text models: ids as numbers in, logits out."""
    pytest.importorskip("transformers")
    from slimnas.models import check_outputs
    from slimnas.models._hf import TokenIdsModel
    from slimnas.models._user import import_model

    (tmp_path / "bert.py").write_text(BERT_FILE)
    model, factory = import_model(f"{tmp_path / 'bert.py'}:build")
    assert isinstance(model, TokenIdsModel) and isinstance(factory(), TokenIdsModel)
    check_outputs(model, (12,), 4)  # the probe --auto and compress run first
    names = [lay.name for lay in list_prunable_layers(model, (12,))]  # the probe that refused --auto
    assert "model.bert.encoder.layer.0.attention.self.query" in names
    ids = torch.randint(0, 64, (3, 12)).float()
    with torch.no_grad():
        assert torch.allclose(model(ids), model.model(input_ids=ids.long()).logits)
