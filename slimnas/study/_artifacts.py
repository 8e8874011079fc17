"""The run folder: one sub-folder per trial with its spec, metrics, weights and ONNX file, owned
by one study (``slimnas-run.json`` says which), written atomically."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from slimnas._files import (
    atomic_path,
    load_weights,
    read_json,
    storage_error,
    temp_path,
    write_json,
)
from slimnas.config._load import read_yaml, save_config
from slimnas.errors import ConfigError, DamagedFileError, SlimnasError
from slimnas.models import build_model
from slimnas.spaces._spec import Candidate
from slimnas.study._driver import pid_alive

MARKER = "slimnas-run.json"
_TMP = re.compile(r"\.(\d+)\.tmp$")
__all__ = ["MARKER", "RunFolder", "write_json"]

T = TypeVar("T")


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
            return read_json(self.marker_path, "a JSON object naming the folder's study ({\"study\": ...})",
                             lambda d: isinstance(d["study"], str))["study"]
        if self.config_path.is_file() and ((self.root / "trials").is_dir() or (self.root / "study.db").is_file()):
            try:
                return read_yaml(self.config_path).get("name")
            except SlimnasError:
                return None
        return None

    def stored_budget(self, study: str) -> list[str]:
        """The budget this folder's run of ``study`` was started with (``[]`` when there is no
        such run or it had none): a resume that gives no budget keeps it."""
        try:
            if not self.config_path.is_file() or self.owner() != study:
                return []
            budget = read_yaml(self.config_path).get("budget") or []
        except SlimnasError:
            return []  # a damaged folder: claiming it says what is wrong
        return [str(b) for b in budget] if isinstance(budget, list) else []

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
        """Create the folder (and parents); ``True`` when this call created it (of processes
        started together, exactly one). Raise :class:`ConfigError` when it cannot be written."""
        created = False
        try:
            self.root.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.root.mkdir()
                created = True
            except FileExistsError:
                if not self.root.is_dir():
                    raise
            probe = self.root / f".write-test.{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            if created:
                self.remove_if_created()
            raise ConfigError("out", "a folder slimnas can write", f"{self.root}: {e.strerror or e}") from None
        return created

    def remove_if_created(self) -> None:
        """Remove a folder this run created and has not used (a set-up that failed)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def open_claimed(self, study: str, storage: str, open_study: Callable[[], T]) -> T:
        """Create the folder, claim it for ``study`` atomically (:meth:`claim`) and open the study
        with ``open_study()``; where that fails, what this call created or claimed is removed (a
        folder this call created but another search claimed first is that search's: left as it is)."""
        created, claimed = self.create(), False
        try:
            claimed = self.claim(study, storage)
            return open_study()
        except BaseException:
            if claimed and created:
                self.remove_if_created()
            elif claimed:
                self.marker_path.unlink(missing_ok=True)
            elif created:  # another search started at once may have claimed the folder this call made
                with contextlib.suppress(OSError):
                    self.root.rmdir()  # only while empty: never the other search's marker or study
            raise

    def claim(self, study: str, storage: str) -> bool:
        """Mark the folder as study ``study``'s, atomically: the marker is created only where
        there is none (a hard link of a complete file, so no reader sees it half-written). Of two
        searches started at once on one folder, the second finds the first's marker and is
        refused with one line. Returns ``True`` when this call wrote the marker."""
        if self.marker_path.is_file():  # claimed already: by this study (a resume) or another
            return self._check_owner(study)
        tmp = temp_path(self.marker_path)
        try:
            tmp.write_text(json.dumps({"study": study, "storage": storage}, indent=2))
            try:
                os.link(tmp, self.marker_path)
                return True
            except FileExistsError:
                pass
        except OSError as e:
            raise storage_error(self.marker_path, e) from None
        finally:
            tmp.unlink(missing_ok=True)
        return self._check_owner(study)

    def _check_owner(self, study: str) -> bool:
        owner = self.owner()
        if owner != study:
            raise ConfigError("out", f"a folder of its own for study {study!r} (it holds study {owner!r}; "
                              "use another --out, or --name to resume that study)", str(self.root))
        return False

    def check_trials_known(self, known: set[int] | None, study: str) -> None:
        """Refuse (one line naming the folder) to run into a folder whose trial folders the study
        does not know (its storage was emptied or deleted, or is another one): the new study's
        trials would overwrite them. ``known=None``: the study's storage is gone altogether."""
        trials = self.root / "trials"
        numbers = sorted(int(p.name) for p in trials.iterdir() if p.is_dir() and p.name.isdigit()) \
            if trials.is_dir() else []
        unknown = numbers if known is None else [n for n in numbers if n not in known]
        if unknown:
            first = self.trial_dir(unknown[0])
            why = ("its storage is missing or empty (study.db deleted or emptied?)" if known is None
                   else "its storage does not hold them (study.db replaced or emptied?)")
            raise ConfigError("out", f"a run folder whose trial folders study {study!r} knows ({len(unknown)} "
                              f"trial folder(s) from {first} on would be overwritten: {why}; restore the storage, "
                              "or use another --out)", str(self.root))

    def remove_stale_temp_files(self) -> list[Path]:
        """Temporary files of writes whose process is gone (killed mid-write)."""
        stale = [p for p in self.root.rglob("*.tmp")
                 if (m := _TMP.search(p.name)) and not pid_alive(int(m.group(1)))]
        for p in stale:
            if p.is_dir():  # an export's staging folder
                shutil.rmtree(p, ignore_errors=True)
            else:
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
        return Candidate.from_dict(read_arch(self.trial_dir(number) / "arch.json"))

    def write_metrics(self, number: int, metrics: dict) -> None:
        write_json(self.trial_dir(number) / "metrics.json", metrics)

    def mark_failed(self, number: int, reason: str) -> None:
        """Say in a trial's folder that it failed (a folder never claims a result the study lacks)."""
        if self.trial_dir(number).is_dir():
            self.write_metrics(number, {"state": "failed", "reason": reason})

    def read_metrics(self, number: int) -> dict:
        path = self.trial_dir(number) / "metrics.json"
        return read_json(path, "a JSON object of the trial's metrics", lambda d: isinstance(d, dict)) \
            if path.is_file() else {}

    def write_weights(self, number: int, model: nn.Module) -> Path:
        path = self.trial_dir(number) / "weights.pt"
        with atomic_path(path) as tmp:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
        return path

    def damage(self, number: int) -> str | None:
        """What is wrong with trial ``number``'s files (``None`` when every file there reads back):
        its JSON documents parse to the right shape, its weights load, its ONNX file parses."""
        d = self.trial_dir(number)
        try:
            if (d / "arch.json").is_file():
                read_arch(d / "arch.json")
            self.read_metrics(number)
            if (d / "weights.pt").is_file():
                load_weights(d / "weights.pt")
            if self.onnx_path(number).is_file():
                check_onnx(self.onnx_path(number))
        except SlimnasError as e:
            return str(e)
        return None

    def onnx_path(self, number: int) -> Path:
        return self.trial_dir(number) / "model.onnx"

    def load_model(self, number: int, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        """Rebuild a trial's model from its spec and load its weights (``weights_only``)."""
        model = build_model(self.read_candidate(number).arch, input_shape, n_classes)
        model.load_state_dict(load_weights(self.trial_dir(number) / "weights.pt"))
        return model.eval()


def read_arch(path: Path) -> dict:
    """A trial's ``arch.json`` (its candidate), checked to be one."""
    return read_json(path, "a JSON object of the trial's candidate ({\"arch\": ..., \"train\": ...})",
                     lambda d: Candidate.from_dict(d) is not None)


def check_onnx(path: Path) -> None:
    """Raise :class:`DamagedFileError` unless ``path`` parses as an ONNX model."""
    import onnx

    what = "an ONNX model"
    if path.stat().st_size == 0:
        raise DamagedFileError(path, "the file is empty", what)
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - any parse failure means a damaged file
        raise DamagedFileError(path, f"it does not parse as ONNX ({type(e).__name__})", what) from None
    if not model.graph.node or not model.graph.output:
        raise DamagedFileError(path, "it holds no graph (truncated?)", what)
