"""Model compression: structured and unstructured pruning, quantization, low-rank, clustering, distillation."""

from slimnas.compress._base import BaseCompressor, Pipeline
from slimnas.compress._distill import DistillationLoss, FineTuner, Retrain
from slimnas.compress._prune import IMPORTANCES, RNNHiddenPruner, StructuredPruner, list_importances

__all__ = [
    "IMPORTANCES",
    "BaseCompressor",
    "DistillationLoss",
    "FineTuner",
    "Pipeline",
    "RNNHiddenPruner",
    "Retrain",
    "StructuredPruner",
    "list_importances",
]
