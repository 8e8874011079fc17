"""The once-for-all supernet route: weight sharing against plain models, batch-norm
recalibration, sandwich training and its resume, the accuracy predictor, simulated int8 against
ONNX Runtime, and a tiny ``slimnas search --strategy supernet`` end to end (and resumed)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import optuna
import pytest
import torch
import yaml

import slimnas
from slimnas.compress import quantize_model
from slimnas.compress._fakequant import simulate_quantized
from slimnas.config import parse_config
from slimnas.data import load_dataset
from slimnas.errors import ConfigError
from slimnas.export import onnx_accuracy, predict
from slimnas.measure import Budget, count_macs
from slimnas.models import ConvLayer, build_model
from slimnas.models._cnn import ConvNet
from slimnas.spaces import SearchSpace, TrainSpec, arch_from_dict, get_family
from slimnas.strategies._predictor import AccuracyPredictor, held_out_scores, kendall, spearman
from slimnas.strategies._subnets import Point, choose, measure_point
from slimnas.strategies._supernet import (
    SupernetOptions,
    SupernetStrategy,
    fold_splits,
    searched_precisions,
    stored_candidates,
    within,
)
from slimnas.study import Listener, RunFolder, SearchPlan, open_run
from slimnas.study._objective import prepare_context
from slimnas.training import Callback, evaluate, fit, recalibrate_bn
from slimnas.training._supernet import SupernetTraining, train_supernet

CNN_SPACES = {
    "gap": {"n_layers": {"low": 2, "high": 4}, "channels": [4, 8, 16], "kernel": [3, 5, 7], "stride": [1, 2]},
    "flatten, residual": {"n_layers": {"low": 2, "high": 4}, "channels": [4, 8, 16], "kernel": [3, 5], "stride": [1, 2],
                          "residual": [True], "head": ["flatten"]},
}


def supernet(family: str, params: dict, shape=(1, 40), **kwargs):
    space = SearchSpace.from_config({"family": family, family: params})
    torch.manual_seed(0)
    return get_family(family).supernet(space.params[family], shape, 10, **kwargs)


def shake(net, x, seed=0) -> None:
    """Weights and batch-norm statistics away from their initial values, so copies are tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    net.train()
    rng = np.random.default_rng(seed)
    for _ in range(3):
        net.set_active(net.sample(rng))(x)
    net.eval()


@pytest.mark.parametrize("case", [
    ("cnn", CNN_SPACES["gap"], (1, 40), {}),
    ("cnn", CNN_SPACES["gap"], (1, 40), {"kernel_transform": True}),
    ("cnn", CNN_SPACES["flatten, residual"], (1, 40), {"fixed": {"stride": [1, 1, 2, 1]}}),
    ("cnn", CNN_SPACES["gap"], (1, 8, 8), {}),
    ("mlp", {"n_layers": {"low": 1, "high": 3}, "width": [8, 16, 32], "batch_norm": [True]}, (1, 40), {}),
], ids=["cnn-gap", "cnn-kernel-transform", "cnn-flatten-residual", "cnn-2d", "mlp-bn"])
def test_an_extracted_subnetwork_computes_what_the_supernet_computes(case):
    family, params, shape, kwargs = case
    net = supernet(family, params, shape, **kwargs)
    x = torch.randn(32, *shape)
    shake(net, x)
    rng = np.random.default_rng(1)
    for spec in [net.largest(), net.smallest(), *(net.sample(rng) for _ in range(6))]:
        plain = net.extract(spec)
        rebuilt = build_model(spec, shape, 10)  # the family's own builder takes the inherited weights
        rebuilt.load_state_dict(plain.state_dict())
        rebuilt.eval()
        with torch.no_grad():
            assert torch.allclose(net.set_active(spec)(x), rebuilt(x), atol=1e-5)
            net.train(), rebuilt.train()
            assert torch.allclose(net(x), rebuilt(x), atol=1e-5)  # batch statistics too
            net.eval()
        assert net.macs(spec) == count_macs(rebuilt, shape)  # its shape-only count is the exact one
        genes = net.genes(spec)
        assert genes["n_layers"] == (len(spec.layers) if family == "cnn" else len(spec.widths))
        assert net.contains(spec) and net.compose(*_dims(spec)) == spec
    with pytest.raises(ValueError, match="not a sub-network"):
        net.extract(dataclasses.replace(net.largest(), activation="tanh"))


