"""Model compression: structured and unstructured pruning, quantization (and its simulation in
PyTorch), low-rank, clustering, distillation; policies (ordered lists of registered compressors) and the one function that
applies them; MAC allocation; the ``compress`` command's function; the ``onnx-int8`` export
format.

Compressors plug in with :func:`register_compressor`; users import from here
(``slimnas.compress.StructuredPruner``), never from a private module.
"""

from slimnas.compress import (
    _fakequant,  # noqa: F401 (loaded as before)
    _int8_format,  # noqa: F401 (loaded as before)
    _space,  # noqa: F401 (loaded as before)
)
from slimnas.compress._allocate import (
    PrunableLayer,
    fill_to_macs,
    list_prunable_layers,
    prune_ratios,
    pruned_model,
    scale_to_macs,
)
from slimnas.compress._apply import CompressedModel, apply_policy, measure_artifact
from slimnas.compress._base import (
    BaseCompressor,
    Gene,
    Pipeline,
    register_compressor,
)
from slimnas.compress._cluster import WeightClusterer
from slimnas.compress._compress import CompressResult, compress
from slimnas.compress._distill import FINETUNE_SPEC, DistillationLoss, Retrain
from slimnas.compress._hardware import (
    LatencyAllocation,
    allocate_by_latency,
    fit_to_latency,
    latency_policy,
    measured_share,
    sensitivity_cost,
    widths_to_ratios,
)
from slimnas.compress._int4 import WeightOnlyQuantizer
from slimnas.compress._lowrank import LowRankFactorizer
from slimnas.compress._palette import Palettizer
from slimnas.compress._precision import PrecisionChoice, choose_precision, compare_int8_formats
from slimnas.compress._prune import (
    IMPORTANCES,
    StructuredPruner,
    list_importances,
    needs_gradients,
    register_importance,
)
from slimnas.compress._quantize import OnnxQuantizer, quantize_model
from slimnas.compress._sensitivity import (
    SensitivityAnalyzer,
    SensitivityResult,
    analyze_sensitivity,
)
from slimnas.compress._speed import latency_change
from slimnas.compress._unstructured import MagnitudePruner
from slimnas.spaces._policy import COMPRESSORS, CompressionPolicy, PolicyStep, list_compressors

__all__ = [
    "COMPRESSORS",
    "FINETUNE_SPEC",
    "IMPORTANCES",
    "needs_gradients",
    "register_importance",
    "BaseCompressor",
    "CompressResult",
    "CompressedModel",
    "CompressionPolicy",
    "DistillationLoss",
    "Gene",
    "LatencyAllocation",
    "LowRankFactorizer",
    "Palettizer",
    "WeightOnlyQuantizer",
    "MagnitudePruner",
    "OnnxQuantizer",
    "Pipeline",
    "PolicyStep",
    "PrecisionChoice",
    "PrunableLayer",
    "Retrain",
    "SensitivityAnalyzer",
    "SensitivityResult",
    "StructuredPruner",
    "WeightClusterer",
    "allocate_by_latency",
    "analyze_sensitivity",
    "apply_policy",
    "choose_precision",
    "compare_int8_formats",
    "compress",
    "fill_to_macs",
    "fit_to_latency",
    "sensitivity_cost",
    "latency_change",
    "latency_policy",
    "measured_share",
    "list_compressors",
    "list_importances",
    "list_prunable_layers",
    "measure_artifact",
    "prune_ratios",
    "pruned_model",
    "quantize_model",
    "register_compressor",
    "scale_to_macs",
    "widths_to_ratios",
]
