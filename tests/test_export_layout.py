"""The ``onnx-fp32-rows`` export: a 1-D CNN with the batch as the rows of one image computes what
the plain file computes, at any batch size, and only the layout-sensitive operators see the
original layout."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from slimnas.export import export_model, predict
from slimnas.export._layout import batch_as_rows
from slimnas.export._onnx import export_proto
from slimnas.measure import OpConfig
from slimnas.models import CNNSpec, ConvLayer, MLPSpec, build_model, mnist1d_paper_cnn

SPECS = {
    "residual, pools, gelu, gap": CNNSpec(layers=(ConvLayer(8, 5, 2, pool="max"), ConvLayer(16, 3, 1),
                                                  ConvLayer(16, 3, 2, pool="avg")), residual=True, head="gap",
                                          activation="gelu", dropout=0.1),
    "dilated, no batch norm, hardswish, flatten": CNNSpec(layers=(ConvLayer(8, 5, 2), ConvLayer(12, 3, 1, dilation=2)),
                                                          head="flatten", batch_norm=False, activation="hardswish"),
    "strided residual projections, sigmoid": CNNSpec(layers=(ConvLayer(6, 3, 2), ConvLayer(10, 5, 2, pool="max")),
                                                     residual=True, activation="sigmoid", head="flatten"),
}


def _random_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Batch-norm statistics and affine terms away from 0 and 1, so folding them is really checked."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            with torch.no_grad():
                for t in (m.running_mean, m.running_var, m.weight, m.bias):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return model


def _models():
    for name, spec in SPECS.items():
        yield name, _random_bn(build_model(spec, (1, 40), 10)).eval()
    yield "paper CNN", mnist1d_paper_cnn().eval()


@pytest.mark.parametrize("name, model", list(_models()), ids=[n for n, _ in _models()])
def test_rows_layout_computes_what_the_plain_file_computes(name, model, tmp_path):
    rows = export_model(model, tmp_path / "rows.onnx", (1, 40), format="onnx-fp32-rows")
    plain = export_model(model, tmp_path / "plain.onnx", (1, 40), format="onnx-fp32")
    assert rows.max_abs_diff < 1e-4 and plain.max_abs_diff < 1e-4
    for batch in (1, 5, 64):  # the batch is the rows: any count, the same outputs
        x = torch.randn(batch, 1, 40, generator=torch.Generator().manual_seed(batch))
        np.testing.assert_allclose(predict(tmp_path / "rows.onnx", x), predict(tmp_path / "plain.onnx", x), atol=1e-5)
    graph = onnx.load(str(tmp_path / "rows.onnx")).graph
    dims = {t.name: len(t.dims) for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(dims[n.input[1]] == 4 for n in convs)  # every convolution runs 2-D, 1 x k
    ops = [n.op_type for n in graph.node]
    assert ops[:2] == ["Transpose", "Unsqueeze"] and ops.count("Transpose") == 2  # in once, back once
    back = ops.index("Squeeze")
    assert not {"Conv", "MaxPool", "AveragePool"} & set(ops[back:])  # back only after the last window
    assert set(ops[back + 2:]) <= {"GlobalAveragePool", "Flatten", "Gemm", "Constant", "Identity"}


def test_models_without_1d_convolutions_are_written_plain(tmp_path):
    mlp = build_model(MLPSpec(widths=(16,)), (1, 40), 10).eval()
    cnn2d = build_model(CNNSpec(layers=(ConvLayer(4, 3, 2),)), (1, 8, 8), 10).eval()
    for model, shape in ((mlp, (1, 40)), (cnn2d, (1, 8, 8))):
        export_model(model, tmp_path / "m.onnx", shape, format="onnx-fp32-rows")
        assert "Transpose" not in [n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node]
    with pytest.raises(ValueError, match="no 1-D convolution"):
        batch_as_rows(export_proto(mlp, (1, 40), verify=False))


def test_rows_runtime_times_the_file_onnx_fp32_rows_writes(tmp_path):
    """``measure.runtime: onnxruntime-rows`` times a 1-D CNN in the rows layout (what the
    ``onnx-fp32-rows`` export ships) and any other model as ``onnxruntime`` does."""
    from slimnas.measure._latency import OnnxRuntimeRowsLatency, runtime_for

    rt = runtime_for({"runtime": "onnxruntime-rows", "latency_batch": 8, "latency_repeats": 5})
    assert isinstance(rt, OnnxRuntimeRowsLatency)
    mlp = build_model(MLPSpec(widths=(16,)), (1, 40), 10).eval()
    for model, rows in ((mnist1d_paper_cnn().eval(), True), (mlp, False)):
        src = rt.source(model, (1, 40), str(tmp_path))
        proto = onnx.load_from_string(src) if isinstance(src, bytes) else onnx.load(str(src))
        assert ("Transpose" in [n.op_type for n in proto.graph.node]) == rows
        stats = rt.measure_stats(model, (1, 40))
        assert stats.runtime == "onnxruntime-rows" and stats.batch == 8 and stats.median_ms > 0


@pytest.mark.parametrize("op", [
    OpConfig("conv1d", 4, 8, (19,), kernel=5, stride=2, padding=2, dilation=1, act="relu"),
    OpConfig("conv1d", 6, 6, (10,), kernel=3, stride=1, padding=2, dilation=2, groups=2),
    OpConfig("maxpool1d", 8, 8, (10,), kernel=2, stride=2),
    OpConfig("avgpool1d", 8, 8, (11,), kernel=2, stride=2, padding=1),
    OpConfig("gap1d", 8, 8, (5,)),
], ids=lambda op: op.op)
def test_rows_op_models_compute_the_plain_op_on_the_batch_as_rows(op):
    """A profile for ``onnxruntime-rows`` times each windowed 1-D op as the rows export runs it:
    on ``(1, C, N, L)``, the same weights, the same numbers as the plain op's."""
    from slimnas.export._session import ort_session
    from slimnas.measure._optime import op_model, time_op

    x = np.random.default_rng(0).standard_normal((7, *op.input_shape())).astype(np.float32)
    plain, rows = ort_session(op_model(op)), ort_session(op_model(op, "rows"))
    y = plain.run(None, {"x": x})[0]
    y_rows = rows.run(None, {"x": np.ascontiguousarray(x.transpose(1, 0, 2)[None])})[0]
    if op.op != "gap1d":  # a window's output stays as rows; the pooling's is back in (N, C, 1)
        y_rows = y_rows[0].transpose(1, 0, 2)
    np.testing.assert_allclose(y_rows, y, atol=1e-5)
    assert time_op(op, batch=8, repeats=5, layout="rows") > 0
