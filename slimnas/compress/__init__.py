"""Model compression: structured and unstructured pruning, quantization (and its simulation in
PyTorch), low-rank, clustering, distillation; policies (ordered lists of registered compressors) and the one function that
applies them; MAC allocation; the ``compress`` command's function; the ``onnx-int8`` export
format.

Compressors plug in with :func:`register_compressor`; users import from here
(``slimnas.compress.StructuredPruner``), never from a private module.
"""

from slimnas.compress._allocate import (
    PrunableLayer,
    allocate_by_sensitivity,
    fill_to_macs,
    fit_to_macs,
    list_prunable_layers,
    mac_limits,
    prune_ratios,
    pruned_macs,
    pruned_model,
    round_to_macs,
    scale_to_macs,
    with_prune_ratios,
)
from slimnas.compress._apply import (
    CompressedModel,
    RunningEpochs,
    apply_policy,
    attach_sensitivity,
    compress_and_measure,
    layer_decisions,
    make_retrain,
    measure_artifact,
    pruned_costs,
    retrain_steps,
)
from slimnas.compress._base import (
    WEIGHTED,
    BaseCompressor,
    Gene,
    Pipeline,
    register_compressor,
)
from slimnas.compress._cluster import (
    WeightClusterer,
    clustered_bytes,
    kmeans_1d,
    pack_indices,
    unpack_indices,
)
from slimnas.compress._compress import (
    MAX_DROP,
    MAX_EPOCHS,
    PATIENCE,
    CompressResult,
    compress,
    train_from_scratch,
)
from slimnas.compress._distill import FINETUNE_SPEC, DistillationLoss, FineTuner, Retrain
from slimnas.compress._fakequant import fold_batchnorm, int8_weights, simulate_quantized
from slimnas.compress._hardware import (
    ROUNDINGS,
    LatencyAllocation,
    MacRounding,
    allocate_by_latency,
    channel_importance,
    choose_mac_rounding,
    fit_to_latency,
    knee_index,
    latency_policy,
    measured_share,
    sensitivity_cost,
    widths_to_ratios,
)
from slimnas.compress._int8_format import OnnxInt8
from slimnas.compress._lowrank import (
    LowRankFactorizer,
    factorize_conv,
    factorize_linear,
    factorize_tucker2,
)
from slimnas.compress._precision import PrecisionChoice, choose_precision, compare_int8_formats
from slimnas.compress._prune import (
    IMPORTANCES,
    RNNHiddenPruningFunc,
    StructuredPruner,
    agp_schedule,
    executed_layers,
    linear_schedule,
    list_importances,
)
from slimnas.compress._quantize import OnnxQuantizer, quantize_model
from slimnas.compress._sensitivity import (
    SensitivityAnalyzer,
    SensitivityResult,
    analyze_sensitivity,
)
from slimnas.compress._space import CompressionSpace
from slimnas.compress._speed import (
    SLOWER_TOLERANCE,
    is_slower,
    latency_change,
    latency_summary,
    slower_warning,
)
from slimnas.compress._unstructured import (
    MagnitudePruner,
    load_sparse,
    save_sparse,
    sparse_bytes,
    sparsity,
)
from slimnas.spaces._policy import COMPRESSORS, CompressionPolicy, PolicyStep, list_compressors

__all__ = [
    "COMPRESSORS",
    "FINETUNE_SPEC",
    "WEIGHTED",
    "IMPORTANCES",
    "MAX_DROP",
    "MAX_EPOCHS",
    "PATIENCE",
    "ROUNDINGS",
    "SLOWER_TOLERANCE",
    "BaseCompressor",
    "CompressResult",
    "CompressedModel",
    "CompressionPolicy",
    "CompressionSpace",
    "DistillationLoss",
    "FineTuner",
    "Gene",
    "LatencyAllocation",
    "LowRankFactorizer",
    "MagnitudePruner",
    "OnnxInt8",
    "OnnxQuantizer",
    "Pipeline",
    "PolicyStep",
    "PrecisionChoice",
    "MacRounding",
    "PrunableLayer",
    "RNNHiddenPruningFunc",
    "Retrain",
    "RunningEpochs",
    "SensitivityAnalyzer",
    "SensitivityResult",
    "StructuredPruner",
    "WeightClusterer",
    "agp_schedule",
    "allocate_by_latency",
    "allocate_by_sensitivity",
    "analyze_sensitivity",
    "apply_policy",
    "attach_sensitivity",
    "channel_importance",
    "choose_mac_rounding",
    "choose_precision",
    "clustered_bytes",
    "compare_int8_formats",
    "compress",
    "compress_and_measure",
    "executed_layers",
    "factorize_conv",
    "factorize_linear",
    "factorize_tucker2",
    "fill_to_macs",
    "fold_batchnorm",
    "fit_to_latency",
    "knee_index",
    "sensitivity_cost",
    "fit_to_macs",
    "int8_weights",
    "is_slower",
    "latency_change",
    "latency_summary",
    "slower_warning",
    "kmeans_1d",
    "latency_policy",
    "measured_share",
    "layer_decisions",
    "linear_schedule",
    "list_compressors",
    "list_importances",
    "list_prunable_layers",
    "load_sparse",
    "mac_limits",
    "make_retrain",
    "pack_indices",
    "measure_artifact",
    "prune_ratios",
    "pruned_costs",
    "pruned_macs",
    "pruned_model",
    "quantize_model",
    "register_compressor",
    "retrain_steps",
    "round_to_macs",
    "save_sparse",
    "scale_to_macs",
    "simulate_quantized",
    "sparse_bytes",
    "sparsity",
    "train_from_scratch",
    "unpack_indices",
    "widths_to_ratios",
    "with_prune_ratios",
]
