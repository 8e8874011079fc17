"""DARTS: the relaxed supernet against the family's own networks, gradients to the architecture
weights, the cost penalty, discretisation back to the family's specs, and a search end to end
(its proposals trained, measured and written into the study like any trial)."""

from __future__ import annotations

import contextlib
import io
import json
import random

import optuna
import pytest
import torch
import yaml

import slimnas
from slimnas.cli import main
from slimnas.errors import ConfigError
from slimnas.measure import Budget, count_macs
from slimnas.models import build_model
from slimnas.spaces import SearchSpace, TrainSpec
from slimnas.strategies import StrategyContext, get_strategy, stored_result
from slimnas.strategies._darts import (
    STATE_KEY,
    DartsSettings,
    fit_selection,
    one_hot_macs,
    run_darts,
    spec_params,
)
from slimnas.strategies._darts_net import CnnChoices, DartsSupernet
from slimnas.study import SearchPlan
from slimnas.testing import synthetic_splits

CHOICES = CnnChoices(depths=(1, 2, 3), kernel=(3, 5), channels=(2, 4, 6), stride=(1, 2), dilation=(1,),
                     pool=("none",), activation=("relu", "sigmoid"), residual=(False, True), head=("gap", "flatten"))
POOLED = CnnChoices(depths=(2, 3), kernel=(1, 3, 5), channels=(3, 4), stride=(1, 2), dilation=(1, 2),
                    pool=("none", "max", "avg"), activation=("relu",), residual=(False, True), head=("gap", "flatten"))


@pytest.mark.parametrize("choices, shape", [(CHOICES, (1, 40)), (POOLED, (3, 21)), (POOLED, (2, 12, 10))],
                         ids=["1d", "1d-odd-pooled", "2d"])
def test_supernet_at_one_hot_weights_is_the_family_network_with_inherited_weights(choices, shape):
    torch.manual_seed(0)
    net = DartsSupernet(choices, shape, 5)
    with torch.no_grad():  # batch-norm statistics that differ from the defaults
        for _ in range(3):
            net(torch.randn(16, *shape))
    net.eval()
    rng = random.Random(0)
    for _ in range(12):
        selection = {k: rng.randrange(len(a)) for k, a in net.alphas.items()}
        net.set_one_hot(selection)
        spec, kept = net.discretise(selection)
        model = net.inherit(build_model(spec, shape, 5).eval(), spec, kept)
        x = torch.randn(4, *shape)
        with torch.no_grad():
            assert torch.allclose(net(x), model(x), atol=1e-5), spec
            assert float(net.expected_macs()) == pytest.approx(count_macs(model, shape)), spec


def test_mixed_operation_gradients_reach_every_architecture_weight():
    torch.manual_seed(0)
    net = DartsSupernet(POOLED, (3, 21), 5)
    x, y = torch.randn(8, 3, 21), torch.randint(0, 5, (8,))
    torch.nn.functional.cross_entropy(net(x), y).backward()
    for key, alpha in net.alphas.items():
        assert alpha.grad is not None and float(alpha.grad.abs().sum()) > 0, key
    net.zero_grad()
    net.expected_macs().backward()
    moved = {k for k, a in net.alphas.items() if a.grad is not None and float(a.grad.abs().sum()) > 0}
    assert {"channels_0", "kernel_0", "stride_0", "residual", "head"} <= moved


def test_mac_penalty_lowers_the_expected_macs_of_the_search():
    data = synthetic_splits(0)
    out = {}
    for weight in (0.0, 3.0):
        torch.manual_seed(0)
        net = DartsSupernet(CHOICES, data.input_shape, data.n_classes)
        reference = float(net.expected_macs().detach())
        settings = DartsSettings(warmup_epochs=1, search_epochs=8, penalty_weights=(weight,), alpha_lr=0.05,
                                 batch_size=32)
        run = run_darts(net, data, TrainSpec(lr=0.01), settings, seed=0,
                        cost=DartsSupernet.expected_macs, reference=reference)[0]
        out[weight] = run["expected_macs"]
    assert out[3.0] < 0.7 * out[0.0]


