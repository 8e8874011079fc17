"""What follows a study's trials, one sequence for a search and for ``compress --auto``: choose
the front by the trials' validation figures (or, where nothing meets the budget, the trials
closest to it); rerank it after a longer fine-tune of its leading candidates; refine each chosen
candidate's fine-tune; give it the final fine-tune; test it once; write the result.

A kind of study says what each step does for it (:class:`AfterStudy`); a search reranks a joint
search's front and fine-tunes each compressed member (:func:`slimnas.study._search.finish`),
``--auto`` refines the one chosen policy's criterion and learning rate and fine-tunes it
(:func:`slimnas.study._auto.after_auto_study`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.trial import FrozenTrial

from slimnas.measure import Budget
from slimnas.study._pareto import pareto_front


class AfterStudy:
    """The steps after a study; a kind of study overrides those it does."""

    def __init__(self, objectives: Sequence[str], budget: Sequence[Budget], *, n_closest: int = 5) -> None:
        self.objectives, self.budget, self.n_closest = tuple(objectives), tuple(budget), n_closest

    def choose(self, trials: list[FrozenTrial]) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
        """``(front, closest)`` by the trials' recorded figures (see :func:`pareto_front`)."""
        return pareto_front(trials, self.objectives, self.budget, n_closest=self.n_closest)

    def rerank(self, front: list[FrozenTrial], trials: list[FrozenTrial]) -> list[FrozenTrial] | None:
        """The front chosen again after a longer fine-tune (``None``: as it is)."""
        return None

    def refine(self, trial: FrozenTrial) -> Any:
        """What the final fine-tune of ``trial`` should use (``None``: its own recipe)."""
        return None

    def finetune(self, trial: FrozenTrial, refined: Any) -> Any:
        """The chosen trial's final artifact and its figures on validation data."""
        raise NotImplementedError

    def test(self, trial: FrozenTrial, final: Any) -> Any:
        """``final`` with its accuracy on the test set, measured once."""
        raise NotImplementedError

    def write(self, front: list[FrozenTrial], closest: list[FrozenTrial], members: dict[int, Any]) -> Any:
        """Write and return the result (``members``: each chosen trial's tested figures)."""
        raise NotImplementedError

    def run(self, trials: list[FrozenTrial]) -> Any:
        """The sequence, over the study's ``trials``."""
        self.trials = trials
        front, closest = self.choose(trials)
        if front:
            front = self.rerank(front, trials) or front
        members = {t.number: self.test(t, self.finetune(t, self.refine(t))) for t in front or closest}
        return self.write(front, closest, members)