def _dims(spec):
    if hasattr(spec, "layers"):
        return [c.channels for c in spec.layers], [c.kernel for c in spec.layers]
    return list(spec.widths), None


@pytest.mark.parametrize("params, kwargs", [(CNN_SPACES["gap"], {}),
                                            (CNN_SPACES["flatten, residual"], {"fixed": {"stride": [1, 1, 1, 2]}})],
                         ids=["plain", "residual"])
def test_sorting_channels_keeps_the_largest_network_and_puts_important_channels_first(params, kwargs):
    net = supernet("cnn", params, **kwargs)
    x = torch.randn(16, 1, 40)
    shake(net, x, seed=3)
    with torch.no_grad():
        before = net.set_active(net.largest())(x)
        net.sort_channels()
        after = net(x)
    assert torch.allclose(before, after, atol=1e-5)
    # the second layer reads the first layer's channels: their L1 norm now falls channel by channel
    # (for the unshared layer; residual layers share one order by their summed importance)
    reads = net.blocks[1].conv.weight.abs().sum((0, 2))
    if not net.skeleton.residual:
        assert torch.all(reads[:-1] >= reads[1:] - 1e-6)


def test_batch_norm_recalibration_replaces_the_statistics_with_the_samples_own():
    net = supernet("cnn", CNN_SPACES["gap"])
    x = torch.randn(512, 1, 40) * 2 + 1
    shake(net, torch.randn(32, 1, 40))
    spec = net.sample(np.random.default_rng(0))
    plain = net.extract(spec)
    before = plain.features[0].bn.running_mean.clone()
    plain.eval()
    assert recalibrate_bn(plain, x, batch_size=256)
    assert not plain.training  # its mode is restored
    with torch.no_grad():  # two equal batches: the cumulative average is the mean over all samples
        expected = plain.features[0].conv(x).mean((0, 2))
    got = plain.features[0].bn.running_mean
    assert not torch.allclose(before, got) and torch.allclose(got, expected, atol=1e-4)
    assert plain.features[0].bn.momentum == 0.1
    # the same on the supernet at that configuration changes only that sub-network's slices
    net.set_active(spec)
    recalibrate_bn(net, x, batch_size=256)
    c = spec.layers[0].channels
    assert torch.allclose(net.blocks[0].bn.running_mean[:c], got, atol=1e-5)
    assert not recalibrate_bn(build_model(get_family("mlp").spec(widths=(8,)), (1, 40), 10), x)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_sandwich_training_teaches_every_subnetwork_and_resumes_where_it_stopped(digits, tmp_path):
    params = {"n_layers": {"low": 1, "high": 2}, "channels": [8, 16], "kernel": [3, 5], "stride": [1, 2]}
    recipe = TrainSpec(optimizer="adam", lr=0.02, batch_size=64, schedule="cosine")
    config = SupernetTraining(epochs=6, warmup_epochs=1, n_random=1)
    net = supernet("cnn", params, digits.input_shape)
    history = train_supernet(net, digits.x_train, digits.y_train, recipe, config, seed=1)
    assert [e["phase"] for e in history.epochs] == ["largest", *["sandwich"] * 5]
    accuracy = {}
    for name, spec in (("largest", net.largest()), ("smallest", net.smallest()),
                       ("random", net.sample(np.random.default_rng(0)))):
        plain = net.extract(spec)
        recalibrate_bn(plain, digits.x_train[:512])
        accuracy[name] = evaluate(plain, digits.x_val, digits.y_val)["accuracy"]
    assert accuracy["largest"] > 0.8 and accuracy["random"] > 0.5 and accuracy["smallest"] > 0.2, accuracy  # chance 0.1

    # stopped after two epochs (as by a Ctrl-C) and resumed from its state file: the weights of
    # the uninterrupted run
    short, recipe = SupernetTraining(epochs=3, warmup_epochs=1, n_random=1), dataclasses.replace(recipe, batch_size=256)
    whole = supernet("cnn", params, digits.input_shape)
    history = train_supernet(whole, digits.x_train, digits.y_train, recipe, short, seed=1)
    state = tmp_path / "state.pt"
    stopped = supernet("cnn", params, digits.input_shape)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(stopped, digits.x_train, digits.y_train, recipe, short, seed=1, state_path=state,
                       callbacks=[StopAt(2)])
    resumed = supernet("cnn", params, digits.input_shape)
    again = train_supernet(resumed, digits.x_train, digits.y_train, recipe, short, seed=1, state_path=state)
    assert [e["train_loss"] for e in again.epochs] == [e["train_loss"] for e in history.epochs]
    for a, b in zip(resumed.state_dict().values(), whole.state_dict().values(), strict=True):
        assert torch.equal(a, b)