def test_fitting_a_selection_under_a_mac_limit_changes_the_least_likely_choices():
    net = DartsSupernet(CHOICES, (1, 40), 5)
    widest = {k: len(a) - 1 if k.startswith("channels") else 0 for k, a in net.alphas.items()}
    probs = {k: [1 / len(a)] * len(a) for k, a in net.alphas.items()}
    probs["kernel_0"] = [0.01, 0.99]
    limit = 0.6 * one_hot_macs(net, widest)
    fitted = fit_selection(net, probs, widest, 0.0, limit)
    assert one_hot_macs(net, fitted) <= limit
    assert fitted["kernel_0"] == widest["kernel_0"]  # the confident choice is kept


SPACE = {"family": ["cnn", "mlp"],
         "cnn": {"n_layers": {"low": 1, "high": 3}, "channels": [4, 8], "kernel": [3, 5], "stride": [1, 2],
                 "residual": [False, True], "head": ["gap", "flatten"], "pool": ["none", "max"]},
         "mlp": {"width": [8]}}


def test_discretised_spec_is_what_the_space_samples_from_its_parameters():
    space = SearchSpace.from_config(SPACE, {"lr": {"low": 1e-3, "high": 1e-1, "log": True}, "optimizer": ["adam"]})
    net = DartsSupernet(CnnChoices.from_params(space.params["cnn"]), (1, 16), 4)
    rng = random.Random(1)
    for _ in range(5):
        spec, _ = net.discretise({k: rng.randrange(len(a)) for k, a in net.alphas.items()})
        params = spec_params(spec, space)
        study = optuna.create_study()
        study.enqueue_trial(params)
        trial = study.ask()
        cand = space.sample(trial)
        assert cand.arch == spec and cand.train.lr == pytest.approx(0.01)
        assert count_macs(build_model(cand.arch, (1, 16), 4), (1, 16)) > 0


