"""Weights below 8 bits in the file: int4 (MatMulNBits for Linear layers, packed for convolutions),
GPTQ rounding against round-to-nearest, palettization."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from slimnas.cli._compress import policy_from_options
from slimnas.compress import Palettizer, WeightClusterer, WeightOnlyQuantizer, quantize_model
from slimnas.compress._gptq import gptq_weight, input_hessians
from slimnas.compress._lowbit import pack_codes, uniform_codes, unpack_codes
from slimnas.errors import ConfigError
from slimnas.export import predict
from slimnas.export._proto import payload_bytes


def _ops(data: bytes) -> list[str]:
    return [n.op_type for n in onnx.ModelProto.FromString(data).graph.node]


def test_int4_linear_runs_as_matmul_nbits_and_equals_the_fake_quantized_reference():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    q = WeightOnlyQuantizer(bits=4, group_size=32).fit(model, input_shape=(256,))
    assert _ops(q.onnx_).count("MatMulNBits") == 2 and "Gemm" not in _ops(q.onnx_)
    assert q.report_["run_at_low_bits"] == ["0", "2"]
    x = torch.randn(32, 256)
    with torch.no_grad():
        want = q.reference_model(model)(x).numpy()  # rounded in PyTorch, independently of the file
        float_out = model(x).numpy()
    got = predict(q.onnx_, x)
    assert np.abs(got - want).max() < 1e-4
    assert np.abs(got - float_out).max() > 1e-3  # the weights really are at 4 bits
    # the payload: 4-bit codes, one fp32 scale per 32 weights, fp32 biases
    n = 256 * 64 + 64 * 10
    expected = n // 2 + (64 * 8 + 10 * 2) * 4 + (64 + 10) * 4
    assert payload_bytes(onnx.ModelProto.FromString(q.onnx_)) == expected
    assert q.report_["bytes"] == len(q.onnx_) < 0.2 * len(quantize_model(model, (256,), mode="fp32"))


def test_int4_convolution_is_stored_at_4_bits_and_says_it_runs_at_fp32():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 16, 5), nn.BatchNorm1d(16), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 36, 10))
    with torch.no_grad():
        model[1].running_var.uniform_(0.5, 2.0)
        model[1].weight.uniform_(0.5, 2.0)
    model.eval()
    q = WeightOnlyQuantizer(bits=4, group_size=0).fit(model, input_shape=(1, 40))
    assert "runs at fp32" in q.held_["0"] and "no low-bit convolution" in q.held_["0"]
    assert q.report_["stored_at_low_bits"] == ["0"] and q.report_["run_at_low_bits"] == ["4"]
    x = torch.randn(16, 1, 40)
    with torch.no_grad():
        want = q.reference_model(model)(x).numpy()  # batch norm in eager, folded into the file's weight
    assert np.abs(predict(q.onnx_, x) - want).max() < 1e-4
    conv = next(i for i in onnx.ModelProto.FromString(q.onnx_).graph.initializer if i.data_type == onnx.TensorProto.UINT4)
    assert tuple(conv.dims) == (16, 1, 5) and len(conv.raw_data) == 40  # 80 weights at 4 bits, not 320 fp32 bytes


def test_codes_pack_at_their_bits_and_unpack_back():
    codes = np.random.default_rng(0).integers(0, 8, size=101)
    packed = pack_codes(codes, 3)
    assert len(packed) == -(-101 * 3 // 8)
    assert np.array_equal(unpack_codes(packed, 3, 101), codes)


def test_gptq_moves_a_layers_output_less_than_round_to_nearest():
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(48, 48, generator=g)
    x = torch.randn(512, 48, generator=g) @ mix  # correlated inputs: where rounding errors can cancel
    layer = nn.Linear(48, 16)
    h = input_hessians(layer, [""], x)[""]
    w = layer.weight.detach().numpy()
    rtn, gptq = uniform_codes(w, 4, 16), gptq_weight(w, h, 4, 16)
    err = {k: float(((x @ torch.from_numpy(v.dequantize()).T - x @ layer.weight.detach().T) ** 2).mean())
           for k, v in (("rtn", rtn), ("gptq", gptq))}
    assert err["gptq"] < 0.7 * err["rtn"], err
    assert gptq.codes.min() >= 0 and gptq.codes.max() <= 15


def test_int4_gptq_needs_data_and_a_bad_option_is_one_line():
    with pytest.raises(ConfigError, match="GPTQ"):
        WeightOnlyQuantizer(rounding="gptq").fit(nn.Linear(32, 4), input_shape=(32,))
    with pytest.raises(ConfigError, match="power of two"):
        WeightOnlyQuantizer(group_size=24).validate()
    with pytest.raises(ConfigError, match="MatMulNBits"):
        WeightOnlyQuantizer(bits=3).validate()


def test_quantize_option_takes_the_registered_low_bit_names():
    policy = policy_from_options(prune=None, importance=None, lowrank=None, cluster=None, quantize="int4",
                                 steps=None, distill=False, temperature=4.0)
    assert [(s.compressor, s.options) for s in policy.steps] == [("int4", {"bits": 4})]
    with pytest.raises(ConfigError, match="int4"):
        policy_from_options(prune=None, importance=None, lowrank=None, cluster=None, quantize="int5",
                            steps=None, distill=False, temperature=4.0)


def _mlp_256() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(40, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                         nn.Linear(256, 10)).eval()


def test_palettized_file_holds_packed_indices_plus_tables_and_runs_as_the_eager_model():
    model = _mlp_256()
    p = Palettizer(bits=4).fit(model, input_shape=(1, 40))
    proto = onnx.ModelProto.FromString(p.onnx_)
    assert not any(i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 2 for i in proto.graph.initializer)
    n_weights = 40 * 256 + 256 * 256 + 256 * 10
    packed = sum(-(-lw.codes.size * 4 // 8) for lw in p.weights_.values())
    tables, biases = 3 * 16 * 2, (256 + 256 + 10) * 4  # fp16 tables
    constants = payload_bytes(proto) - packed - tables - biases
    assert 0 <= constants <= 64 * 3  # the unpacking's shape and index scalars
    assert packed == n_weights // 2
    x = torch.randn(64, 1, 40)
    with torch.no_grad():
        want = p.model_(x).numpy()
        assert len(torch.unique(p.model_[3].weight)) == 16
    assert np.abs(predict(p.onnx_, x) - want).max() < 1e-5
    assert p.report_["bytes"] == len(p.onnx_) == p.storage_bytes_


def test_clustering_then_palette_ships_the_size_clustering_counts():
    model = _mlp_256()
    clustered = WeightClusterer(n_clusters=16).fit(model, input_shape=(1, 40))
    p = Palettizer(bits=4, table="fp32").fit(clustered.model_, input_shape=(1, 40))
    for a, b in zip(clustered.model_.parameters(), p.model_.parameters(), strict=True):
        assert torch.equal(a, b)  # the shared values are kept exactly
    assert abs(len(p.onnx_) - clustered.storage_bytes_) <= 0.06 * len(p.onnx_)
    assert len(p.onnx_) < 0.15 * len(quantize_model(model, (1, 40), mode="fp32"))
    policy = policy_from_options(prune=None, importance=None, lowrank=None, cluster=16, quantize=None,
                                 steps=None, distill=False, temperature=4.0)
    assert [(s.compressor, s.options) for s in policy.steps] == [("cluster", {"n_clusters": 16}), ("palette", {"bits": 4, "table": "fp32"})]


def test_palette_per_channel_tables_and_folded_batch_norm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 8, 5), nn.BatchNorm1d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 10))
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 2.0)
    model.eval()
    for granularity in ("tensor", "channel"):
        p = Palettizer(bits=2, granularity=granularity).fit(model, input_shape=(1, 40))
        rows = p.model_[0].weight.reshape(8, -1)
        distinct = [len(torch.unique(r)) for r in rows]
        assert max(distinct) <= 4
        if granularity == "tensor":
            assert len(torch.unique(rows)) <= 4
        x = torch.randn(8, 1, 40)
        with torch.no_grad():
            assert np.abs(predict(p.onnx_, x) - p.model_(x).numpy()).max() < 1e-5


def test_a_linear_on_a_sequence_is_palettized_through_its_transposed_matmul():
    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 16)
            self.head = nn.Linear(16 * 5, 10)

        def forward(self, x):
            return self.head(torch.relu(self.proj(x.reshape(-1, 5, 8))).flatten(1))

    torch.manual_seed(0)
    model = Seq().eval()
    for step in (Palettizer(bits=3), WeightOnlyQuantizer(bits=4, group_size=0)):
        step.fit(model, input_shape=(40,))
        assert not step.not_done(), step.held_
        x = torch.randn(8, 40)
        with torch.no_grad():
            assert np.abs(predict(step.onnx_, x) - step.model_(x).numpy()).max() < 1e-4


def test_int4_with_int8_compute_asks_the_kernel_for_it_and_keeps_the_classes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)).eval()
    exact = WeightOnlyQuantizer(group_size=32).fit(model, input_shape=(256,))
    fast = WeightOnlyQuantizer(group_size=32, compute="int8").fit(model, input_shape=(256,))
    levels = [a.i for n in onnx.ModelProto.FromString(fast.onnx_).graph.node if n.op_type == "MatMulNBits"
              for a in n.attribute if a.name == "accuracy_level"]
    assert levels == [4, 4] and fast.export_tolerance() is None and exact.export_tolerance() == 1e-3
    x = torch.randn(256, 256)
    a, b = predict(exact.onnx_, x), predict(fast.onnx_, x)
    assert 0 < np.abs(a - b).max() < 0.05 * np.abs(a).max()
    assert np.mean(a.argmax(1) == b.argmax(1)) > 0.95
    with pytest.raises(ConfigError, match="compute"):
        WeightOnlyQuantizer(compute="int4").validate()


def test_compress_reports_the_file_it_writes_and_which_layers_only_store_4_bits(tmp_path):
    import json

    from slimnas.compress import CompressionPolicy, compress
    from slimnas.testing import TINY_MODELS, tiny_data

    res = compress(TINY_MODELS["paper_cnn"](), tiny_data(), CompressionPolicy.of(int4={"group_size": 16}), epochs=0,
                   out=tmp_path / "out", latency_repeats=3)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["after"]["bytes"] == (tmp_path / "out" / "model.onnx").stat().st_size < 0.4 * report["before"]["bytes"]
    assert report["steps"]["int4"]["run_at_low_bits"] == ["7"]
    assert any(w.startswith("int4: 0, 2, 4 stored at 4 bits but run at fp32") for w in res.warnings), res.warnings
