"""Palettization: grouped fp16 tables in the file as they are counted, and the sensitive clustering."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, numpy_helper
from torch import nn

from slimnas.compress import Palettizer
from slimnas.compress._cluster import kmeans_1d
from slimnas.data._base import make_splits
from slimnas.errors import ConfigError
from slimnas.export import predict
from slimnas.export._proto import tensor_nbytes
from slimnas.measure._bits import layer_bits


def _data(n: int = 200, width: int = 32, seed: int = 0):
    """Correlated inputs (8 factors mixed into ``width`` features, plus noise), as real features are."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, 8)) @ rng.normal(size=(8, width)) + 0.3 * rng.normal(size=(n, width))).astype(np.float32)
    return make_splits("scaled", x, np.arange(n) % 4, None, None, val_fraction=0.2, test_fraction=0.2, seed=seed,
                       standardize=False)


def test_grouped_palette_file_holds_packed_indices_plus_fp16_tables():
    torch.manual_seed(0)
    layer = nn.Linear(64, 32).eval()  # 2,048 weights, 32 output channels
    p = Palettizer(bits=4, granularity="group", group_size=8).fit(layer, input_shape=(64,))
    lw = p.weights_[""]
    assert lw.table.shape == (4, 16) and lw.table.dtype == np.float16 and lw.group == 8
    assert lw.n_bytes == 2048 * 4 // 8 + 4 * 16 * 2  # packed indices + four fp16 tables
    proto = onnx.ModelProto.FromString(p.onnx_)
    stored = {tensor_nbytes(i): i for i in proto.graph.initializer}
    assert stored[1024].data_type == TensorProto.UINT4 and stored[128].data_type == TensorProto.FLOAT16
    assert tuple(stored[1024].dims) == (4, 8 * 64)  # one row of codes per table
    # the layer's weight bytes in the file: the indices, the tables and the few constants that unpack them
    (held,) = layer_bits(p.onnx_)
    assert lw.n_bytes <= held.weight_bytes <= lw.n_bytes + 96, held
    # each group of 8 channels shares one table of at most 16 values
    rows = p.model_.weight.detach().reshape(4, 8 * 64)
    assert all(len(torch.unique(r)) <= 16 for r in rows) and len(torch.unique(p.model_.weight)) > 16
    assert p.report_["group_size"] == 8 and p.report_["tables"] == ["fp16"]


@pytest.mark.parametrize("bits", [3, 4])
def test_grouped_palette_file_computes_what_the_model_does(bits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 12, 5), nn.BatchNorm1d(12), nn.ReLU(), nn.Flatten(), nn.Linear(12 * 36, 10))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 2.0)  # a batch norm the exporter folds into the grouped tables' layer
    model.eval()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 1, 40)).astype(np.float32)
    data = make_splits("seq", x, np.arange(120) % 10, None, None, val_fraction=0.2, test_fraction=0.2, seed=0,
                       standardize=False)
    p = Palettizer(bits=bits, granularity="group", group_size=5).fit(model, data)  # 12 channels: groups 5, 5, 2
    assert not p.not_done(), p.held_
    assert p.clustered_ == {"0": "sensitive", "4": "sensitive"}
    assert p.weights_["0"].table.shape[0] == 3
    xt = torch.randn(16, 1, 40)
    with torch.no_grad():
        want = p.model_(xt).numpy()
    assert np.abs(predict(p.onnx_, xt) - want).max() < 1e-4


def test_sensitive_clustering_moves_a_layers_output_less_than_plain_kmeans():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    layer = model[1]
    data = _data()
    x = data.x_train.flatten(1)
    with torch.no_grad():
        ref = layer(x)

    def output_error(weight: torch.Tensor) -> float:
        with torch.no_grad():
            return float(((x @ weight.T + layer.bias - ref) ** 2).mean())

    # plain k-means on the weights' values, each weight to its nearest table value
    w = layer.weight.detach().numpy()
    table, idx = kmeans_1d(w, 8)
    plain = output_error(torch.from_numpy(table[idx]))
    p = Palettizer(bits=3, layers=["1"]).fit(model, data)
    assert p.clustered_ == {"1": "sensitive"}
    assert output_error(p.model_[1].weight.detach()) < 0.5 * plain
    old = Palettizer(bits=3, clustering="kmeans", table="fp32", layers=["1"]).fit(model, data)
    assert output_error(old.model_[1].weight.detach()) == pytest.approx(plain, rel=1e-4)


