"""Files slimnas writes and reads back: written atomically (a temporary file beside the target,
renamed over it, so a kill -9 never leaves a half-written file), read back with one clear error
naming the file and what is wrong with it (a truncated, emptied or foreign file is a
:class:`~slimnas.errors.DamagedFileError`, never a traceback)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from slimnas.errors import ConfigError, DamagedFileError, InterruptedOutputError


def before_replace(path: Path) -> None:
    """Where a finished export or ``compress`` output is about to replace what is at ``path``.
    ``SLIMNAS_SLOW_WRITES=<seconds>`` waits here (tests kill a process at this point to check
    that the earlier files survive)."""
    delay = os.environ.get("SLIMNAS_SLOW_WRITES")
    if delay:
        import time

        time.sleep(float(delay))


def temp_path(path: Path) -> Path:
    """The temporary name a write of ``path`` goes through (``<name>.<pid>.tmp``; a run folder's
    clean-up removes those of dead processes)."""
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def storage_error(path: Path, e: OSError) -> ConfigError:
    """One line for a write the file system refused (disk full, read-only, no permission)."""
    return ConfigError("out", "a path slimnas can write (space left, write permission)",
                       f"{path}: {e.strerror or e}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; on success it is renamed over
    ``path`` in one step, on any failure removed (``path`` stays as it was)."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise storage_error(path, e) from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically, so an interrupted run never leaves a half-written file."""
    atomic_write(path, json.dumps(data, indent=2, sort_keys=False, default=float))


def replace_folder(new: Path, path: Path) -> None:
    """Put the folder ``new`` (written in full) at ``path``, replacing what was there as a whole
    (:func:`swap_folder`: a reader sees the old folder or the new one, never a mix)."""
    swap_folder(new, path, refuse_interrupted=False)


def backups(path: Path) -> list[Path]:
    """The folders an output at ``path`` was moved aside to while being replaced
    (``.<name>.<pid>.previous``, see :func:`swap_folder`)."""
    return sorted(p for p in path.parent.glob(f".{glob.escape(path.name)}.*.previous") if p.is_dir())


def check_not_interrupted(path: str | Path, markers: tuple[str, ...] = ("report.json", "weights.pt")) -> None:
    """Refuse (:class:`InterruptedOutputError`, one line) an output folder whose replacement
    was cut short: it is missing, or holds none of ``markers`` (a compress output's report, a
    state-dict export's weights), while a backup of the previous one is beside it. A complete
    folder with a backup left beside it (killed while the backup was removed) is the new output,
    whole, and passes."""
    path = Path(path)
    if not any((path / m).is_file() for m in markers) and (found := backups(path)):
        raise InterruptedOutputError(path, found[-1])


def swap_folder(stage: Path, path: Path, keep: Callable[[str], bool] = lambda name: False, *,
                refuse_interrupted: bool = True) -> None:
    """Replace the folder ``path`` with ``stage`` (written in full) as a whole: the old folder is
    renamed to ``.<name>.<pid>.previous``, ``stage`` renamed to ``path``, then the old one removed.
    A kill between the two renames leaves no ``path`` and the old folder whole under its backup
    name, which :func:`check_not_interrupted` refuses to read past; there is never a mix of old
    and new files. The entries of the old folder for which ``keep(name)`` holds are carried into
    ``stage`` first, their files as hard links where the file system allows (copies elsewhere):
    the old folder keeps every name until the swap, and a file still open (a study's SQLite
    database, TensorBoard's event files) goes on being the one at ``path``. ``refuse_interrupted``:
    refuse to replace an output whose earlier replacement was cut short (else its backup goes)."""
    if refuse_interrupted:
        check_not_interrupted(path)
    backup = path.with_name(f".{path.name}.{os.getpid()}.previous")
    try:
        if path.is_dir():
            for entry in path.iterdir():
                if keep(entry.name) and not (stage / entry.name).exists():
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.copytree(entry, stage / entry.name, symlinks=True, copy_function=_link_or_copy)
                    else:
                        _link_or_copy(entry, stage / entry.name)
        before_replace(path)
        if path.exists():
            shutil.rmtree(backup, ignore_errors=True)
            os.rename(path, backup)
            before_replace(path)
        try:
            os.rename(stage, path)
        except OSError:
            if backup.exists() and not path.exists():
                os.rename(backup, path)
            raise
        before_replace(backup)
    except OSError as e:
        raise storage_error(path, e) from None
    for stale in backups(path):  # ours, and any a killed earlier replacement left beside a complete output
        shutil.rmtree(stale, ignore_errors=True)


def _link_or_copy(src, dst) -> None:
    """``dst`` as a hard link to ``src`` (the same file under a second name), or a copy where the
    file system cannot link; a symbolic link is copied as a link."""
    if not os.path.islink(src):
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst, follow_symlinks=False)


@contextlib.contextmanager
def replacing(out: Path, outputs: tuple[str, ...], markers: tuple[str, ...] = ("report.json",)) -> Iterator[Path]:
    """Write a new result of a command into ``out`` as one unit: the block writes every file of it
    in the staging folder it is given, beside ``out``, which then takes ``out``'s place as a whole
    (:func:`swap_folder`; nothing is replaced when the block raises). Entries of ``out`` not named
    in ``outputs`` (a resumable study, the user's own files) are carried across; an earlier
    result's outputs are not. A process killed on the way leaves the earlier result as it was, or
    no ``out`` and the earlier folder whole under its backup name (which every reader names,
    refusing to read anything else), or the new result whole: never a mix."""
    check_not_interrupted(out, markers)
    stage = staging_folder(out)
    try:
        yield stage
        swap_folder(stage, out, keep=lambda name: name not in outputs and not name.endswith(".tmp"))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