class StopAt(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, epoch, metrics):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_predictor_fits_and_ranks_held_out_pairs():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(300, 12)).astype(float)
    y = 0.6 + 0.3 * np.tanh(x @ rng.normal(size=12) / 3) + rng.normal(0, 0.01, 300)
    for kind in ("mlp", "ridge"):
        scores = held_out_scores(x, y, kind=kind, holdout=0.2, seed=0)
        assert scores["n_test"] == 60 and scores["spearman"] > 0.9 and scores["kendall"] > 0.7
        pred = AccuracyPredictor(kind=kind).fit(x[:200], y[:200]).predict(x[200:])
        assert pred.shape == (100,) and spearman(pred, y[200:]) > 0.9
    import scipy.stats  # here, not at collection: half a second of imports for every test process

    a, b = rng.normal(size=40), rng.normal(size=40)
    assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a, b).statistic)
    assert kendall(a, b) == pytest.approx(scipy.stats.kendalltau(a, b).statistic)
    noise = held_out_scores(x, rng.random(300), kind="ridge")
    assert abs(noise["spearman"]) < 0.4  # it does not invent a ranking from noise


def test_per_depth_candidates_include_the_best_deeper_subnetwork_the_front_lacks():
    def point(depth, acc, macs):  # choose reads the family and the slot count, not the spec
        return Point("cnn", None, ("fp32",) * (depth + 1)), {"val_accuracy": acc, "macs": macs}

    shallow = [point(2, 0.70 + 0.02 * k, 1000 * (k + 1)) for k in range(8)]  # the whole predicted front
    deep = [point(4, 0.75, 6500), point(4, 0.80, 7500), point(3, 0.77, 5200)]  # dominated by the front
    points = shallow + deep
    plain = choose(points, ("accuracy", "macs"), 4, limit=4)
    assert all(len(p.precision) == 3 for p, _ in plain)  # the front alone: 2-layer only
    mixed = choose(points, ("accuracy", "macs"), 4, limit=4, per_depth=True)
    picked = [(len(p.precision) - 1, m["val_accuracy"]) for p, m in mixed]
    assert picked[:2] == [(4, 0.80), (3, 0.77)]  # each missing depth's predicted best, best first
    assert [m["macs"] for _, m in mixed[2:]] == [1000, 8000]  # the spread keeps both ends of the front
    everything = choose(points, ("accuracy", "macs"), 4, limit=20, per_depth=True)
    assert len(everything) == len(points) and len({id(m) for _, m in everything}) == len(points)


@pytest.mark.parametrize("family, params, kwargs", [
    ("cnn", {**CNN_SPACES["gap"], "channels": [4, 8, 16, 32]}, {"fixed": {"stride": 1}}),
    ("mlp", {"n_layers": {"low": 1, "high": 3}, "width": [8, 16, 32, 64]}, {}),
])
def test_depth_balanced_draws_fill_every_depth_inside_the_budget(family, params, kwargs):
    net = supernet(family, params, **kwargs)
    depth = (lambda s: len(s.layers)) if family == "cnn" else (lambda s: len(s.widths))
    depths = net.choices["depth"]
    rng = np.random.default_rng(9)
    mid = sorted(net.macs(net.sample(rng)) for _ in range(200))[50]  # a tight budget: a quarter fits
    counts = {}
    for by_depth in (False, True):
        draw, rng = within(net, 0, mid, by_depth=by_depth), np.random.default_rng(0)
        specs = [draw(rng, ("depth", "width", "kernel")) for _ in range(600)]
        assert sum(net.macs(s) <= mid for s in specs) >= 590
        counts[by_depth] = [sum(depth(s) == d for s in specs) for d in depths]
    assert counts[False][-1] < counts[False][0] / 2  # the budget keeps mostly the shallow ones
    assert min(counts[True]) > 150  # balanced: about 200 of each depth
    fixed = within(net, 0, mid, by_depth=True)(np.random.default_rng(0), ("width",))
    assert depth(fixed) == max(depths)  # depth not elastic in this phase: the largest, as net.sample does


