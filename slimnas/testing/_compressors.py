"""Conformance of a registered compressor: the estimator contract, its reference, export parity,
its place in a policy, and clear errors."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from slimnas.compress import COMPRESSORS, CompressionPolicy, PolicyStep, apply_policy
from slimnas.errors import ConfigError, SlimnasError
from slimnas.export import export_onnx, predict
from slimnas.testing._fixtures import SHAPE, TINY_MODELS, tiny_data

ATOL = 1e-4


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def check_compressor(name: str) -> dict:
    """Run every check on the compressor registered as ``name``; raises ``AssertionError``
    naming the first one that fails. Returns what was checked on which model.

    1. ``__init__`` stores its arguments: ``get_params`` gives them back, ``set_params`` sets them
       and refuses unknown ones with :class:`ConfigError`.
    2. ``fit`` returns ``self``, sets ``model_``, leaves the caller's model unchanged, and its
       ``report_`` is plain JSON; a model it cannot handle gets :class:`SlimnasError`, nothing else.
    3. The compressed model computes what its reference does (:meth:`reference_model`: the
       masked original, the full-rank factorisation's layer, ...), and a written file what the
       model does within the step's tolerance.
    4. The compressed model exports to ONNX and the file matches it (export parity).
    5. As a policy step it builds from its options and runs through :func:`apply_policy`; its
       search genes, where it declares any, give options that build.
    """
    cls = COMPRESSORS.get(name)
    options = dict(cls.conformance_options)
    step = cls.from_options(options)
    params = step.get_params()
    assert all(params[k] == v for k, v in options.items()), f"{name}: get_params does not give back {options}"
    assert step.set_params(**options) is step, f"{name}: set_params must return self"
    try:
        step.set_params(no_such_parameter=1)
    except ConfigError:
        pass
    else:
        raise AssertionError(f"{name}: set_params accepted an unknown parameter")
    for bad in (object(), "model.pt"):
        try:
            cls.from_options(options).fit(bad, input_shape=SHAPE)
        except SlimnasError:
            pass
        else:
            raise AssertionError(f"{name}: fit accepted {bad!r} as a model")

    data, checked = tiny_data(), {}
    x = torch.randn(16, *SHAPE, generator=torch.Generator().manual_seed(0))
    for model_name, factory in TINY_MODELS.items():
        original = factory()
        before = copy.deepcopy(original)
        step = cls.from_options(options)
        try:
            assert step.fit(original, data) is step, f"{name}: fit must return self"
        except SlimnasError:  # a model it cannot handle: one clear error, the caller's model intact
            assert _same_state(original, before), f"{name} changed the caller's {model_name} before refusing it"
            checked[model_name] = "refused"
            continue
        assert isinstance(step.model_, torch.nn.Module), f"{name}: fit did not set model_"
        assert _same_state(original, before), f"{name} changed the caller's {model_name}"
        json.dumps(getattr(step, "report_", {}))
        with torch.no_grad():
            got = step.model_.eval()(x)
        reference = step.reference_model(original)
        if reference is not None:
            with torch.no_grad():
                want = reference.eval()(x)
            assert torch.allclose(got, want, atol=ATOL, rtol=1e-4), (
                f"{name} on {model_name}: the compressed model differs from its reference by "
                f"{float((got - want).abs().max()):.3g}")
        if step.onnx_ is not None:
            tolerance = step.export_tolerance() if hasattr(step, "export_tolerance") else ATOL
            out = predict(step.onnx_, x)
            if tolerance is None:
                agree = float(np.mean(out.argmax(1) == got.argmax(1).numpy()))
                assert agree >= 0.9, f"{name} on {model_name}: the file agrees with the model on {agree:.0%}"
            else:
                diff = float(np.abs(out - got.numpy()).max())
                assert diff <= tolerance, f"{name} on {model_name}: the file differs from the model by {diff:.3g}"
        with tempfile.TemporaryDirectory() as tmp:
            export_onnx(step.model_, Path(tmp) / "m.onnx", SHAPE, verify=True, atol=1e-3)
        checked[model_name] = "reference" if reference is not None else "contract"

    assert any(v != "refused" for v in checked.values()), f"{name} refused every model"
    policy = CompressionPolicy(steps=(PolicyStep(name, options),))
    assert CompressionPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    apply_policy(TINY_MODELS["mlp"](), policy, data, epochs=1)
    if cls.genes:
        values = {}
        for key, gene in cls.genes.items():
            default = gene.key.default
            value = default[0] if isinstance(default, list) else default.get("high") if isinstance(default, dict) else default
            values[key] = dict.fromkeys(["0", "2"], value) if gene.layers else value
        genes_options = cls.options_from_genes(values)
        if genes_options is not None:
            PolicyStep(name, genes_options).build()
    return checked