def test_darts_refuses_a_space_without_the_cnn_family_in_one_line(tmp_path):
    space = SearchSpace.from_config({"family": "mlp"})
    with pytest.raises(ConfigError, match="'cnn' family"):
        get_strategy("darts").check(StrategyContext(space=space, seed=0, n_objectives=2))
    with pytest.raises(ConfigError, match="strategy.options.epochs"):
        get_strategy("darts").check(StrategyContext(space=SearchSpace.from_config(SPACE), seed=0, n_objectives=2,
                                                    options={"epochs": 3}))
    cfg = tmp_path / "mlp.yaml"
    cfg.write_text(yaml.safe_dump({"strategy": {"name": "darts"}, "space": {"family": "mlp"}}))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        main(["search", str(cfg), "--out", str(tmp_path / "run")])
    assert e.value.code == 2 and "'cnn' family" in err.getvalue()
    assert len(err.getvalue().strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_darts_search_end_to_end_proposes_its_architectures_into_the_study(tmp_path):
    cfg = {"data": {"dataset": "digits"}, "objectives": ["accuracy", "macs"], "budget": ["macs<=3000"],
           "strategy": {"name": "darts", "options": {"warmup_epochs": 1, "search_epochs": 2,
                                                     "penalty_weights": [0.0, 2.0], "batch_size": 256}},
           "space": {"family": "cnn", "cnn": {"n_layers": {"low": 1, "high": 2}, "channels": [4, 8],
                                              "kernel": [3, 5], "stride": [1, 2], "head": ["gap"]}},
           "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = slimnas.search(path, n_trials=3, seed=0, out=str(tmp_path / "run"))
    stored = stored_result(result.study, STATE_KEY)
    proposals = stored["proposals"]
    assert 1 <= len(proposals) <= 2 and all(p["macs"] <= 3000 for p in proposals)
    trials = result.study.trials
    for k, proposal in enumerate(proposals):  # trained and measured like any trial, same study
        assert trials[k].system_attrs["slimnas:darts"]["proposal"] == k
        assert trials[k].user_attrs["candidate"]["arch"] == proposal["arch"]
        metrics = json.loads((result.run_dir / "trials" / f"{k:05d}" / "metrics.json").read_text())
        assert metrics["macs"] == proposal["macs"] and metrics["trained"]
    assert trials[-1].system_attrs["slimnas:darts"]["parent"] is not None  # then evolution's children
    assert result.front and (result.run_dir / "pareto.json").is_file()
    # resumed: the stored search is reused, not run again
    resumed = slimnas.search(path, n_trials=4, seed=0, out=str(tmp_path / "run"))
    assert stored_result(resumed.study, STATE_KEY) == stored and len(resumed.study.trials) == 4
    # and other options than it was searched with are refused (by the study's definition)
    cfg["strategy"]["options"]["penalty_weights"] = [1.0]
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="options"):
        slimnas.search(path, n_trials=5, seed=0, out=str(tmp_path / "run"))


def test_mac_range_of_a_joint_search_is_the_budget_stretched_by_compression():
    from slimnas.compress._space import CompressionSpace
    from slimnas.strategies._darts import mac_range

    plan = SearchPlan.load(None, dataset="digits", budget=["macs<=1000", "macs>=200"])
    assert mac_range(plan.budget, plan.space) == (200, 1000)
    space = SearchSpace.from_config({"family": "cnn", "compression": {"keep_macs": {"low": 0.25, "high": 1.0}}},
                                    compression=CompressionSpace.from_config)
    assert mac_range((Budget.parse("macs<=1000"),), space) == (0.0, 4000)


@pytest.mark.parametrize("choices, mode", [(CHOICES, ""), (CHOICES, "tokens"), (POOLED, "causal")],
                         ids=["text", "tokens", "causal"])
def test_a_token_supernet_at_one_hot_weights_is_the_familys_token_cnn(choices, mode):
    """Token ids embedded as wide as the first layer's width mixture; per token: stride 1, no
    pooling, a prediction per position (causal: smaller kernels are the largest's last taps, and
    no position reads a later one, at any weights); at one-hot weights the family's own network
    with the inherited weights, its MACs exact."""
    torch.manual_seed(0)
    shape, vocab = (1, 20), 30

    def ids(n: int) -> torch.Tensor:
        return torch.randint(0, vocab, (n, *shape)).float()

    net = DartsSupernet(choices, shape, 5, vocab_size=vocab, per_token=mode)
    assert mode == "" or not {"stride_0", "pool_0", "head"} & set(net.alphas)  # the per-token head fixes them
    with torch.no_grad():
        for _ in range(3):
            net(ids(16))
    net.eval()
    x = ids(4)
    if mode == "causal":
        with torch.no_grad():
            for alpha in net.alphas.values():
                alpha.normal_()  # soft weights: every kernel, dilation and width mixed
            later = x.clone()
            later[..., 12:] = (later[..., 12:] + 1) % vocab
            y = net(x)
            assert torch.equal(net(later)[:, :12], y[:, :12]) and not torch.equal(net(later), y)
    rng = random.Random(0)
    for _ in range(10):
        selection = {k: rng.randrange(len(a)) for k, a in net.alphas.items()}
        net.set_one_hot(selection)
        spec, kept = net.discretise(selection)
        assert spec.vocab_size == vocab and spec.per_token == mode
        model = net.inherit(build_model(spec, shape, 5).eval(), spec, kept)
        with torch.no_grad():
            got = net(x)
            assert got.shape == ((4, 20, 5) if mode else (4, 5)) and torch.allclose(got, model(x), atol=1e-5), spec
            assert float(net.expected_macs()) == pytest.approx(count_macs(model, shape)), spec
