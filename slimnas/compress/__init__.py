"""Model compression: structured and unstructured pruning, quantization, low-rank, clustering,
distillation; per-layer policies for the automated search; the ``compress`` command's function.

Users import from here (``slimnas.compress.StructuredPruner``), never from a private module.
"""

from slimnas.compress._base import BaseCompressor, Pipeline
from slimnas.compress._cluster import WeightClusterer, clustered_bytes, kmeans_1d
from slimnas.compress._distill import DistillationLoss, FineTuner, Retrain
from slimnas.compress._export import load_compressed, save_compressed
from slimnas.compress._lowrank import (
    LowRank,
    LowRankFactorizer,
    factorize_conv,
    factorize_linear,
    factorize_tucker2,
)
from slimnas.compress._policy import (
    CompressedModel,
    CompressionPolicy,
    PrunableLayer,
    apply_policy,
    list_prunable_layers,
    measure_artifact,
    scale_to_macs,
)
from slimnas.compress._prune import (
    IMPORTANCES,
    RNNHiddenPruner,
    StructuredPruner,
    agp_schedule,
    linear_schedule,
    list_importances,
)
from slimnas.compress._quantize import OnnxQuantizer, quantize_model
from slimnas.compress._run import CompressResult, compress, load_model, load_weights
from slimnas.compress._sensitivity import (
    SensitivityAnalyzer,
    SensitivityResult,
    analyze_sensitivity,
)
from slimnas.compress._unstructured import (
    MagnitudePruner,
    load_sparse,
    save_sparse,
    sparse_bytes,
    sparsity,
)

__all__ = [
    "IMPORTANCES",
    "BaseCompressor",
    "CompressResult",
    "CompressedModel",
    "CompressionPolicy",
    "DistillationLoss",
    "FineTuner",
    "LowRank",
    "LowRankFactorizer",
    "MagnitudePruner",
    "OnnxQuantizer",
    "Pipeline",
    "PrunableLayer",
    "RNNHiddenPruner",
    "Retrain",
    "SensitivityAnalyzer",
    "SensitivityResult",
    "StructuredPruner",
    "WeightClusterer",
    "agp_schedule",
    "analyze_sensitivity",
    "apply_policy",
    "clustered_bytes",
    "compress",
    "factorize_conv",
    "factorize_linear",
    "factorize_tucker2",
    "kmeans_1d",
    "linear_schedule",
    "list_importances",
    "list_prunable_layers",
    "load_compressed",
    "load_model",
    "load_sparse",
    "load_weights",
    "measure_artifact",
    "quantize_model",
    "save_compressed",
    "save_sparse",
    "scale_to_macs",
    "sparse_bytes",
    "sparsity",
]
