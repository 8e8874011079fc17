"""The run folder: one sub-folder per trial with its spec, metrics, weights and ONNX file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from slimnas.config import save_config
from slimnas.models import build_model
from slimnas.spaces import Candidate


def write_json(path: Path, data) -> None:
    """Write JSON atomically, so an interrupted run never leaves a half-written file."""
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")  # workers on a shared folder never share one
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=float))
    os.replace(tmp, path)


class RunFolder:
    """Paths and readers/writers of one run folder (``runs/<study-name>/``).

    Layout::

        config.yaml  study.db  pareto.json
        trials/00007/arch.json  metrics.json  weights.pt  model.onnx
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def pareto_path(self) -> Path:
        return self.root / "pareto.json"

    def write_config(self, resolved: dict) -> None:
        """``config.yaml``: the resolved configuration, from which the run can be reproduced."""
        save_config(resolved, self.config_path)

    def trial_dir(self, number: int) -> Path:
        return self.root / "trials" / f"{number:05d}"

    def write_candidate(self, number: int, candidate: Candidate) -> Path:
        d = self.trial_dir(number)
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "arch.json", candidate.to_dict())
        return d

    def read_candidate(self, number: int) -> Candidate:
        return Candidate.from_dict(json.loads((self.trial_dir(number) / "arch.json").read_text()))

    def write_metrics(self, number: int, metrics: dict) -> None:
        write_json(self.trial_dir(number) / "metrics.json", metrics)

    def read_metrics(self, number: int) -> dict:
        path = self.trial_dir(number) / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def write_weights(self, number: int, model: nn.Module) -> Path:
        path = self.trial_dir(number) / "weights.pt"
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
        return path

    def onnx_path(self, number: int) -> Path:
        return self.trial_dir(number) / "model.onnx"

    def load_model(self, number: int, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        """Rebuild a trial's model from its spec and load its weights (``weights_only``)."""
        model = build_model(self.read_candidate(number).arch, input_shape, n_classes)
        state = torch.load(self.trial_dir(number) / "weights.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model.eval()