@pytest.mark.parametrize("family", ["cnn", "mlp"])
def test_simulated_int8_tracks_onnxruntime(digits, family):
    torch.manual_seed(0)
    spec = (get_family("cnn").spec(layers=(_layer(8), _layer(8, stride=2)), head="gap") if family == "cnn"
            else get_family("mlp").spec(widths=(32, 16), batch_norm=True))
    model = build_model(spec, digits.input_shape, 10)
    fit(model, digits.x_train, digits.y_train, TrainSpec(epochs=3, lr=0.01), seed=0)
    model.eval()
    layers = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    calibration = digits.x_train[:512]
    for precision in ({n: "int8" for n in layers}, {layers[0]: "int8"}, {layers[-1]: "int8"}):
        sim = simulate_quantized(model, precision, calibration)
        onnx = quantize_model(model, digits.input_shape, mode="fp32", calibration=calibration, layer_precision=precision)
        with torch.no_grad():
            agree = np.mean(sim(digits.x_val).argmax(1).numpy() == predict(onnx, digits.x_val).argmax(1))
        assert agree >= 0.97, precision
        assert abs(evaluate(sim, digits.x_val, digits.y_val)["accuracy"]
                   - onnx_accuracy(onnx, digits.x_val, digits.y_val)) <= 0.02
    with torch.no_grad():  # all fp32: the model itself (batch norm folded)
        assert torch.allclose(simulate_quantized(model, {}, calibration)(digits.x_val), model(digits.x_val), atol=1e-4)


def _layer(channels, stride=1):
    return ConvLayer(channels, kernel=3, stride=stride)


SPACE = {"family": ["cnn", "mlp"],
         "cnn": {"n_layers": {"low": 1, "high": 2}, "channels": [4, 8], "kernel": [3, 5], "stride": [1, 2],
                 "dropout": [0.0, 0.1]},
         "mlp": {"n_layers": [1, 2], "width": [8, 16]}}
OPTIONS = {"epochs": 3, "n_pairs": 24, "search_trials": 80, "population_size": 8, "n_candidates": 2,
           "max_candidates": 3, "finetune_epochs": 1, "int8_checks": 1}


def supernet_config(tmp_path, objectives=("accuracy", "bytes"), **options):
    cfg = {"data": {"dataset": "digits"}, "objectives": list(objectives), "budget": ["macs<=20000"],
           "space": SPACE, "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"},
           "strategy": {"name": "supernet", "options": {**OPTIONS, **options}}}
    path = tmp_path / "supernet.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class Notes(Listener):
    def __init__(self, stop_on: str | None = None) -> None:
        self.lines, self.stop_on = [], stop_on

    def note(self, text, *, level="info"):
        self.lines.append(text)
        if self.stop_on and self.stop_on in text:
            raise KeyboardInterrupt  # what a Ctrl-C does there


