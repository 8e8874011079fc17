"""Resumable sequences: every trial's draws are seeded from the run's seed and the trial's place
in the study, so a study stopped and started again continues its sequence instead of replaying
it from the start, and a trial re-run after a crash meets the history it would have met."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

#: a trial's user attribute, set when the trial failed on its own (its candidate diverged, ran out
#: of memory or time, raised): the trial keeps its place in the sequence, unlike a trial stopped
#: from outside (killed, Ctrl-C), which is re-run in its place
FAILED_ALONE = "failed_alone"


def position(study: optuna.Study, number: int) -> int:
    """Trial ``number``'s place in the study's sequence: the trials before it, less those
    stopped from outside (a killed or interrupted trial is re-run in its place, so the sequence
    goes on as if it had not been stopped). A trial that failed on its own takes its place, so
    the trial after it draws another candidate. Without failures it is the number."""
    trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
    return sum(1 for t in trials if t.number < number
               and (t.state != TrialState.FAIL or t.user_attrs.get(FAILED_ALONE)))


def trial_seed(seed: int, place: int) -> int:
    """A seed for the ``place``-th trial of a run seeded with ``seed`` (well mixed)."""
    return int(np.random.SeedSequence([seed, place]).generate_state(1)[0] % (2**31 - 1))


class SequencedSampler(optuna.samplers.BaseSampler):
    """Runs each trial with a fresh sampler from ``make(seed)``, seeded by :func:`trial_seed`.

    Optuna's samplers keep their state in the study's storage except for their random number
    generator; giving each trial a generator of its own, derived from its place, makes the
    sequence of candidates a function of the run's seed and history alone.
    """

    def __init__(self, make: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._make, self._seed = make, seed
        self._default = make(seed)
        self._per_trial: dict[int, optuna.samplers.BaseSampler] = {}

    @property
    def base(self) -> optuna.samplers.BaseSampler:
        """A sampler of the strategy (for inspection; trials each get their own)."""
        return self._default

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        return self._per_trial.get(trial.number, self._default)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        sampler = self._make(trial_seed(self._seed, position(study, trial.number)))
        self._per_trial[trial.number] = sampler
        sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        sampler = self._per_trial.pop(trial.number, self._default)
        sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._default.reseed_rng()
