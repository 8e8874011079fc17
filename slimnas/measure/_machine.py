"""The machine a latency was measured on: every latency figure carries it, since a latency is
only meaningful together with the processor, the runtime's version and the thread count."""

from __future__ import annotations

import functools
import os
import platform
import socket
from pathlib import Path


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.lru_cache(maxsize=1)
def _static_info() -> dict:
    import numpy as np
    import torch

    info = {
        "host": socket.gethostname(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count() or 0,
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
    }
    try:
        import onnxruntime as ort

        info["onnxruntime"] = str(ort.__version__)
    except ImportError:  # pragma: no cover - a dependency, present wherever slimnas installs
        info["onnxruntime"] = None
    return info


def machine_info(*, cuda: bool = False) -> dict:
    """Where a latency is measured: host, processor, core count, OS, library versions and, with
    ``cuda``, the GPU's name. A plain, JSON-ready mapping.

    Example:
        >>> sorted(machine_info())[:3]
        ['arch', 'cores', 'cpu']
    """
    info = dict(_static_info())
    if cuda:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
            info["cuda"] = torch.version.cuda
    return info