def test_supernet_search_fine_tunes_its_candidates_into_the_study_and_front(tmp_path):
    cfg = supernet_config(tmp_path, finetune_warmup=0.25)
    notes = Notes()
    result = slimnas.search(cfg, n_trials=4, seed=0, out=str(tmp_path / "run"), listener=notes)
    run, study = result.run_dir, result.study
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 4 and result.front
    chosen = stored_candidates(study)
    assert len(chosen["candidates"]) == 3
    report = json.loads((run / "supernet" / "report.json").read_text())
    assert report["n_pairs"] == 24 and set(report["predictor"]["held_out"]) == {"mlp", "ridge"}
    assert report["int8_check"] and {"simulated", "onnxruntime"} <= set(report["int8_check"][0])
    assert any("held-out rank correlation" in line for line in notes.lines)
    for t in done[:3]:  # the first trials fine-tune the candidates, in order
        m = t.user_attrs["metrics"]
        assert m["supernet_candidate"] == t.number and "inherited_val_accuracy" in m
        assert m["finetune_warmup"] == 0.25
        record = chosen["candidates"][t.number]
        assert t.user_attrs["candidate"]["arch"] == record["spec"]  # the plain spec of the family
        files = {p.name for p in (run / "trials" / f"{t.number:05d}").iterdir()}
        assert {"arch.json", "metrics.json", "weights.pt", "model.onnx"} <= files
        assert m["bytes"] == (run / "trials" / f"{t.number:05d}" / "model.onnx").stat().st_size
        if "int8" in record["slots"]:  # per-layer precision: the measured file is quantized
            assert "policy" in t.user_attrs and "policy.json" in files
    assert "supernet_candidate" not in done[3].user_attrs["metrics"]  # past the candidates: the search strategy
    pareto = json.loads((run / "pareto.json").read_text())
    for member in pareto["front"]:
        assert "test_accuracy" in member["metrics"]
        model = slimnas.load(run, trial=member["trial"])  # the normal builder rebuilds it
        if "policy" not in study.trials[member["trial"]].user_attrs:
            x = load_dataset("digits").x_val[:64]
            with torch.no_grad():
                assert np.allclose(model(x).numpy(), predict(run / "trials" / f"{member['trial']:05d}" / "model.onnx", x),
                                   atol=1e-3)
    # resumed with more trials: the checkpoint and the candidates are reused, nothing retrains
    ckpt = next((run / "supernet").glob("cnn-*.pt"))
    mtime = ckpt.stat().st_mtime_ns
    notes = Notes()
    again = slimnas.search(cfg, n_trials=6, seed=0, out=str(run), listener=notes)
    assert len(again.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 6
    assert ckpt.stat().st_mtime_ns == mtime and not any("training" in line for line in notes.lines)
    assert any("reusing them" in line for line in notes.lines)


def test_reseed_cheapest_fine_tunes_the_first_candidate_again_under_another_seed(tmp_path):
    cfg = supernet_config(tmp_path, n_candidates=2, max_candidates=2, reseed_cheapest=1)
    result = slimnas.search(cfg, n_trials=4, seed=0, out=str(tmp_path / "run"))
    done = result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert [t.user_attrs["metrics"].get("supernet_candidate") for t in done] == [0, 1, 0, None]
    first, again = done[0], done[2]
    assert again.user_attrs["candidate"] == first.user_attrs["candidate"]  # the same sub-network and recipe
    weights = [torch.load(result.run_dir / "trials" / f"{t.number:05d}" / "weights.pt", weights_only=True)
               for t in (first, again)]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # fine-tuned under another seed
    assert stored_candidates(result.study)["reseed"] == 1


@pytest.mark.parametrize("objectives, budget, expected", [
    (["accuracy", "macs"], ["macs<=20000"], ("fp32",)),
    (["accuracy", "params"], [], ("fp32",)),
    (["accuracy", "bytes"], ["macs<=20000"], ("fp32", "int8")),
    (["accuracy", "macs"], ["bytes<=8KB"], ("fp32", "int8")),
    (["accuracy", "latency"], [], ("fp32", "int8")),
])
def test_precision_is_searched_only_where_a_cost_depends_on_it(objectives, budget, expected):
    budgets = tuple(Budget.parse(b) for b in budget)
    assert searched_precisions(objectives, budgets) == expected
    assert SupernetOptions.parse({}).resolve(objectives, budgets).precision == expected
    assert SupernetOptions.parse({"precision": ["int8"]}).resolve(objectives, budgets).precision == ("int8",)


def test_a_mac_budgeted_supernet_search_keeps_every_layer_fp32(tmp_path):
    """Under accuracy and MACs nothing pays for an int8 layer: the pairs, the candidates and the
    trials are fp32 throughout; an explicit ``precision`` still searches int8."""
    result = slimnas.search(supernet_config(tmp_path, objectives=("accuracy", "macs")), n_trials=2, seed=0,
                            out=str(tmp_path / "run"))
    report = json.loads((result.run_dir / "supernet" / "report.json").read_text())
    assert report["options"]["precision"] == ["fp32"] and report["int8_check"] == []
    pairs = json.loads(next((result.run_dir / "supernet").glob("pairs-*.json")).read_text())
    assert {p for pair in pairs for p in pair["precision"]} == {"fp32"}
    assert all(set(c["slots"]) == {"fp32"} for c in report["candidates"])
    assert not any("policy" in t.user_attrs for t in result.study.trials)
    mixed = slimnas.search(supernet_config(tmp_path, objectives=("accuracy", "macs"), precision=["fp32", "int8"]),
                           n_trials=1, seed=0, out=str(tmp_path / "mixed"))
    pairs = json.loads(next((mixed.run_dir / "supernet").glob("pairs-*.json")).read_text())
    assert {p for pair in pairs for p in pair["precision"]} == {"fp32", "int8"}


def test_every_worker_of_a_parallel_supernet_search_finds_the_checkpoint(tmp_path):
    """A worker process runs under the run's seed plus its index; the supernet and its candidates
    are named by the run's seed, so a worker's first candidate finds the checkpoint the main
    process trained (it failed on a checkpoint named by its own seed)."""
    import multiprocessing
    import os

    from slimnas.study._driver import open_study
    from slimnas.study._search import _worker

    cfg = supernet_config(tmp_path, n_candidates=6, max_candidates=6)
    first = slimnas.search(cfg, n_trials=2, seed=3, out=str(tmp_path / "run"))
    assert len(stored_candidates(first.study)["candidates"]) >= 4
    raw = {**first.plan.to_dict(), "n_trials": 4}
    _worker(raw, 1, os.getppid(), multiprocessing.get_context("spawn").Queue())  # as worker 1 of the run
    done = open_study(first.plan.study_spec).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert [t.user_attrs["metrics"]["supernet_candidate"] for t in done] == [0, 1, 2, 3]
    assert len(list((tmp_path / "run" / "supernet").glob("cnn-*.pt"))) == 1


def test_a_search_stopped_after_the_supernet_trained_reuses_its_checkpoint(tmp_path):
    cfg = supernet_config(tmp_path)
    out = str(tmp_path / "run")
    notes = Notes(stop_on="measuring")
    first = slimnas.search(cfg, n_trials=2, seed=0, out=out, listener=notes)
    assert first.interrupted and not first.study.trials and stored_candidates(first.study) is None
    assert any("training" in line for line in notes.lines)
    ckpts = sorted((tmp_path / "run" / "supernet").glob("*-*.pt"))
    assert [p.name.split("-")[0] for p in ckpts] == ["cnn", "mlp"]
    mtimes = [p.stat().st_mtime_ns for p in ckpts]
    notes = Notes()
    second = slimnas.search(cfg, n_trials=2, seed=0, out=out, listener=notes)
    assert not second.interrupted and len(second.study.trials) == 2
    assert [p.stat().st_mtime_ns for p in ckpts] == mtimes
    assert sum("reusing the trained checkpoint" in line for line in notes.lines) == 2
    assert not any("training" in line for line in notes.lines)


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x}


