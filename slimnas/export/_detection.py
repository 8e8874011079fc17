"""A detector's exported ONNX file with named outputs: slimnas runs and measures a detector
through one packed output ``(N, K, 6)`` (:class:`~slimnas.models._detector.DetectorModel`);
``slimnas export`` then splits it, inside the file, into what a detector's user reads:
``boxes`` ``(N, K, 4)`` (``x1, y1, x2, y2`` in pixels), ``scores`` ``(N, K)`` and ``labels``
``(N, K)`` (int64); a score of 0 marks a row without a detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from slimnas._files import atomic_write
from slimnas.errors import SlimnasError

#: the outputs of an exported detector, in order
OUTPUTS = ("boxes", "scores", "labels")


def split_detection_outputs(path: str | Path) -> list[str]:
    """Rewrite the ONNX file ``path`` (one output ``(N, K, 6)``) so that it answers with
    :data:`OUTPUTS`, and check them against the packed output on random inputs; returns the
    output names."""
    path = Path(path)
    model = onnx.load(str(path))
    graph = model.graph
    if len(graph.output) != 1:
        raise SlimnasError(f"{path}: a detector's file with one packed output, not {len(graph.output)}")
    packed = graph.output[0]
    dims = [d.dim_param or d.dim_value for d in packed.type.tensor_type.shape.dim]
    if len(dims) != 3 or dims[2] != 6:
        raise SlimnasError(f"{path}: a detector's packed output shaped (N, K, 6), not {dims}")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    consts = {"_det_axis": [2], **{f"_det_{k}": [v] for k, v in (("0", 0), ("4", 4), ("5", 5), ("6", 6))}}
    for name, value in consts.items():
        graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), name))
    src = packed.name

    def squeeze(inp: str, out: str):
        if opset >= 13:
            return helper.make_node("Squeeze", [inp, "_det_axis"], [out])
        return helper.make_node("Squeeze", [inp], [out], axes=[2])

    graph.node.extend([
        helper.make_node("Slice", [src, "_det_0", "_det_4", "_det_axis"], ["boxes"]),
        helper.make_node("Slice", [src, "_det_4", "_det_5", "_det_axis"], ["_det_scores"]),
        squeeze("_det_scores", "scores"),
        helper.make_node("Slice", [src, "_det_5", "_det_6", "_det_axis"], ["_det_labels"]),
        squeeze("_det_labels", "_det_labels_f"),
        helper.make_node("Round", ["_det_labels_f"], ["_det_labels_r"]),
        helper.make_node("Cast", ["_det_labels_r"], ["labels"], to=TensorProto.INT64),
    ])
    del graph.output[:]
    kind = packed.type.tensor_type.elem_type  # float (fp32, int8 files), float16 (fp16 ones)
    graph.output.extend([helper.make_tensor_value_info("boxes", kind, [dims[0], dims[1], 4]),
                         helper.make_tensor_value_info("scores", kind, dims[:2]),
                         helper.make_tensor_value_info("labels", TensorProto.INT64, dims[:2])])
    onnx.checker.check_model(model)
    _check(path, model.SerializeToString())
    atomic_write(path, model.SerializeToString())
    return list(OUTPUTS)


def _check(path: Path, split: bytes) -> None:
    """The split file answers as the packed one did, part by part."""
    import onnxruntime as ort

    before = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(split, providers=["CPUExecutionProvider"])
    inp = before.get_inputs()[0]
    shape = [2 if not isinstance(d, int) else d for d in inp.shape]
    x = np.random.default_rng(0).random(shape, dtype=np.float32).astype(np.float16 if "float16" in inp.type
                                                                         else np.float32)
    (packed,) = before.run(None, {inp.name: x})
    boxes, scores, labels = after.run(None, {after.get_inputs()[0].name: x})
    if not (np.array_equal(boxes, packed[..., :4]) and np.array_equal(scores, packed[..., 4])
            and np.array_equal(labels, np.round(packed[..., 5]).astype(np.int64))):
        raise SlimnasError(f"{path}: the file with named outputs does not answer as the packed one")
