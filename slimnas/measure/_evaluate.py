"""The one way a candidate is measured: what it became (an :class:`Artifact`: the eager model and
the file that is deployed) and the run's :class:`~slimnas.config.MeasureSettings` go in; every
metric asked for comes out, each measured by its registered rule (:func:`register_metric`).

A search trial, a compressed or warm-started trial, a supernet's sub-network, a ``compress --auto``
policy and ``slimnas compress`` differ only in how they make the artifact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from slimnas.config import MeasureSettings
from slimnas.measure._metric import MeasureContext, measure_metrics
from slimnas.spaces import CompressionPolicy


@dataclass
class Artifact:
    """A candidate as it is deployed.

    Attributes:
        model: the eager model (what the file computes).
        onnx: the deployable file (its bytes, or its path once written).
        input_shape: one sample's shape.
        policy: the compression policy that made it (``None``: not compressed).
        storage_bytes: bytes of a compressed encoding (clustering), when one ran.
    """

    model: nn.Module
    onnx: bytes | str | Path | None
    input_shape: tuple[int, ...]
    policy: CompressionPolicy | None = None
    storage_bytes: int | None = None


def evaluate_artifact(artifact: Artifact, settings: MeasureSettings | None, names: Sequence[str], data: Any = None, *,
             known: dict | None = None) -> dict:
    """Measure each metric of ``names`` on ``artifact`` under ``settings`` (``data``: the splits
    accuracy and loss read) and return the metrics. ``known``: what was measured of this
    candidate already (by the same rules, such as its costs before training); it is kept and
    added to, and a metric in it is not measured again."""
    ctx = MeasureContext(model=artifact.model, input_shape=tuple(artifact.input_shape), onnx=artifact.onnx,
                         data=data, settings=MeasureSettings.of(settings), metrics={} if known is None else known)
    return measure_metrics(list(names), ctx)