_LEFT = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<kind>tmp|previous)")


def clean_stale_staging(path: str | Path, markers: tuple[str, ...] = ("report.json", "weights.pt")) -> list[str]:
    """Before a command writes ``path`` (a compress output, an export): what processes killed while
    writing it left beside it, put right. A staging folder (``.<name>.<pid>.tmp``, a temporary
    file of an unfinished write in ``path``) of a process that is gone is removed. A backup
    (``.<name>.<pid>.previous``) of a process that is gone is removed only where ``path`` holds a
    complete result (one of ``markers``: the backup is the result it replaced); where ``path`` is
    missing, the backup is the only copy and is moved back to ``path`` (the newest, if several).
    Backups of live processes are left alone (:func:`check_not_interrupted` still refuses).
    Returns one line per thing done, for the command to print."""
    path, done = Path(path), []
    if not path.parent.is_dir():
        return done
    left = [(p, m) for p in path.parent.iterdir() if (m := _LEFT.fullmatch(p.name)) and m["name"] == path.name
            and _gone(m["pid"])]
    if path.is_dir():  # a temporary file of a write into the folder, cut short
        left += [(p, None) for p in path.iterdir() if (m := _LEFT.fullmatch("." + p.name)) and m["kind"] == "tmp"
                 and _gone(m["pid"])]
    for p, m in left:
        if m is None or m["kind"] == "tmp":
            _remove(p)
            done.append(f"removed {p}, left by process {m['pid'] if m else p.name.split('.')[-2]} that was "
                        "killed while writing (it no longer runs)")
    stale = sorted((p for p, m in left if m is not None and m["kind"] == "previous"), key=lambda p: p.stat().st_mtime)
    if stale and not path.exists():
        newest = stale.pop()
        try:
            os.rename(newest, path)
        except OSError as e:
            raise storage_error(path, e) from None
        done.append(f"restored {path} from {newest.name}: the process replacing it was killed between moving it "
                    "aside and moving the new result in")
    if stale and path.is_dir() and any((path / m).is_file() for m in markers):
        for p in stale:  # the complete result at path replaced them
            _remove(p)
            done.append(f"removed {p}, the earlier result a killed process had replaced (the complete result is "
                        f"{path})")
    return done


def _gone(pid: str) -> bool:
    """Whether ``pid`` names a process that has ended (a number no process can have is not ours)."""
    from slimnas.study._driver import pid_alive

    try:
        return 0 < int(pid) < 2**31 and not pid_alive(int(pid))
    except (OverflowError, ValueError):
        return False


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _problem(path: Path, raw: bytes) -> str | None:
    if not raw:
        return "the file is empty"
    if not raw.strip():
        return "the file holds only whitespace"
    return None


def read_json(path: str | Path, what: str, check: Callable[[Any], bool] | None = None) -> Any:
    """``path``'s JSON, checked to have the expected shape; :class:`DamagedFileError` (one line
    naming the file and what is wrong) when it cannot be read, is not JSON, or is JSON of another
    shape. ``what`` says what the file should hold, e.g. ``"a JSON object with a 'front' list"``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DamagedFileError(path, f"it cannot be read ({e.strerror or e})", what) from None
    problem = _problem(path, raw)
    if problem is None:
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            problem = "it is not text (binary content)"
        except (json.JSONDecodeError, RecursionError) as e:
            problem = f"it is not valid JSON ({getattr(e, 'msg', 'nested too deeply')}, truncated or damaged)"
        else:
            if check is None or _holds(check, data):
                return data
            problem = f"it holds JSON of another shape ({type(data).__name__})"
    raise DamagedFileError(path, problem, what)


def _holds(check: Callable[[Any], bool], data: Any) -> bool:
    try:
        return bool(check(data))
    except (TypeError, KeyError, AttributeError, ValueError, IndexError):
        return False


def load_weights(path: str | Path) -> dict:
    """A state dict saved with ``torch.save`` (read with ``weights_only=True``: no pickle is
    executed); :class:`DamagedFileError` when the file is truncated, empty or not a state dict."""
    import torch

    path = Path(path)
    what = "a state dict saved by torch.save"
    if path.is_file() and path.stat().st_size == 0:
        raise DamagedFileError(path, "the file is empty", what)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DamagedFileError(path, "the file is missing", what) from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a damaged file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise DamagedFileError(path, f"it cannot be read as weights ({type(e).__name__}: {first})", what) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise DamagedFileError(path, f"it holds {type(state).__name__}, not a mapping of tensor names to tensors",
                               what)
    return state


def staging_folder(path: Path) -> Path:
    """A new, empty folder beside ``path`` to write its replacement in (``.<name>.<pid>.tmp``;
    a run folder's clean-up removes those of dead processes)."""
    stage = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
    except OSError as e:
        raise storage_error(path, e) from None
    return stage


def publish(stage: Path, names: list[str], folder: Path) -> None:
    """Move the files and folders ``names`` written in ``stage`` into ``folder``, each in one
    rename (a folder replaced as a whole), then remove ``stage``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            new, old = stage / name, folder / name
            if new.is_dir():
                replace_folder(new, old)
            else:
                before_replace(old)
                os.replace(new, old)
    except OSError as e:
        raise storage_error(folder, e) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
