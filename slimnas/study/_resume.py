"""Settings a study keeps for its resume: a setting the command line leaves out resumes as the
study was started (not under a default that changed since), so a resumed study runs its remaining
trials as its first ones ran."""

from __future__ import annotations

from pathlib import Path

import optuna

from slimnas.study._driver import quiet_optuna


def resumed_setting(storage: str | None, study: str, key: str, given: str | None, *, before: str | None = None,
                    default: str | None = None) -> tuple[str | None, str | None]:
    """``(value, note)``: ``given`` where the command gives it; else what study ``study`` in
    ``storage`` was started with (kept in its user attributes under ``key``), or ``before`` for a
    study with trials started before the setting was kept (the default it ran under then); else
    ``None`` (a new study: the current default). ``note`` says when a resume decided it to be
    other than ``default``."""
    if given is not None or storage is None:
        return given, None
    if storage.startswith("sqlite:///") and not Path(storage.removeprefix("sqlite:///")).is_file():
        return None, None  # nothing to resume, and no file made by looking
    try:
        with quiet_optuna():
            found = optuna.load_study(study_name=study, storage=storage)
            stored, n = found.user_attrs.get(key), len(found.get_trials(deepcopy=False))
    except Exception:  # noqa: BLE001 - no such study, or a storage open_study will name in one line
        return None, None
    value = stored if stored is not None else (before if n else None)
    if value is None or value == default:
        return value, None
    flag = "--" + key.replace("_", "-")
    return value, f"resuming study {study!r} with its own {flag} {value} (give {flag} to change it)"


def keep_setting(study: optuna.Study, key: str, value: str) -> None:
    """Record the setting a study was started with (a resume keeps the first one)."""
    if key not in study.user_attrs:
        study.set_user_attr(key, value)
