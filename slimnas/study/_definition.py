"""What makes a study one search: a study (and its run folder) resumes only under the same data,
space, recipe, strategy and objectives, so two different searches never share trials."""

from __future__ import annotations

import json
from typing import Any

from slimnas.errors import ConfigError
from slimnas.measure import get_metric

DEFINITION = ("data", "space", "training", "epochs", "strategy", "objectives")


def definition_of(resolved: dict[str, Any]) -> dict[str, Any]:
    """The definition (see :attr:`SearchPlan.definition`) of a resolved configuration mapping,
    JSON-normalised (as a study's storage keeps it)."""
    out = {k: resolved.get(k) for k in DEFINITION}
    strategy = resolved.get("strategy") or {}
    out["strategy"] = strategy.get("name")
    if strategy.get("options"):  # a strategy's own settings make another search (absent: as before)
        out["strategy"] = {"name": strategy.get("name"), "options": strategy["options"]}
    out["objectives"] = [get_metric(o).name for o in resolved.get("objectives") or []]
    if resolved.get("task"):  # a task named in the config makes another search (absent: as before)
        out["task"] = resolved["task"]
    return json.loads(json.dumps(out))


def check_definition(stored: dict[str, Any] | None, current: dict[str, Any], study: str) -> None:
    """Raise :class:`ConfigError` naming the first section in which ``current`` differs from the
    definition study ``study`` was started with."""
    if not stored:
        return
    for key in DEFINITION:
        if key in stored and stored[key] != current.get(key):
            what = {"data": "the data", "space": "the search space", "training": "the training recipe",
                    "epochs": "the epochs", "strategy": "the strategy", "objectives": "the objectives"}[key]
            raise ConfigError(key, f"{what} study {study!r} was started with ({stored[key]!r}); a different search "
                              "needs its own --name or --out", current.get(key))
    if stored.get("task") is not None and stored["task"] != current.get("task"):  # started with task: / --task
        raise ConfigError("task", f"the task study {study!r} was started with ({stored['task']!r}); a different "
                          "search needs its own --name or --out", current.get("task"))