def test_palette_options_are_checked():
    for bad in ({"granularity": "block"}, {"group_size": 0}, {"table": "fp8"}, {"clustering": "kmedians"}):
        with pytest.raises(ConfigError, match=f"palette.{next(iter(bad))}"):
            Palettizer(**bad).validate()


def test_core_ml_export_holds_a_grouped_palette_as_one_table_per_group():
    from slimnas.export._coreml import palette_of
    from slimnas.testing import SHAPE, TINY_MODELS

    model = TINY_MODELS["paper_cnn"]()  # 25-channel convolutions, a 10-output Linear
    p = Palettizer(bits=4, granularity="group", group_size=5).fit(model, input_shape=SHAPE)
    # what the Core ML export asks coremltools for (per_grouped_channel, group_size 5): 4-bit
    # indices into one fp16 table per 5 output channels, smaller than per channel and than fp16
    assert {n: palette_of(m.weight.detach().numpy()) for n, m in p.model_.named_modules() if n in p.weights_} == {
        n: ("group", 4, 5) for n in p.weights_}
    channel = Palettizer(bits=2, granularity="channel").fit(model, input_shape=SHAPE).model_
    assert palette_of(channel[2].weight.detach().numpy()) == ("channel", 2, 1)


def test_clustered_weights_keep_their_shared_values_in_an_fp16_table():
    from slimnas.compress import WeightClusterer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    clustered = WeightClusterer(n_clusters=8).fit(model, input_shape=(1, 32)).model_
    p = Palettizer(bits=3).fit(clustered, _data())  # sensitive: calibrated, but the values are already shared
    for name in ("1", "3"):
        shared = dict(clustered.named_modules())[name].weight.detach()
        assert torch.equal(dict(p.model_.named_modules())[name].weight.detach(), shared.half().float())


class _Tokens(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.embed(x.long().clamp(0, 49)).mean(1))


def test_embedding_table_is_palettized_in_the_file_and_unpacked_before_its_gather():
    torch.manual_seed(0)
    model = _Tokens().eval()
    x = torch.randint(0, 50, (40, 7)).float()
    p = Palettizer(bits=4).fit(model, input_shape=(7,))
    assert not p.not_done(), p.held_
    lw = p.weights_["embed"]
    assert lw.shape == (50, 16) and len(torch.unique(p.model_.embed.weight)) <= 16
    proto = onnx.ModelProto.FromString(p.onnx_)
    assert not any(numpy_helper.to_array(i).size == 50 * 16 for i in proto.graph.initializer
                   if i.data_type == TensorProto.FLOAT)  # no fp32 table left
    # the file computes what the eager model with the palettized table does
    with torch.no_grad():
        want = p.model_(x).numpy()
    np.testing.assert_allclose(predict(p.onnx_, x.numpy()), want, atol=1e-4)
    # the bits metric charges the Gather its packed indices and table (plus the few unpacking constants)
    gather = next(b for b in layer_bits(p.onnx_) if b.op == "Gather")
    assert gather.weights == 800 and lw.n_bytes <= gather.weight_bytes <= lw.n_bytes + 96, gather
    with pytest.raises(ConfigError, match="embedding"):
        Palettizer(bits=4, layers=["nope"]).fit(model, input_shape=(7,))


