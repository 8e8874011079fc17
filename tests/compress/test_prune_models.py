"""Structured pruning of Transformer encoders (heads, MLP neurons), multi-layer and
bidirectional recurrent layers, depthwise and grouped convolutions: the pruned model really
shrinks and computes what the original does with the removed channels zeroed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimnas.compress import StructuredPruner, list_prunable_layers, quantize_model
from slimnas.export._structure import load_compressed, save_compressed
from slimnas.measure import count_macs, count_params
from slimnas.models import (
    InvertedBlock,
    MobileNetSpec,
    RNNSpec,
    TransformerSpec,
    build_model,
)

VOCAB = 30


def _check_pruned(original: nn.Module, pruner: StructuredPruner, x: torch.Tensor, shape) -> None:
    """Fewer parameters and MACs; outputs equal to the masked original, and not to the original."""
    assert count_params(pruner.model_) < count_params(original)
    assert count_macs(pruner.model_, shape) < count_macs(original, shape)
    reference = pruner.reference_model(original)
    with torch.no_grad():
        got, expected, unmasked = pruner.model_(x), reference(x), original(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got, unmasked, atol=1e-4)


class TorchEncoder(nn.Module):
    """A classifier on PyTorch's own nn.TransformerEncoder (nn.MultiheadAttention inside)."""

    def __init__(self, norm_first: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 16)
        layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.classifier = nn.Linear(16, 10)

    def forward(self, x):
        return self.classifier(self.encoder(self.embed(x.flatten(1).clamp(0, VOCAB - 1).long())).mean(1))


def _tokens(n: int = 6, length: int = 12) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, 1, length), generator=torch.Generator().manual_seed(1)).float()


@pytest.mark.parametrize("norm_first", [False, True])
def test_torch_transformer_encoder_heads_and_neurons_pruned(norm_first):
    original = TorchEncoder(norm_first).eval()
    p = StructuredPruner(ratio=0.5).fit(original, input_shape=(1, 12))
    attn = p.model_.encoder.layers[0].self_attn
    assert attn.num_heads == 2 and attn.query.out_features == 8  # two whole heads of four removed
    assert p.model_.encoder.layers[0].linear1.out_features == 16  # half the MLP neurons
    assert p.model_.encoder.layers[0].norm1.normalized_shape == (16,)  # the embedding width is kept
    assert p.report_["heads"] == {"encoder.layers.0.self_attn": 2, "encoder.layers.1.self_attn": 2}
    _check_pruned(original, p, _tokens(), (1, 12))
    # the caller's model still has PyTorch's attention, and the layers to prune are named as pruned
    assert isinstance(original.encoder.layers[0].self_attn, nn.MultiheadAttention)
    names = [layer.name for layer in list_prunable_layers(original, (1, 12))]
    assert names == ["encoder.layers.0.self_attn.query", "encoder.layers.0.linear1",
                     "encoder.layers.1.self_attn.query", "encoder.layers.1.linear1"]


def test_transformer_family_per_layer_head_ratios_and_reload(tmp_path):
    torch.manual_seed(0)
    spec = TransformerSpec(depth=2, heads=4, dim=16, vocab_size=VOCAB)
    original = build_model(spec, (1, 12), 10).eval()
    p = StructuredPruner(ratio=0.0, layer_ratios={"blocks.0.attn.query": 0.5, "blocks.1.fc1": 0.25}).fit(
        original, input_shape=(1, 12))
    assert p.model_.blocks[0].attn.heads == 2 and p.model_.blocks[1].attn.heads == 4
    assert p.model_.blocks[1].fc1.out_features == 24 and p.model_.blocks[0].fc1.out_features == 32
    _check_pruned(original, p, _tokens(), (1, 12))
    save_compressed(p.model_, tmp_path)  # rebuilt from the original builder and the saved widths
    again = load_compressed(build_model(spec, (1, 12), 10), tmp_path)
    torch.testing.assert_close(again(_tokens()), p.model_(_tokens()))


def test_bidirectional_two_layer_gru_pruned():
    torch.manual_seed(0)
    original = build_model(RNNSpec(cell="gru", hidden=12, n_layers=2, bidirectional=True), (1, 10), 10).eval()
    p = StructuredPruner(ratio=0.5).fit(original, input_shape=(1, 10))
    rnn = p.model_.rnn
    assert rnn.hidden_size == 6 and rnn.weight_ih_l1.shape == (18, 12) and rnn.weight_hh_l1_reverse.shape == (18, 6)
    assert p.model_.classifier.in_features == 12 and p.left_alone_ == {}
    _check_pruned(original, p, torch.randn(6, 1, 10), (1, 10))


def test_two_layer_lstm_pruned():
    torch.manual_seed(0)
    original = build_model(RNNSpec(cell="lstm", hidden=8, n_layers=2, bidirectional=True), (2, 8), 10).eval()
    p = StructuredPruner(ratio=0.5).fit(original, input_shape=(2, 8))
    assert p.model_.rnn.hidden_size == 4
    _check_pruned(original, p, torch.randn(6, 2, 8), (2, 8))


