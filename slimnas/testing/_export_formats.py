"""Conformance of a registered export format: files that reproduce the model within the
format's tolerance, read back from the file itself, the caller's model left alone, clear errors."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import torch

from slimnas.errors import ConfigError
from slimnas.export import EXPORT_FORMATS, ExportContext, export_model
from slimnas.export._format import _scrambled_copy
from slimnas.testing._fixtures import EXPORT_SHAPES, SHAPE, TINY_MODELS, tiny_data


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def check_export_format(name: str) -> dict:
    """Run every check on the export format registered as ``name``; raises ``AssertionError``
    naming the first that fails. Returns the largest output difference per model.

    1. Its declaration is complete: a description, a suffix (``""`` for a folder) and a check
       (``atol`` or ``min_agreement``).
    2. On a tiny model of every family (at its :data:`~slimnas.testing._fixtures.EXPORT_SHAPES`),
       :func:`slimnas.export.export_model` writes a file that passes its own verification, on real inputs; the caller's model keeps its weights and
       its training mode.
    3. ``run`` reads what ``write`` wrote: a file written from one model reproduces that model
       and not another one with other weights.
    4. An export replaces a stale file at its path (the verification would catch one it kept);
       a calibrated format refuses to run without calibration samples (:class:`ConfigError`).
    """
    cls = EXPORT_FORMATS.get(name)
    fmt = cls()
    assert cls.name == name and cls.description, f"{name}: registered without a name or description"
    assert isinstance(cls.suffix, str), f"{name}: suffix must be a string ('' for a folder)"
    assert cls.atol is not None or cls.min_agreement is not None, f"{name}: checks nothing against the eager model"
    data = tiny_data()
    diffs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model_name, factory in TINY_MODELS.items():
            model = factory().train()
            before = copy.deepcopy(model)
            path = Path(tmp) / f"{model_name}{cls.suffix}"
            _stale(path, cls, fmt)
            shape = EXPORT_SHAPES[model_name]
            result = export_model(model, path, shape, format=name, calibration=data.x_train[..., :shape[-1]],
                                  inputs=data.x_val[..., :shape[-1]], rebuild=lambda factory=factory: _fresh(factory))
            assert _same_state(model, before) and model.training, f"{name} changed the caller's {model_name}"
            assert result.path == path and path.exists(), f"{name}: nothing written at {path}"
            assert all(p.exists() for p in fmt.outputs(path, ExportContext(SHAPE))), f"{name}: outputs() lists missing files"
            diffs[model_name] = result.max_abs_diff
        _check_reads_the_file(name, fmt, Path(tmp), data)
    if cls.calibrated:
        try:
            export_model(TINY_MODELS["mlp"](), Path(tempfile.gettempdir()) / f"never{cls.suffix}", SHAPE, format=name)
        except ConfigError:
            pass
        else:
            raise AssertionError(f"{name}: exported without calibration samples")
    return {"max_abs_diff": diffs}


def _content(path: Path) -> bytes:
    if path.is_file():
        return path.read_bytes()
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file() and p.name != "Manifest.json")


def _fresh(factory) -> torch.nn.Module:
    """The architecture with other weights than the exported model's (the factories are seeded):
    what a rebuild gives before the file's weights load, as :func:`slimnas.export.export_model`
    makes it by default."""
    return _scrambled_copy(factory())


def _stale(path: Path, cls, fmt) -> None:
    """Leave a file of garbage where the export goes (in the folder, as its first file, for
    folder formats)."""
    target = path / fmt.outputs(path, ExportContext(SHAPE))[0].name if cls.writes_folder() else path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"stale")


def _check_reads_the_file(name: str, fmt, tmp: Path, data) -> None:
    """A file written from ``mlp`` computes ``mlp``'s outputs, not those of a copy with other weights
    (for a format that does not run here: the files of the two differ, so the weights are in it)."""
    model = TINY_MODELS["mlp"]()
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(7)))
    path = tmp / f"reads{type(fmt).suffix}"
    ctx = ExportContext(SHAPE, calibration=data.x_train, rebuild=lambda: _fresh(TINY_MODELS["mlp"]))
    if not type(fmt).runs_here:
        other = tmp / f"twin{type(fmt).suffix}"
        with torch.no_grad():
            fmt.write(model.eval(), path, ctx)
            fmt.write(twin.eval(), other, ctx)
        assert _content(path) != _content(other), f"{name}: the file does not depend on the model's weights"
        return
    with torch.no_grad():
        fmt.write(model.eval(), path, ctx)
        got = np.asarray(fmt.run(path, data.x_val, ctx))
        own, foreign = model(data.x_val).numpy(), twin.eval()(data.x_val).numpy()
    assert np.abs(got - own).max() < np.abs(got - foreign).max(), (
        f"{name}: run() does not compute what write() wrote (it is closer to another model)")
