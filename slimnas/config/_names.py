"""Names every layer shares, defined once here (the lowest layer, so configs and device profiles
can check them): the default latency runtime and the numeric precisions.

A precision is registered once with what it can do (:func:`register_precision`); the lists the
package checks against are read from the registrations (:func:`precision_names`), in the order
they were registered. A new precision (``int4``, say) is one ``register_precision`` call, here
for a built-in or in a plug-in, plus the code that writes or simulates it.

Example:
    >>> precision_names()
    ('fp32', 'fp16', 'bf16', 'int8')
    >>> precision_names("layer"), precision_names("simulated")
    (('fp32', 'fp16', 'int8'), ('fp32', 'int8'))
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

#: the latency runtime a run times on unless it names another (``measure.runtime``, a device
#: profile's ``runtime``): ONNX Runtime on the CPU, registered under this name by :mod:`slimnas.measure`
DEFAULT_RUNTIME = "onnxruntime"


@dataclass(frozen=True)
class Precision:
    """A numeric precision and where the package supports it.

    Attributes:
        name: what configs, profiles and reports call it (``int8``).
        bits: bits per stored weight.
        layer: the quantizer writes it for single layers into an ONNX file
            (``quantize.layer_precision``, ``compress --auto --precision``).
        simulated: a search can simulate it per layer in training (fake-quantized: the
            ``supernet`` strategy's ``precision`` choices).
    """

    name: str
    bits: int
    layer: bool = False
    simulated: bool = False


_PRECISIONS: dict[str, Precision] = {}


def register_precision(name: str, *, bits: int, layer: bool = False, simulated: bool = False) -> Precision:
    """Register the precision ``name`` (device profiles, runtimes and the quantizer accept it)."""
    if name in _PRECISIONS:
        warnings.warn(f"precision {name!r} is registered again; the new one wins", stacklevel=2)
    _PRECISIONS[name] = Precision(name, bits, layer, simulated)
    return _PRECISIONS[name]


def unregister_precision(name: str) -> None:
    """Remove ``name`` (tests that register a precision for a while)."""
    _PRECISIONS.pop(name, None)


def precision_names(capability: str | None = None) -> tuple[str, ...]:
    """The registered precisions in registration order; with ``capability`` (``"layer"`` or
    ``"simulated"``, a :class:`Precision` field) those that have it."""
    return tuple(n for n, p in _PRECISIONS.items() if capability is None or getattr(p, capability))


def get_precision(name: str) -> Precision:
    """The precision registered as ``name`` (``KeyError`` when there is none)."""
    return _PRECISIONS[name]


register_precision("fp32", bits=32, layer=True, simulated=True)
register_precision("fp16", bits=16, layer=True)
register_precision("bf16", bits=16)
register_precision("int8", bits=8, layer=True, simulated=True)

#: the precisions a run chooses from unless told otherwise (``compress --auto --precision``, a
#: device profile built by ``slimnas device profile``)
DEFAULT_PRECISIONS = ("fp32", "int8")


def precision_text(capability: str | None = None) -> str:
    """The precisions as an error message lists them: ``'fp32', 'fp16' or 'int8'``."""
    names = [f"'{n}'" for n in precision_names(capability)]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
