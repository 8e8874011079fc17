"""Device profiles: what a deployment target runs (runtime, threads, batch, precisions), the
limits it imposes (file bytes, RAM), and a latency lookup table measured on it by
``slimnas device profile``. Plain values here, read from and written to YAML; the measurement
layer (:mod:`slimnas.measure`) resolves the names and builds the predictor from the table.

A profile is named by a path to a YAML file or by a built-in name (``mcu``, ``phone``, ``server-cpu``).
Besides the precisions its latency runtime times, a profile may name the weight precisions the
target runs (``weight_precisions``: what ``compress --auto``'s allocation may choose per layer,
:func:`allowed_precisions`) and the export formats it loads (``formats``: what ``slimnas export``
offers, :func:`allowed_formats`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slimnas.config._load import read_yaml
from slimnas.config._names import DEFAULT_RUNTIME, precision_names
from slimnas.errors import ConfigError

PROFILE_VERSION = 1

#: example profiles without a latency table (build one on the device: ``slimnas device profile``)
BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    "mcu": {
        "name": "mcu",
        "description": "microcontroller-class target: int8 only, batch 1, one thread; the file must fit "
                       "256 KB of flash and the activations 64 KB of RAM (Cortex-M4/M7 class). Latency is "
                       "measured here in ONNX Runtime at int8 unless a table measured on the device is added.",
        "runtime": "onnxruntime-int8",
        "threads": 1,
        "batch": [1],
        "precisions": ["int8"],
        "weight_precisions": ["int8", "int4"],
        "formats": ["onnx-int8"],  # int4 weights: compress --quantize int4 writes its own ONNX file
        "limits": ["int8_bytes<=256KB", "ram_bytes<=64KB"],
    },
    "phone": {
        "name": "phone",
        "description": "phone CPU (Android or iOS class): ONNX Runtime Mobile (.ort) or ExecuTorch (.pte, XNNPACK), "
                       "or Core ML on iOS; batch 1, two threads; fp32, int8 and palettized weights (Core ML keeps "
                       "the palette in its file). Latency is measured here in ONNX Runtime unless a table measured "
                       "on the phone is added.",
        "runtime": DEFAULT_RUNTIME,
        "threads": 2,
        "batch": [1],
        "precisions": ["fp32", "int8"],
        "weight_precisions": ["fp32", "fp16", "int8", *(f"palette{b}" for b in (1, 2, 3, 4, 6, 8))],
        "formats": ["ort", "executorch", "executorch-int8", "coreml"],
        "limits": [],
    },
    "server-cpu": {
        "name": "server-cpu",
        "description": "server CPU: ONNX Runtime, 4 threads, batches of 64, fp32 or int8, no memory limit "
                       "that matters for these models.",
        "runtime": DEFAULT_RUNTIME,
        "threads": 4,
        "batch": [64, 1],
        "precisions": ["fp32", "int8"],
        "limits": [],
    },
}


@dataclass(frozen=True)
class DeviceProfile:
    """A deployment target.

    Attributes:
        name: what reports call it.
        runtime: the latency runtime (``measure.runtime`` names: ``onnxruntime``, ``torch``, ...).
        threads: intra-op threads the runtime uses there.
        batch: batch sizes the table holds; the first is the one a run targets.
        precisions: what the device runs (``fp32``, ``fp16``, ``bf16``, ``int8``); an int8-only
            device counts activations as one byte each (``ram_bytes``).
        limits: budgets every run targeting the device adds, such as ``"ram_bytes<=64KB"``.
        weight_precisions: the precisions the device runs a layer's weights at (``int4``,
            ``palette4``, ...), what a compression allocation may choose (empty: ``precisions``).
        formats: the export formats the device loads (empty: any).
        table: latency entries, each ``{"op": group, "cin": n, "cout": n, "ms": {"<batch>/<precision>": ms}}``
            (``group``: the operator without its channels, ``conv1d|40|k5|s2|p1|d1|g1|relu``).
        overhead: per ``"<batch>/<precision>"``: the calibrated per-model terms of the predictor.
        accuracy: per ``"<batch>/<precision>"``: how well the predictor did on held-out models.
        machine: where the table was measured; space: what it covers.
        source: the file it was read from, or ``built-in``.
    """

    name: str
    runtime: str = DEFAULT_RUNTIME
    threads: int = 1
    batch: tuple[int, ...] = (1,)
    precisions: tuple[str, ...] = ("fp32",)
    limits: tuple[str, ...] = ()
    weight_precisions: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    description: str = ""
    table: tuple[dict, ...] = field(default=(), hash=False)
    overhead: dict = field(default_factory=dict, hash=False)
    accuracy: dict = field(default_factory=dict, hash=False)
    machine: dict = field(default_factory=dict, hash=False)
    space: dict = field(default_factory=dict, hash=False)
    source: str = ""

    @property
    def activation_bytes(self) -> int:
        """Bytes per activation value on the device: 1 on an int8-only device, else 4."""
        return 1 if set(self.precisions) == {"int8"} else 4

    @property
    def allowed_precisions(self) -> tuple[str, ...]:
        """The precisions a layer's weights may take on the device (``weight_precisions``, else
        ``precisions``)."""
        return self.weight_precisions or self.precisions

    @property
    def has_table(self) -> bool:
        return bool(self.table)

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping :func:`parse_profile` reads back."""
        out: dict[str, Any] = {"slimnas_profile": PROFILE_VERSION, "name": self.name}
        if self.description:
            out["description"] = self.description
        out.update(runtime=self.runtime, threads=self.threads, batch=list(self.batch),
                   precisions=list(self.precisions), limits=list(self.limits))
        for key in ("weight_precisions", "formats"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        for key in ("machine", "space", "overhead", "accuracy"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.table:
            out["table"] = [dict(e) for e in self.table]
        return out


def _is_int(v: Any, low: int = 1) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _is_pos(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _entry_key(key: Any) -> bool:
    if not isinstance(key, str) or key.count("/") != 1:
        return False
    b, p = key.split("/")
    return b.isdigit() and int(b) >= 1 and p in precision_names()


def _check_entry(i: int, e: Any) -> dict:
    where = f"profile.table[{i}]"
    if not isinstance(e, dict) or set(e) != {"op", "cin", "cout", "ms"}:
        raise ConfigError(where, "a mapping with 'op' (its group, such as 'conv1d|40|k5|s2|p1|d1|g1|relu'), 'cin', "
                          "'cout' and 'ms' (latencies by '<batch>/<precision>')", e)
    if not isinstance(e["op"], str) or "|" not in e["op"]:
        raise ConfigError(f"{where}.op", "an operator group such as 'conv1d|40|k5|s2|p1|d1|g1|relu'", e["op"])
    for k in ("cin", "cout"):
        if not _is_int(e[k]):
            raise ConfigError(f"{where}.{k}", "an integer >= 1", e[k])
    ms = e["ms"]
    if not isinstance(ms, dict) or not ms:
        raise ConfigError(f"{where}.ms", "a mapping '<batch>/<precision>' -> milliseconds > 0", ms)
    for key, value in ms.items():
        if not _entry_key(key):
            raise ConfigError(f"{where}.ms", f"keys '<batch>/<precision>' with a precision from {list(precision_names())}", key)
        if not _is_pos(value):
            raise ConfigError(f"{where}.ms.{key}", "a number of milliseconds > 0", value)
    return e


def _check_terms(name: str, raw: Any, fields: dict[str, str]) -> dict:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"profile.{name}", "a mapping '<batch>/<precision>' -> figures", raw)
    for key, terms in raw.items():
        if not _entry_key(key):
            raise ConfigError(f"profile.{name}", f"keys '<batch>/<precision>' with a precision from {list(precision_names())}",
                              key)
        if not isinstance(terms, dict):
            raise ConfigError(f"profile.{name}.{key}", "a mapping of figures", terms)
        for f, kind in fields.items():
            v = terms.get(f)
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)) if kind == "num" \
                else _is_int(v, 0)
            if f in terms and not ok:
                raise ConfigError(f"profile.{name}.{key}.{f}", "a finite number" if kind == "num" else "an integer >= 0",
                                  v)
    return raw