def test_fold_splits_hold_out_disjoint_class_balanced_blocks_and_train_on_the_rest(digits):
    folds = fold_splits(digits, 3, seed=0)
    assert len(folds) == 2
    train, val = _rows(digits.x_train), _rows(digits.x_val)
    blocks = []
    for fold in folds:
        held, rest = _rows(fold.x_val), _rows(fold.x_train)
        assert abs(len(fold.y_val) - len(digits.y_val)) <= digits.n_classes  # as large, up to rounding per class
        assert held <= train and not held & rest  # a block of training samples, trained on by none of the fold
        assert rest == (train - held) | val and len(fold.y_train) + len(fold.y_val) == len(digits.y_train) + len(digits.y_val)
        shares = np.bincount(fold.y_val.numpy(), minlength=digits.n_classes) / len(fold.y_val)
        assert np.abs(shares - np.bincount(digits.y_train.numpy()) / len(digits.y_train)).max() < 0.02
        blocks.append(held)
    assert not blocks[0] & blocks[1]  # disjoint
    assert _rows(fold_splits(digits, 3, seed=0)[1].x_val) == blocks[1]  # reproducible from the seed
    with pytest.raises(ConfigError) as e:
        fold_splits(digits, 8, seed=0)
    assert str(e.value).startswith("strategy.options.holdout_folds") and "\n" not in str(e.value)


def test_fold_splits_refuse_data_streamed_from_disk(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(200, 1, 16)).astype(np.float32), np.arange(200) % 4
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_dataset(str(tmp_path / "d.npz"), stream=True, num_workers=0)
    assert data.streamed and len(fold_splits(load_dataset(str(tmp_path / "d.npz")), 2, seed=0)) == 1
    with pytest.raises(ConfigError) as e:
        fold_splits(data, 2, seed=0)
    message = str(e.value)
    assert message.startswith("strategy.options.holdout_folds") and "streamed" in message and "\n" not in message