def test_depthwise_convolutions_pruned_with_their_expansion():
    torch.manual_seed(0)
    spec = MobileNetSpec(blocks=(InvertedBlock(8, 3, 3, 1, True), InvertedBlock(8, 2, 5, 1, False)), stem=8)
    original = build_model(spec, (3, 8, 8), 10).eval()
    for m in original.modules():  # non-trivial BatchNorm, so the reference is really tested
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    p = StructuredPruner(ratio=0.5).fit(original, input_shape=(3, 8, 8))
    body = p.model_.layers[0].body
    expand, depthwise = body[0], body[3]
    assert depthwise.groups == depthwise.in_channels == depthwise.out_channels == expand.out_channels == 12
    _check_pruned(original, p, torch.randn(4, 3, 8, 8), (3, 8, 8))


def test_grouped_convolution_pruned_group_by_group():
    torch.manual_seed(0)
    original = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=2),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).eval()
    p = StructuredPruner(ratio=0.5).fit(original, input_shape=(3, 6, 6))
    grouped = p.model_[2]
    assert grouped.groups == 2 and grouped.in_channels == 4 and grouped.out_channels == 4
    _check_pruned(original, p, torch.randn(4, 3, 6, 6), (3, 6, 6))


def test_dynamic_int8_shrinks_a_transformer_and_keeps_its_predictions():
    torch.manual_seed(0)
    model = build_model(TransformerSpec(depth=1, heads=2, dim=32, vocab_size=VOCAB), (1, 12), 10).eval()
    fp32 = quantize_model(model, (1, 12), mode="fp32")
    dyn = quantize_model(model, (1, 12), mode="int8-dynamic")
    assert len(dyn) < 0.6 * len(fp32)
    from slimnas.export import predict

    x = _tokens(32)
    with torch.no_grad():
        agree = (predict(dyn, x).argmax(1) == model(x).argmax(1).numpy()).mean()
    assert agree >= 0.9


def test_compressed_torch_encoder_written_and_reloaded(tmp_path):
    from slimnas.compress import CompressionPolicy, compress
    from slimnas.testing import tiny_data

    data = tiny_data(n=120)  # (1, 40) values: ids after clamping, enough to exercise the files
    original = TorchEncoder().eval()
    res = compress(original, data, CompressionPolicy.of(prune={"ratio": 0.5}, quantize={"mode": "int8-auto"}),
                   epochs=0, out=tmp_path, latency_repeats=3)
    assert res.after["params"] < res.before["params"]
    assert res.steps["quantize"]["chosen"] in ("int8", "int8-dynamic")
    assert set(res.steps["quantize"]["candidates"]) == {"int8", "int8-dynamic"}
    again = load_compressed(TorchEncoder(), tmp_path / "compressed")
    x = _tokens(length=40)
    torch.testing.assert_close(again(x), res.model(x))


def test_an_auto_trial_can_keep_every_head_of_an_attention():
    """Heads go whole and a ratio removes ratio x heads rounded up, so --auto's sampled ratio
    (never exactly 0) used to remove a head of every attention in every trial: a ratio asking for
    less than half a head now removes none; half a head or more still removes one, MLP ratios as
    sampled."""
    import numpy as np
    from optuna.trial import FixedTrial

    from slimnas.config import MeasureSettings
    from slimnas.data._base import make_splits
    from slimnas.study._auto import AutoObjective, AutoSettings

    torch.manual_seed(0)
    model = build_model(TransformerSpec(depth=2, heads=4, dim=16, vocab_size=VOCAB), (1, 12), 10).eval()
    rng = np.random.default_rng(0)
    data = make_splits("tokens", rng.integers(0, VOCAB, (40, 1, 12)).astype(np.float32), np.arange(40) % 10,
                       None, None, val_fraction=0.25, test_fraction=0.2, seed=0, standardize=False)
    objective = AutoObjective(model, data, AutoSettings(budget=["macs<=60%"]), (), "none", measure=MeasureSettings())
    genes = {"prune:blocks.0.attn.query": 0.1, "prune:blocks.0.fc1": 0.1, "prune:blocks.1.attn.query": 0.13,
             "prune:blocks.1.fc1": 0.3, "importance": "l1"}
    genes.update({f"precision:{n}": "fp32" for n in objective.layers})
    ratios = objective.policy(FixedTrial(genes)).options("prune")["layer_ratios"]
    assert ratios == {"blocks.0.fc1": 0.1, "blocks.1.attn.query": 0.13, "blocks.1.fc1": 0.3}
    pruned = StructuredPruner(ratio=0.0, layer_ratios=ratios).fit(model, input_shape=(1, 12)).model_
    assert [b.attn.heads for b in pruned.blocks] == [4, 3]
    assert objective.heads == {"blocks.0.attn.query": 4, "blocks.1.attn.query": 4}
