"""Quantization through ONNX Runtime; every figure comes from running the file."""

from __future__ import annotations

import onnx
import pytest
import torch
from compress_models import MODELS, SHAPE

from slimnas.compress import OnnxQuantizer, Retrain, quantize_model
from slimnas.compress._fakequant import int8_weights
from slimnas.errors import ConfigError
from slimnas.export import onnx_accuracy, predict
from slimnas.export._int8 import int8_weight_max
from slimnas.export._proto import size_report
from slimnas.export._session import max_abs_diff


@pytest.mark.parametrize("name", list(MODELS))
def test_fp32_onnx_matches_eager(name):
    model = MODELS[name]()
    data = quantize_model(model, SHAPE, mode="fp32")
    assert max_abs_diff(data, model, torch.randn(16, *SHAPE)) < 1e-4


@pytest.mark.parametrize("name", ["residual_cnn", "mlp", "gru"])
def test_fp16_halves_the_payload_and_stays_close(name):
    model = MODELS[name]()

    def float_bytes(data: bytes, dtype: int) -> int:
        proto = onnx.ModelProto.FromString(data)
        return sum(len(i.raw_data) for i in proto.graph.initializer if i.data_type == dtype)

    fp32 = quantize_model(model, SHAPE, mode="fp32")
    data = quantize_model(model, SHAPE, mode="fp16")
    assert float_bytes(data, onnx.TensorProto.FLOAT) == 0
    assert float_bytes(data, onnx.TensorProto.FLOAT16) * 2 == float_bytes(fp32, onnx.TensorProto.FLOAT)
    assert len(data) < len(fp32)
    assert max_abs_diff(data, model, torch.randn(16, *SHAPE)) < 2e-2


def test_lean_files_carry_no_names_or_doc_strings():
    proto = onnx.ModelProto.FromString(quantize_model(MODELS["residual_cnn"](), SHAPE, mode="fp32"))
    assert all(n.name == "" and n.doc_string == "" for n in proto.graph.node)
    assert all(len(i.name) <= 4 for i in proto.graph.initializer)
    assert [i.name for i in proto.graph.input] == ["input"]


def test_static_int8_is_small_and_accurate(trained_cnn, data):
    q = OnnxQuantizer(mode="int8").fit(trained_cnn, data)
    fp32 = size_report(quantize_model(trained_cnn, SHAPE, mode="fp32"))
    assert q.report_["weight_bytes"] <= 0.31 * fp32["weight_bytes"]
    ops = {n.op_type for n in onnx.ModelProto.FromString(q.onnx_).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # the accuracy is ONNX Runtime's, on the file itself
    assert q.val_accuracy_ == onnx_accuracy(q.onnx_, data.x_val, data.y_val)
    assert q.float_val_accuracy_ - q.val_accuracy_ < 0.03
    agree = (predict(q.onnx_, data.x_val).argmax(1) == trained_cnn(data.x_val).argmax(1).numpy()).mean()
    assert agree > 0.9


def _int8_weights(data: bytes):
    from onnx import numpy_helper

    proto = onnx.ModelProto.FromString(data)
    return [numpy_helper.to_array(i) for i in proto.graph.initializer
            if i.data_type == onnx.TensorProto.INT8 and len(i.dims) > 1]


@pytest.mark.parametrize("mode", ["int8", "int8-dynamic"])
def test_int8_weight_grid_follows_reduce_range(trained_cnn, trained_mlp, data, mode):
    """Where the machine's uint8 x int8 kernels saturate (x86 without VNNI), weights go on a 7-bit
    grid by default; the simulated and QAT grids are the same one."""
    model = trained_cnn if mode == "int8" else trained_mlp
    calib = data.x_train[:128]
    top = {r: max(abs(int(w.min())), int(w.max())) for r in (False, True) for w in [
        max(_int8_weights(quantize_model(model, SHAPE, mode=mode, calibration=calib, reduce_range=r)),
            key=lambda w: abs(w).max())]}
    assert top[True] <= 64 < top[False] <= 127
    default = _int8_weights(quantize_model(model, SHAPE, mode=mode, calibration=calib))
    assert max(int(abs(w).max()) for w in default) == (64 if int8_weight_max() == 64 else top[False])
    w = next(p for p in model.parameters() if p.dim() > 1).detach()
    scale = w.reshape(len(w), -1).abs().amax(1) / int8_weight_max()
    levels = (int8_weights(w).reshape(len(w), -1) / scale[:, None]).round().abs().amax()
    assert int(levels) == int8_weight_max()


def test_dynamic_int8_quantizes_linear_layers(trained_mlp, data):
    q = OnnxQuantizer(mode="int8-dynamic").fit(trained_mlp, data)
    ops = {n.op_type for n in onnx.ModelProto.FromString(q.onnx_).graph.node}
    assert "MatMulInteger" in ops
    assert q.report_["weight_bytes"] < 0.35 * 4 * sum(p.numel() for p in trained_mlp.parameters())
    assert abs(q.float_val_accuracy_ - q.val_accuracy_) < 0.03


def test_per_layer_precision(trained_cnn, data):
    data_ = quantize_model(trained_cnn, SHAPE, mode="fp32", calibration=data.x_train[:128],
                           layer_precision={"2": "int8", "4": "fp16"})
    proto = onnx.ModelProto.FromString(data_)
    int8 = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    fp16 = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert [tuple(i.dims) for i in int8] == [(25, 25, 3)]
    assert sorted(tuple(i.dims) for i in fp16) == [(25,), (25, 25, 3)]
    with pytest.raises(ConfigError, match="layer_precision"):
        quantize_model(trained_cnn, SHAPE, mode="fp32", layer_precision={"nope": "int8"})


def test_qat_runs_when_static_int8_loses_too_much(trained_cnn, data):
    ptq = OnnxQuantizer(mode="int8").fit(trained_cnn, data)
    never = OnnxQuantizer(mode="int8", max_drop=1.0, qat=Retrain(epochs=1)).fit(trained_cnn, data)
    assert never.qat_val_accuracy_ is None and not never.qat_ran_ and never.onnx_ == ptq.onnx_
    q = OnnxQuantizer(mode="int8", max_drop=-1.0, qat=Retrain(epochs=1)).fit(trained_cnn, data)
    # QAT ran: its file was measured, and the better of the two files is kept
    assert q.qat_val_accuracy_ is not None
    assert q.val_accuracy_ == max(ptq.val_accuracy_, q.qat_val_accuracy_)
    assert q.val_accuracy_ == onnx_accuracy(q.onnx_, data.x_val, data.y_val)
    tuned = any(not torch.equal(a, b) for a, b in zip(q.model_.state_dict().values(),
                                                       trained_cnn.state_dict().values(), strict=True))
    assert q.qat_ran_ == (q.qat_val_accuracy_ > ptq.val_accuracy_) == tuned == (q.onnx_ != ptq.onnx_)
    assert q.report_["qat"] == q.qat_ran_ and q.report_["qat_val_accuracy"] == q.qat_val_accuracy_


def test_bad_mode():
    with pytest.raises(ConfigError, match="quantize.mode"):
        OnnxQuantizer(mode="int4").fit(MODELS["mlp"](), input_shape=SHAPE)
    with pytest.raises(ConfigError, match="quantize.data"):
        OnnxQuantizer(mode="int8").fit(MODELS["mlp"](), input_shape=SHAPE)