def parse_profile(raw: Any, source: str = "") -> DeviceProfile:
    """Check a raw mapping (from YAML) into a :class:`DeviceProfile`; raises :class:`ConfigError`
    naming the first wrong field (names of runtimes and metrics are checked by
    :func:`slimnas.measure.check_profile`)."""
    if not isinstance(raw, dict):
        raise ConfigError("profile", "a YAML mapping with name, runtime, threads, batch, precisions", type(raw).__name__)
    known = {"slimnas_profile", "name", "description", "runtime", "threads", "batch", "precisions", "limits",
             "weight_precisions", "formats", "table", "overhead", "accuracy", "machine", "space"}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"profile.{sorted(unknown)[0]}", f"one of the keys {sorted(known)}")
    version = raw.get("slimnas_profile", PROFILE_VERSION)
    if version != PROFILE_VERSION:
        raise ConfigError("profile.slimnas_profile", f"{PROFILE_VERSION} (a profile this slimnas writes)", version)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("profile.name", "a non-empty name", name)
    runtime = raw.get("runtime", DEFAULT_RUNTIME)
    if not isinstance(runtime, str) or not runtime:
        raise ConfigError("profile.runtime", "a latency runtime name such as 'onnxruntime'", runtime)
    threads = raw.get("threads", 1)
    if not _is_int(threads):
        raise ConfigError("profile.threads", "an integer >= 1", threads)
    batch = raw.get("batch", [1])
    batch = [batch] if _is_int(batch) else batch
    if not isinstance(batch, list) or not batch or not all(_is_int(b) for b in batch) or len(set(batch)) != len(batch):
        raise ConfigError("profile.batch", "a batch size >= 1 or a list of distinct ones", raw.get("batch"))
    precisions = raw.get("precisions", ["fp32"])
    precisions = [precisions] if isinstance(precisions, str) else precisions
    if not isinstance(precisions, list) or not precisions or any(p not in precision_names() for p in precisions):
        raise ConfigError("profile.precisions", f"a list from {list(precision_names())}", raw.get("precisions"))
    limits = raw.get("limits") or []
    limits = [limits] if isinstance(limits, str) else limits
    if not isinstance(limits, list) or not all(isinstance(b, str) for b in limits):
        raise ConfigError("profile.limits", "a list of budgets such as 'ram_bytes<=64KB'", raw.get("limits"))
    named = {}
    for key, example in (("weight_precisions", "int8, int4, palette4"), ("formats", "ort, executorch")):
        value = raw.get(key) or []
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"profile.{key}", f"a list of names such as {example}", raw.get(key))
        named[key] = tuple(value)  # the names are resolved by slimnas.measure.check_profile
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError("profile.description", "a string", description)
    table = raw.get("table") or []
    if not isinstance(table, list):
        raise ConfigError("profile.table", "a list of entries {op, cin, cout, ms}", type(table).__name__)
    table = [_check_entry(i, e) for i, e in enumerate(table)]
    overhead = _check_terms("overhead", raw.get("overhead"), {"null_ms": "num", "model_ms": "num", "scale": "num",
                                                             "per_op_ms": "num", "n_models": "int"})
    accuracy = _check_terms("accuracy", raw.get("accuracy"), {"spearman": "num", "within_10pct": "num",
                                                             "within_15pct": "num", "mape": "num", "n_models": "int"})
    for key in ("machine", "space"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise ConfigError(f"profile.{key}", "a mapping", raw[key])
    return DeviceProfile(name=name.strip(), runtime=runtime, threads=threads, batch=tuple(batch),
                         precisions=tuple(precisions), limits=tuple(limits), description=description, **named,
                         table=tuple(table), overhead=dict(overhead), accuracy=dict(accuracy),
                         machine=dict(raw.get("machine") or {}), space=dict(raw.get("space") or {}), source=source)


def allowed_precisions(profile: DeviceProfile | None, candidates: tuple[str, ...] | list[str], *,
                       field: str = "--precision", given: bool = True) -> tuple[str, ...]:
    """The ``candidates`` (per-layer precisions) a run targeting ``profile`` may use.

    ``given``: the user named them, so one the device does not run is an error (one line);
    else (a default list) they are cut to the allowed ones. No profile: ``candidates`` as they are.
    An empty result is an error too.

    Example:
        >>> allowed_precisions(read_profile("mcu"), ("fp32", "int8", "int4"), given=False)
        ('int8', 'int4')
    """
    if profile is None:
        return tuple(candidates)
    allowed = profile.allowed_precisions
    if given:
        for p in candidates:
            if p not in allowed:
                raise ConfigError(field, f"precisions the device profile {profile.name!r} runs ({', '.join(allowed)})", p)
    kept = tuple(p for p in candidates if p in allowed)
    if not kept:
        raise ConfigError(field, f"precisions the device profile {profile.name!r} runs ({', '.join(allowed)})",
                          ",".join(candidates))
    return kept


def allowed_formats(profile: DeviceProfile | None, formats: list[str]) -> list[str]:
    """The export ``formats`` a device loads (all of them without a profile, or for a profile
    that names none), in the profile's order."""
    if profile is None or not profile.formats:
        return list(formats)
    return [f for f in profile.formats if f in formats]


def list_builtin_profiles() -> list[str]:
    return sorted(BUILTIN_PROFILES)


def read_profile(name_or_path: str | Path, field: str = "device_profile") -> DeviceProfile:
    """A profile by built-in name (``mcu``, ``phone``, ``server-cpu``) or YAML path; one line when it is
    missing, not YAML or not a valid profile."""
    text = str(name_or_path)
    if text in BUILTIN_PROFILES and not Path(text).is_file():
        return parse_profile(BUILTIN_PROFILES[text], source="built-in")
    path = Path(text)
    if not path.is_file():
        raise ConfigError(field, f"a device profile file or a built-in profile ({', '.join(list_builtin_profiles())})",
                          text)
    try:
        raw = read_yaml(path, max_bytes=64 << 20, max_values=5_000_000)  # latency tables are larger than configs
    except ConfigError as e:
        raise ConfigError(field, e.expected.replace("YAML", "YAML device profile"), text) from None
    return parse_profile(raw, source=str(path.resolve()))


def write_profile(profile: DeviceProfile, path: str | Path) -> Path:
    """Write ``profile`` as YAML (atomically: a half-written profile never replaces a good one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(profile.to_dict(), sort_keys=False, default_flow_style=None, width=120))
    tmp.replace(path)
    return path
