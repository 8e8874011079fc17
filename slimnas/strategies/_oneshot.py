"""One-shot strategies: a search that trains something once on the data before the trials (the
DARTS supernet) and proposes the trials from what it learnt.

Call order: the run checks the strategy (:meth:`BaseStrategy.check`) and opens the study; before
the first trial it calls :meth:`BaseOneShotStrategy.prepare` with the data
(:class:`OneShotContext`). ``prepare`` runs :meth:`~BaseOneShotStrategy.search` once and keeps
its result (JSON) in the study's storage as a study system attribute: a resumed study, another
worker and a fresh sampler read it back instead of searching again. The sampler
(:meth:`BaseStrategy.sampler`) proposes each trial from it, and the proposed candidates go
through the same training, compression and measurement as any other trial, into the same study
and front.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import optuna

from slimnas.errors import ConfigError
from slimnas.strategies._base import BaseStrategy, PrepareContext

#: what a one-shot search may use: the context every strategy's ``prepare`` gets
OneShotContext = PrepareContext


def stored_result(study: optuna.Study, key: str) -> dict | None:
    """A one-shot result kept in ``study``'s storage under ``key``, or ``None``."""
    return study._storage.get_study_system_attrs(study._study_id).get(key)


class BaseOneShotStrategy(BaseStrategy):
    """A strategy that searches once on the data before the trials, then proposes trials from
    the result it keeps in the study (see the module's docstring for the call order)."""

    #: the study system attribute that holds the result
    state_key: ClassVar[str] = ""

    @abc.abstractmethod
    def search(self, ctx: OneShotContext) -> dict:
        """The one-shot search: a JSON mapping the sampler proposes trials from. It should
        record the options it ran with under ``"options"``."""

    def prepare(self, study: optuna.Study, ctx: OneShotContext) -> dict:
        """The study's one-shot result: the stored one, or a new search stored now. A study
        resumed with other ``strategy.options`` than it was searched with is refused with a
        :class:`ConfigError`."""
        stored = stored_result(study, self.state_key)
        if stored is not None:
            self.check_options(stored, ctx)
            return stored
        result = self.search(ctx)
        again = stored_result(study, self.state_key)  # another worker may have finished first
        if again is not None:
            return again
        study._storage.set_study_system_attr(study._study_id, self.state_key, result)
        return result

    def check_options(self, stored: dict, ctx: OneShotContext) -> None:
        was = stored.get("options", {})
        now = self.resolved_options(ctx.options)
        if was != now:
            raise ConfigError("strategy.options", f"the options study was searched with ({was}); a different "
                              "search needs its own --name or --out", now)