def test_holdout_folds_score_each_candidate_on_every_fold_and_choose_the_front_by_their_mean(tmp_path):
    """With a second fold, a supernet per family trains on the fold's data too, once (a resumed
    run reuses it), and each candidate's val_accuracy is the mean of its own validation accuracy
    and its twin's on the fold, the twin inherited from the fold's supernet (with no fine-tune,
    exactly the inherited accuracy measured directly)."""
    out, cfg = str(tmp_path / "run"), supernet_config(tmp_path, finetune_epochs=0, holdout_folds=2)
    notes = Notes()
    slimnas.search(cfg, n_trials=2, seed=0, out=out, listener=notes)
    assert sum("fold 2 of 2" in line for line in notes.lines) == 1
    ckpts = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "supernet").glob("*-*.pt")}
    assert sorted(name.split("-")[0] for name in ckpts) == ["cnn", "cnn", "mlp", "mlp"]
    notes = Notes()
    result = slimnas.search(cfg, n_trials=3, seed=0, out=out, listener=notes)
    assert not any("training" in line for line in notes.lines)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "supernet").glob("*-*.pt")} == ckpts
    run = open_run(result.run_dir)
    splits = run.data()
    ctx = prepare_context(result.plan, splits, RunFolder(result.run_dir), torch.device("cpu"))
    strategy = SupernetStrategy()
    opts = strategy.options(ctx)
    (fold,) = strategy.fold_contexts(ctx, opts)
    candidates = stored_candidates(result.study)["candidates"]
    for t in result.study.trials:
        m = t.user_attrs["metrics"]
        own, twin = m["val_accuracy_folds"]
        assert m["val_accuracy_split"] == own and m["val_accuracy"] == pytest.approx((own + twin) / 2)
        assert t.values[0] == m["val_accuracy"]  # the value the study's front is chosen by
        record = candidates[m["supernet_candidate"]]
        point = Point(record["family"], arch_from_dict(record["spec"]), tuple(record["slots"]))
        assert twin == pytest.approx(measure_point(strategy._net(fold, opts, point.family), point, fold.data,
                                                   opts.recal_samples))
        if "policy" not in t.user_attrs:  # fp32: the trial's own figure is its model's on the validation split
            model = slimnas.load(result.run_dir, trial=t.number)
            assert own == pytest.approx(evaluate(model, splits.x_val, splits.y_val)["accuracy"])


@pytest.mark.parametrize("change, field", [
    ({"strategy": {"name": "supernet", "options": {"epochs": 0}}}, "strategy.options.epochs"),
    ({"strategy": {"name": "supernet", "options": {"holdout_folds": 0}}}, "strategy.options.holdout_folds"),
    ({"strategy": {"name": "supernet", "options": {"bogus": 1}}}, "strategy.options.bogus"),
    ({"strategy": {"name": "supernet", "options": {"search": "grid"}}}, "strategy.options.search"),
    ({"strategy": {"name": "supernet", "options": {"finetune_warmup": 1.0}}}, "strategy.options.finetune_warmup"),
    ({"strategy": {"name": "supernet", "options": {"fixed": {"cnn": {"stride": [3]}}}}}, "strategy.options.fixed.cnn.stride"),
    ({"strategy": {"name": "supernet", "options": {"fixed": {"cnn": {"channels": 8}}}}}, "strategy.options.fixed.cnn.channels"),
    ({"strategy": {"name": "supernet"}, "space": {"family": "rnn"}}, "space.family"),
    ({"strategy": {"name": "supernet"}, "objectives": ["loss"]}, "objectives"),
    ({"strategy": {"name": "supernet"}, "space": {**SPACE, "compression": {"prune": {"low": 0.0, "high": 0.5}}}},
     "space.compression"),
])
def test_bad_supernet_settings_are_refused_in_one_line(change, field):
    raw = {"data": {"dataset": "digits"}, "space": SPACE, **change}
    with pytest.raises(ConfigError) as e:
        SearchPlan.from_config(parse_config(raw))
    assert str(e.value).startswith(field) and "\n" not in str(e.value)


def test_default_cnn_skeleton_downsamples_while_the_sequence_is_long():
    net = supernet("cnn", {"n_layers": {"low": 3, "high": 5}, "channels": [4, 32], "kernel": [3, 5],
                           "stride": [1, 2], "head": ["flatten", "gap"], "residual": [False, True]})
    assert [c.stride for c in net.skeleton.layers] == [1, 2, 2, 2, 1]  # 40 -> 40, 20, 10, 5, 5
    assert net.skeleton.head == "gap" and net.skeleton.residual is False and net.skeleton.batch_norm
    assert isinstance(net.extract(net.smallest()), ConvNet)
