"""The resnet, mobilenet and transformer families: specs round-trip, models train a step,
export to ONNX matching eager outputs, and their MACs and parameters match counts by hand."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

import slimnas
from slimnas.data import load_dataset
from slimnas.errors import ConfigError
from slimnas.export import export_onnx
from slimnas.export._onnx import verify_onnx
from slimnas.measure import count_macs, count_params
from slimnas.models import (
    InvertedBlock,
    MobileNetSpec,
    ResNetSpec,
    ResStage,
    TransformerSpec,
    build_model,
    cifar_resnet18,
)
from slimnas.spaces import SearchSpace, TrainSpec, arch_from_dict
from slimnas.spaces._family import arch_to_dict
from slimnas.training import fit

CASES = {
    "resnet-2d": (ResNetSpec(stages=(ResStage(8, 1, 1), ResStage(16, 2, 2)), stem=8), (3, 8, 8)),
    "resnet-1d": (ResNetSpec(stages=(ResStage(8, 1, 2),), stem=4), (1, 24)),
    "mobilenet-2d": (MobileNetSpec(blocks=(InvertedBlock(8, 2, 3, 1, True), InvertedBlock(8, 3, 5, 1, False),
                                           InvertedBlock(12, 2, 3, 2, True)), stem=8), (3, 8, 8)),
    "mobilenet-1d": (MobileNetSpec(blocks=(InvertedBlock(8, 2, 3, 2, True),), stem=4), (1, 24)),
    "transformer-tokens": (TransformerSpec(depth=2, heads=2, dim=16, vocab_size=20), (1, 10)),
    "transformer-steps": (TransformerSpec(depth=1, heads=4, dim=16, mlp_ratio=1.5, patch=4), (2, 24)),
    "transformer-patches": (TransformerSpec(depth=1, heads=2, dim=12, patch=4), (3, 8, 8)),
}


def _inputs(name: str, shape, n: int = 8) -> torch.Tensor:
    if "tokens" in name:  # token ids arrive as numbers, like every other input
        return torch.randint(0, 20, (n, *shape)).float()
    return torch.randn(n, *shape)


@pytest.mark.parametrize("name", list(CASES))
def test_family_builds_trains_exports_and_verifies(name, tmp_path):
    spec, shape = CASES[name]
    assert arch_from_dict(json.loads(json.dumps(arch_to_dict(spec)))) == spec
    torch.manual_seed(0)
    model = build_model(spec, shape, 5)
    x, y = _inputs(name, shape, 16), torch.arange(16) % 5
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, x, y, TrainSpec(epochs=1, batch_size=16, lr=1e-2))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # one step changed weights
    model.eval()
    path = export_onnx(model, tmp_path / "m.onnx", shape)  # verified against eager on random inputs
    assert verify_onnx(model, path, shape) < 1e-4
    if "tokens" in name:  # and on real token ids (random numbers mostly clamp to id 0)
        from slimnas.export._session import max_abs_diff

        assert max_abs_diff(path.read_bytes(), model, _inputs(name, shape)) < 1e-4


def _conv_macs(c_in, c_out, k, out_positions, groups=1):
    return c_out * out_positions * (c_in // groups) * k


def test_resnet_macs_and_params_by_hand():
    spec = ResNetSpec(stages=(ResStage(8, 1, 1), ResStage(16, 1, 2)), stem=4)
    model = build_model(spec, (3, 8, 8), 10)
    k = 9  # 3x3
    macs = (_conv_macs(3, 4, k, 64)  # stem
            + _conv_macs(4, 8, k, 64) + _conv_macs(8, 8, k, 64) + _conv_macs(4, 8, 1, 64)  # block 1 + projection
            + _conv_macs(8, 16, k, 16) + _conv_macs(16, 16, k, 16) + _conv_macs(8, 16, 1, 16)  # block 2, stride 2
            + 16 * 10)
    params = (3 * 4 * k + 2 * 4
              + 4 * 8 * k + 8 * 8 * k + 4 * 8 + 3 * 2 * 8
              + 8 * 16 * k + 16 * 16 * k + 8 * 16 + 3 * 2 * 16
              + 16 * 10 + 10)
    assert count_macs(model, (3, 8, 8)) == macs
    assert count_params(model) == params


def test_mobilenet_macs_and_params_by_hand():
    spec = MobileNetSpec(blocks=(InvertedBlock(6, expand=3, kernel=3, stride=2, se=True),), stem=4)
    model = build_model(spec, (1, 8, 8), 10)
    hidden, squeezed = 12, 3
    macs = (_conv_macs(1, 4, 9, 64)  # stem
            + _conv_macs(4, hidden, 1, 64)  # expand
            + _conv_macs(hidden, hidden, 9, 16, groups=hidden)  # depthwise, stride 2
            + hidden * squeezed + squeezed * hidden  # squeeze-excitation on pooled features
            + _conv_macs(hidden, 6, 1, 16)  # project
            + 6 * 10)
    params = (1 * 4 * 9 + 2 * 4 + 4 * hidden + 2 * hidden + hidden * 9 + 2 * hidden
              + hidden * squeezed + squeezed + squeezed * hidden + hidden + hidden * 6 + 2 * 6 + 6 * 10 + 10)
    assert count_macs(model, (1, 8, 8)) == macs
    assert count_params(model) == params


def test_transformer_macs_and_params_by_hand():
    d, t, depth, hidden, vocab, n_classes = 16, 10, 2, 32, 20, 5
    model = build_model(TransformerSpec(depth=depth, heads=4, dim=d, mlp_ratio=2.0, vocab_size=vocab), (1, t), n_classes)
    per_block = 4 * t * d * d + 2 * t * t * d + 2 * t * d * hidden  # projections, attention, MLP
    assert count_macs(model, (1, t)) == depth * per_block + d * n_classes
    block_params = 4 * (d * d + d) + 2 * 2 * d + (d * hidden + hidden) + (hidden * d + d)
    assert count_params(model) == vocab * d + t * d + depth * block_params + 2 * d + d * n_classes + n_classes


def test_cifar_resnet18_layout():
    model = cifar_resnet18(width=64)
    assert 11.1e6 < count_params(model) < 11.2e6
    assert 0.55e9 < count_macs(model, (3, 32, 32)) < 0.56e9


def test_bad_shapes_are_refused_with_one_line():
    with pytest.raises(ConfigError, match="vocab_size"):
        build_model(TransformerSpec(vocab_size=10), (3, 8, 8), 2)
    with pytest.raises(ConfigError, match="patch"):
        build_model(TransformerSpec(patch=16), (1, 8), 2)
    with pytest.raises(ConfigError, match="resnet"):
        build_model(ResNetSpec(stages=(ResStage(4),)), (10,), 2)


def test_spaces_sample_the_new_families():
    space = SearchSpace.from_config({
        "family": ["resnet", "mobilenet", "transformer"],
        "resnet": {"n_stages": 2, "width": [8, 16]},
        "mobilenet": {"n_blocks": [2], "expand": [2, 4], "se": [True, False]},
        "transformer": {"depth": [1, 2], "heads": [2], "dim": [16]},
    })
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        cand = space.sample(trial)
        study.tell(trial, 0.0)
        seen.add(cand.arch.family)
        assert build_model(cand.arch, (3, 8, 8), 4)(torch.randn(2, 3, 8, 8)).shape == (2, 4)
    assert seen == {"resnet", "mobilenet", "transformer"}


def test_transformer_family_search_end_to_end(tmp_path):
    cfg = {"data": {"dataset": "digits"}, "objectives": ["accuracy", "macs"],
           "space": {"family": "transformer", "transformer": {"depth": 1, "heads": [2, 4], "dim": [16], "patch": 2}},
           "training": {"epochs": 1, "lr": 0.01, "batch_size": 64, "accumulate": 2}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = slimnas.search(tmp_path / "c.yaml", n_trials=2, seed=0, out=str(tmp_path / "run"))
    assert res.front
    member = res.front[0]
    assert member.candidate["arch"]["family"] == "transformer"
    assert member.candidate["train"]["accumulate"] == 2
    assert 0 <= member.metrics["test_accuracy"] <= 1 and member.metrics["macs"] > 0
    assert (member.path / "model.onnx").is_file()


def test_transformer_search_on_text_takes_the_data_vocabulary(tmp_path):
    cfg = {"data": {"dataset": "text"}, "objectives": ["accuracy", "macs"],
           "space": {"family": "transformer", "transformer": {"depth": 1, "heads": [2], "dim": [16]}},
           "training": {"epochs": 1, "lr": 0.01, "batch_size": 64}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = slimnas.search(tmp_path / "c.yaml", n_trials=1, seed=0, out=str(tmp_path / "run"))
    arch = res.front[0].candidate["arch"]
    assert arch["family"] == "transformer" and arch["vocab_size"] == load_dataset("text").vocab_size > 0
    assert (res.front[0].path / "model.onnx").is_file()
