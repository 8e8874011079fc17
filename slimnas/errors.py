"""User-facing errors: one line naming what is wrong and what is expected."""

from __future__ import annotations


class SlimnasError(Exception):
    """Base class for mistakes a user can fix; the CLI prints them as one line and exits 2."""


class ConfigError(SlimnasError, ValueError):
    """A configuration value is wrong.

    Args:
        field: dotted path of the field, e.g. ``space.cnn.kernel``.
        expected: what the field accepts.
        got: the value that was given (omitted from the message when ``None``).
    """

    def __init__(self, field: str, expected: str, got: object = None) -> None:
        self.field, self.expected, self.got = field, expected, got
        msg = f"{field}: expected {expected}"
        if got is not None:
            msg += f", got {got!r}"
        super().__init__(msg)


class TrainingDiverged(SlimnasError):
    """The training loss became NaN or infinite (a learning rate too high, or bad data)."""

    def __init__(self, epoch: int, loss: float) -> None:
        self.epoch, self.loss = epoch, loss
        super().__init__(f"training diverged: the loss became {loss} at epoch {epoch} "
                         "(a lower learning rate usually helps)")


class DamagedFileError(ConfigError):
    """A file slimnas wrote (a run folder's JSON, YAML or weights) cannot be read back: truncated,
    emptied, replaced or of another shape. Names the file and what is wrong with it."""

    def __init__(self, path, problem: str, expected: str) -> None:
        from pathlib import Path

        self.path, self.problem = path, problem
        super().__init__("file", f"{path} to hold {expected}", None)
        p = Path(path)
        fix = ("running the same search command again re-runs the trial" if p.parent.parent.name == "trials"
               else "running the same command again writes it anew" if p.name in ("config.yaml", "pareto.json",
                                                                                    "run.json", "report.json")
               else "restore it from a copy")
        self.args = (f"{path}: damaged file: {problem} (expected {expected}; {fix})",)


class InterruptedOutputError(SlimnasError):
    """A ``compress`` output folder whose replacement by a newer one was cut short (a kill
    between moving the old folder aside and the new one in): nothing in it is read; the
    previous complete result is whole in ``backup``."""

    def __init__(self, path, backup) -> None:
        from pathlib import Path

        self.path, self.backup = path, backup
        what = ("the previous complete result" if any((Path(backup) / m).is_file() for m in ("report.json", "weights.pt"))
                else "what it held before (no result yet: a compress --auto study)")
        super().__init__(f"{path}: the output was interrupted while being replaced; {what} is in {backup} (move "
                         f"it back to {path}, or run the command that was writing it again: it moves it back first)")


class StorageUnreachable(SlimnasError):
    """The study's storage stopped answering in the middle of a run (a database server went
    down, a network failed): what was completed is in the storage, and the same command resumes."""

    def __init__(self, storage: object, reason: str) -> None:
        self.storage, self.reason = storage, reason
        super().__init__(f"storage: {storage} became unreachable during the run ({reason}); the completed trials "
                         "are kept there: run the same command again to resume once it answers")
