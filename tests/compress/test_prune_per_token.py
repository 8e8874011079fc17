"""Per-token heads of the CNN, recurrent, residual and inverted-residual families (one prediction per position, ``tokens`` or
``causal``) on token ids: a causal one does not read later positions, structured pruning gives
what the original computes with the removed channels zeroed, and the pruned model's ONNX file
outputs what it does in eager mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slimnas.compress import StructuredPruner
from slimnas.errors import ConfigError
from slimnas.export import export_onnx, predict
from slimnas.export._structure import load_compressed, save_compressed
from slimnas.measure import count_macs, count_params
from slimnas.models import (
    CNNSpec,
    ConvLayer,
    InvertedBlock,
    MobileNetSpec,
    ResNetSpec,
    ResStage,
    RNNSpec,
    build_model,
)
from slimnas.spaces import get_family

VOCAB, LENGTH, TAGS = 40, 16, 7
SPECS = {
    "cnn": CNNSpec(layers=(ConvLayer(16, 5, stride=2, pool="max"), ConvLayer(16, 3, dilation=2)), residual=True,
                   vocab_size=VOCAB),
    "rnn": RNNSpec(cell="gru", hidden=12, n_layers=2, bidirectional=True, vocab_size=VOCAB),
    # strided as a classifier would be: the per-token head sets every stride to 1
    "resnet": ResNetSpec(stages=(ResStage(16, 1, 2), ResStage(24, 1, 2)), stem=16, vocab_size=VOCAB),
    "mobilenet": MobileNetSpec(blocks=(InvertedBlock(16, 2, 5, stride=2, se=True), InvertedBlock(16, 2, 3)),
                               stem=16, vocab_size=VOCAB),
}


def _ids(n: int = 6) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, 1, LENGTH), generator=torch.Generator().manual_seed(1)).float()


def _model(family: str, mode: str) -> nn.Module:
    torch.manual_seed(0)
    spec = get_family(family).per_token(SPECS[family], mode)
    model = build_model(spec, (1, LENGTH), TAGS).eval()
    for m in model.modules():  # non-trivial batch norm, so the masked reference is really tested
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("family, mode", [(f, m) for f in SPECS for m in ("tokens", "causal")])
def test_a_per_token_model_is_pruned_and_its_onnx_file_outputs_what_it_does(tmp_path, family, mode):
    original = _model(family, mode)
    x = _ids()
    with torch.no_grad():
        y = original(x)
        later = x.clone()
        later[..., 10:] = (later[..., 10:] + 1) % VOCAB  # other tokens from position 10 on
        changed = original(later)
    assert y.shape == (6, LENGTH, TAGS)
    # causal: the first 10 positions' predictions do not read the later tokens; otherwise they do
    assert torch.equal(changed[:, :10], y[:, :10]) == (mode == "causal")

    p = StructuredPruner(ratio=0.5).fit(original, input_shape=(1, LENGTH))
    assert count_params(p.model_) < count_params(original)
    if family == "cnn":  # the embedding is as wide as the residual sum it feeds
        assert p.model_.embed.embedding_dim == p.model_.features[0].conv.out_channels < 16
    if family in ("resnet", "mobilenet"):  # the last block narrower, the head one score per tag still
        assert p.model_.classifier.in_features < {"resnet": 24, "mobilenet": 16}[family]
        assert p.model_.classifier.out_features == TAGS
    assert count_macs(p.model_, (1, LENGTH)) < count_macs(original, (1, LENGTH))
    with torch.no_grad():
        got, expected = p.model_(x), p.reference_model(original)(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert got.shape == (6, LENGTH, TAGS) and not torch.allclose(got, y, atol=1e-4)

    path = export_onnx(p.model_, tmp_path / "pruned.onnx", (1, LENGTH), verify=True)
    np.testing.assert_allclose(predict(path, x), got.numpy(), atol=1e-4)
    save_compressed(p.model_, tmp_path / "saved")  # rebuilt from the builder and the saved widths
    with torch.no_grad():
        torch.testing.assert_close(load_compressed(_model(family, mode), tmp_path / "saved")(x), got)


def test_a_per_token_head_keeps_the_length_and_a_causal_one_reads_one_direction():
    cnn = get_family("cnn").per_token(SPECS["cnn"], "tokens")
    assert all(lay.stride == 1 and lay.pool == "none" for lay in cnn.layers)
    assert get_family("cnn").summary(cnn) == "cnn 16k5-16k3d2 tokens relu bn res vocab40"
    assert get_family("rnn").per_token(SPECS["rnn"], "tokens").bidirectional
    assert not get_family("rnn").per_token(SPECS["rnn"], "causal").bidirectional
    assert "per_token" not in get_family("cnn").to_dict(SPECS["cnn"])  # arch.json as before when unset
    resnet = get_family("resnet").per_token(SPECS["resnet"], "causal")
    assert get_family("resnet").summary(resnet) == "resnet stem16 16x1-24x1 relu causal vocab40"
    assert {"per_token", "vocab_size"}.isdisjoint(get_family("resnet").to_dict(ResNetSpec(stages=(ResStage(8),))))
    mobile = get_family("mobilenet")  # squeeze-and-excitation pools the whole sequence: kept for tokens alone
    assert [b.se for b in mobile.per_token(SPECS["mobilenet"], "tokens").blocks] == [True, False]
    assert mobile.summary(mobile.per_token(SPECS["mobilenet"], "causal")) == "mobilenet stem16 16e2k5-16e2k3 relu6 " \
                                                                            "causal vocab40"
    with pytest.raises(ConfigError, match=r"^space.resnet.stride: expected stride 1 and no pooling"):
        build_model(ResNetSpec(stages=SPECS["resnet"].stages, vocab_size=VOCAB, per_token="tokens"), (1, LENGTH), TAGS)
    with pytest.raises(ConfigError, match=r"^space.mobilenet.se: expected false with a causal head"):
        build_model(MobileNetSpec(blocks=(InvertedBlock(8, se=True),), per_token="causal"), (4, LENGTH), TAGS)
    assert get_family("mlp").per_token(get_family("mlp").spec(widths=(8,)), "tokens") is None
    with pytest.raises(ConfigError, match=r"^space.cnn.stride: expected stride 1 and no pooling"):
        build_model(SPECS["cnn"].__class__(**{**SPECS["cnn"].__dict__, "per_token": "tokens"}), (1, LENGTH), TAGS)
    with pytest.raises(ConfigError, match=r"^space.rnn.bidirectional: expected false with a causal"):
        build_model(RNNSpec(bidirectional=True, per_token="causal"), (1, LENGTH), TAGS)