def _conv_bn_linear() -> nn.Module:
    """A convolution with a batch norm whose folded factors are far from 1, then a Linear (eval mode)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 24, 3), nn.BatchNorm2d(24), nn.ReLU(), nn.Flatten(), nn.Linear(24 * 36, 5))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 2.0)
        model[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_folded_batch_norm_factors_are_held_at_fp16_and_the_file_computes_what_the_model_does():
    model = _conv_bn_linear()
    p = Palettizer(bits=4, clustering="kmeans").fit(model, input_shape=(3, 8, 8))
    assert p.rounded_norms_ == ["1"] and not p.not_done()
    bn = p.model_[1]
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    assert torch.equal(factor.half().float(), factor) or torch.allclose(factor.half().float(), factor, rtol=1e-6, atol=0)
    proto = onnx.ModelProto.FromString(p.onnx_)
    halves = [numpy_helper.to_array(i) for i in proto.graph.initializer if i.data_type == TensorProto.FLOAT16]
    assert sorted(a.size for a in halves) == [16, 16, 24]  # two tables and the conv's 24 factors, fp16
    assert len(proto.graph.node) <= 7 + 2 * 8  # the model's own nodes and at most 8 per layer to unpack
    x = torch.randn(8, 3, 8, 8)
    with torch.no_grad():
        want = p.model_(x).numpy()
    np.testing.assert_allclose(predict(p.onnx_, x), want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("granularity", "group_size"), [("tensor", 16), ("group", 8), ("group", 5), ("channel", 16)])
def test_4_bit_codes_are_held_as_uint4_and_unpacked_in_a_few_nodes_computing_the_reference(granularity, group_size):
    from slimnas.compress import quantize_model

    model = _conv_bn_linear()
    p = Palettizer(bits=4, granularity=granularity, group_size=group_size, clustering="kmeans").fit(
        model, input_shape=(3, 8, 8))
    assert not p.not_done(), p.held_
    fp32 = quantize_model(model, (3, 8, 8), mode="fp32")
    proto, plain = onnx.ModelProto.FromString(p.onnx_), onnx.ModelProto.FromString(fp32)
    # each layer's codes: one UINT4 tensor, two codes a byte, no unpacking constants beside them
    codes = sorted(tensor_nbytes(i) for i in proto.graph.initializer if i.data_type == TensorProto.UINT4)
    assert codes == [24 * 27 // 2, 5 * 864 // 2]
    # the layers' weight bytes: codes, tables, the convolution's 24 fp16 batch norm factors and at most
    # 64 bytes of unpacking constants (a shape, range scalars)
    conv, linear = layer_bits(p.onnx_)
    assert linear.weight_bytes == p.weights_["4"].n_bytes
    assert 0 <= conv.weight_bytes - p.weights_["0"].n_bytes - 24 * 2 <= 64, conv
    # unpacking, both layers: Cast the codes, Gather (GatherElements from a table per group, and a Reshape
    # to the weight's shape), Cast the fp16 values; for the convolution also Cast and Mul its factors; a
    # last, smaller group gathers its rows' tables (3 nodes). The opset 13 unpacking took 14 to 24 nodes
    ragged = granularity == "group" and 24 % group_size != 0
    unpack = len(proto.graph.node) - len(plain.graph.node)
    assert unpack <= 9 + 3 * ragged, unpack
    # the file's bytes beside the layers' weights: at most 300-500 above the fp32 file's (528-901 before)
    rest = [len(f) - sum(lay.weight_bytes for lay in layer_bits(f)) for f in (p.onnx_, fp32)]
    assert rest[0] - rest[1] <= (300 if granularity == "tensor" else 500 if ragged else 400), rest
    x = torch.randn(8, 3, 8, 8)
    with torch.no_grad():
        want = p.reference_model(model)(x).numpy()
    np.testing.assert_allclose(predict(p.onnx_, x), want, atol=1e-5, rtol=1e-5)


def test_a_runtime_without_uint4_gets_the_opset_13_unpacking_computing_the_same(monkeypatch):
    from slimnas.compress import _lowbit

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 8, 5), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 10)).eval()
    new = Palettizer(bits=4, clustering="kmeans").fit(model, input_shape=(1, 40))
    monkeypatch.setattr(_lowbit, "runtime_takes_uint4", lambda: False)
    old = Palettizer(bits=4, clustering="kmeans").fit(model, input_shape=(1, 40))
    opsets = [onnx.ModelProto.FromString(p.onnx_).opset_import[0].version for p in (new, old)]
    assert opsets == [21, 17] and len(new.onnx_) < len(old.onnx_)
    assert not any(i.data_type == TensorProto.UINT4 for i in onnx.ModelProto.FromString(old.onnx_).graph.initializer)
    x = torch.randn(8, 1, 40)
    assert np.array_equal(predict(new.onnx_, x), predict(old.onnx_, x))
