"""The run folder: one sub-folder per trial with its spec, metrics, weights and ONNX file, owned
by one study (``slimnas-run.json`` says which), written atomically."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from torch import nn

from slimnas.config import read_yaml, save_config
from slimnas.errors import ConfigError, SlimnasError
from slimnas.models import build_model
from slimnas.spaces import Candidate
from slimnas.study._driver import pid_alive

MARKER = "slimnas-run.json"
_TMP = re.compile(r"\.(\d+)\.tmp$")


def write_json(path: Path, data) -> None:
    """Write JSON atomically, so an interrupted run never leaves a half-written file."""
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")  # workers on a shared folder never share one
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=float))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)




class RunFolder:
    """Paths and readers/writers of one run folder (``runs/<study-name>/``).

    Layout::

        config.yaml  study.db  pareto.json
        trials/00007/arch.json  metrics.json  weights.pt  model.onnx
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def marker_path(self) -> Path:
        return self.root / MARKER

    def owner(self) -> str | None:
        """The study this folder belongs to (``None`` for a new or empty folder). A folder written
        before folders carried a marker belongs to the study its ``config.yaml`` names."""
        if self.marker_path.is_file():
            return json.loads(self.marker_path.read_text()).get("study")
        if self.config_path.is_file() and ((self.root / "trials").is_dir() or (self.root / "study.db").is_file()):
            try:
                return read_yaml(self.config_path).get("name")
            except SlimnasError:
                return None
        return None

    def check_claim(self, study: str) -> None:
        """Raise :class:`ConfigError` unless this folder can hold study ``study``: it does not
        exist yet, is empty, or already belongs to that study. Nothing is created or changed."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise ConfigError("out", "a folder for the run", f"{root} is a file")
        if not root.is_dir():
            return
        owner = self.owner()
        if owner is not None and owner != study:
            raise ConfigError("out", f"a folder of its own for study {study!r} (it holds study {owner!r}; "
                              "use another --out, or --name to resume that study)", str(root))
        entries = sorted(p.name for p in root.iterdir())
        if owner is None and entries:
            raise ConfigError("out", "an empty folder or a slimnas run folder (it holds other files: "
                              f"{', '.join(entries[:4])}{', ...' if len(entries) > 4 else ''})", str(root))

    def create(self) -> bool:
        """Create the folder (and parents); ``True`` when it did not exist. Raise
        :class:`ConfigError` when it cannot be written."""
        existed = self.root.is_dir()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-test.{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            if not existed:
                self.remove_if_created()
            raise ConfigError("out", "a folder slimnas can write", f"{self.root}: {e.strerror or e}") from None
        return not existed

    def remove_if_created(self) -> None:
        """Remove a folder this run created and has not used (a set-up that failed)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def write_marker(self, study: str, storage: str) -> None:
        if not self.marker_path.is_file():
            write_json(self.marker_path, {"study": study, "storage": storage})

    def remove_stale_temp_files(self) -> list[Path]:
        """Temporary files of writes whose process is gone (killed mid-write)."""
        stale = [p for p in self.root.rglob("*.tmp")
                 if (m := _TMP.search(p.name)) and not pid_alive(int(m.group(1)))]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

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

    def mark_failed(self, number: int, reason: str) -> None:
        """Say in a trial's folder that it failed (a folder never claims a result the study lacks)."""
        if self.trial_dir(number).is_dir():
            self.write_metrics(number, {"state": "failed", "reason": reason})

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
