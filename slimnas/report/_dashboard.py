"""``slimnas dashboard``: optuna-dashboard on a run's study, reachable from this machine only.

The dashboard has no authentication and can edit the study (notes, trial states), so it is
bound to a loopback address and nothing else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

from slimnas.errors import ConfigError
from slimnas.study import open_run

INSTALL = "pip install 'slimnas[dashboard]'"


def check_loopback(host: str, field: str = "host") -> str:
    """``host`` when it is a loopback address (``127.0.0.1``, ``::1``, ``localhost``)."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(field, "a loopback address such as 127.0.0.1 (the dashboard has no authentication)", host)
    return host


def dashboard_storage(folder: str | Path) -> str:
    """The storage URL of the run's study (the run's own ``study.db`` where it has one)."""
    return open_run(folder).storage_url


def serve_dashboard(folder: str | Path, *, host: str = "127.0.0.1", port: int = 8080,
                    started: Callable[[str], None] | None = None) -> None:
    """Serve optuna-dashboard on the run's study until interrupted (blocks).

    Args:
        started: called with the dashboard's URL once every check passed, before it serves.
    """
    check_loopback(host)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError("port", "a port number in 1..65535", port)
    storage = dashboard_storage(folder)
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise ConfigError("dashboard", f"optuna-dashboard installed ({INSTALL})") from None
    if started is not None:
        started(f"http://{host if ':' not in host else f'[{host}]'}:{port}/")
    run_server(storage, host=host, port=port)
