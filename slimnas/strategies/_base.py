"""The strategy contract and registry.

Black-box strategies are Optuna samplers, with their state kept in the study's storage so a
study resumes and runs with several workers. A strategy is a registered class
(:func:`register_strategy`) that builds its sampler from a :class:`StrategyContext` and says
what it can do: several objectives, spaces with per-layer genes (grid search cannot enumerate
them), and the early stopping it implies (BOHB is TPE with Hyperband).
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import optuna

from slimnas.config import MeasureSettings
from slimnas.errors import ConfigError
from slimnas.registry import Registry
from slimnas.spaces import CompressionPolicy
from slimnas.strategies._sequenced import SequencedSampler


@dataclass(frozen=True)
class StrategyContext:
    """What a strategy may use to build its sampler. Budgets reach constrained samplers
    through ``Trial.set_constraint``, recorded by the trial objective.

    Attributes:
        space: the search space (``None`` for a search over a fixed set of named parameters,
            such as ``compress --auto``'s per-layer ratios).
        seed: seeds the sampler; several workers on one study get different seeds.
        n_objectives: 1 for a single objective.
        options: ``strategy.options``: settings of the strategy's own (see
            :attr:`BaseStrategy.option_keys`).
    """

    space: Any
    seed: int
    n_objectives: int
    n_startup_trials: int = 5
    population_size: int = 20
    #: the strategy's own settings (config ``strategy.options``), checked by :meth:`BaseStrategy.check`
    options: dict = field(default_factory=dict, hash=False)
    #: the objectives' metric names (empty where the caller does not say)
    objectives: tuple[str, ...] = ()
    #: objectives known before a candidate is trained (its size, or a latency read from the
    #: architecture): ``known_objectives(params)`` -> one value per objective, ``None`` where the
    #: value needs training; ``None``: every objective needs training. A strategy may ask it for
    #: candidates it has not tried (:class:`~slimnas.strategies._ehvi.EHVISampler` does)
    known_objectives: Callable[[dict], Sequence[float | None]] | None = field(default=None, hash=False,
                                                                               compare=False)


@dataclass(frozen=True)
class PrepareContext:
    """What a strategy that works before the trials (a one-shot method, such as a weight-sharing
    supernet) may use; the search builds it once, in its main process.

    Attributes:
        space: the search space.
        data: the run's :class:`~slimnas.data.DataSplits` (decisions read training and
            validation data only; the test set is for the final front).
        folder: a folder of the run for the strategy's files (checkpoints), kept across resumes.
        objectives, budget: the study's metric names and :class:`~slimnas.measure.Budget` s.
        note: tells the user something (the search's listener renders it).
    """

    space: Any
    data: Any
    folder: Path
    objectives: tuple[str, ...]
    budget: tuple = ()
    seed: int = 0
    device: str = "cpu"
    options: dict = field(default_factory=dict, hash=False)
    #: what metrics read (latency runtime, repeats; see ``SearchPlan.measure_settings``)
    measure_settings: MeasureSettings = field(default_factory=MeasureSettings, hash=False)
    note: Callable[[str], None] = field(default=lambda text: None, compare=False)

    @property
    def run_dir(self) -> Path:
        """The run folder (the strategy's own files go to :attr:`folder`, inside it)."""
        return self.folder.parent


@dataclass
class WarmStart:
    """How a strategy wants one of its trials trained instead of from scratch: ``model`` (built
    from the trial's candidate, with initial weights) fine-tuned with ``train``, then compressed
    by ``policy`` (a :class:`~slimnas.compress.CompressionPolicy`; ``None``: none);
    ``info`` joins the trial's metrics.

    ``folds``, where given, is called as ``folds(seed=..., device=...)`` after the fine-tune and
    returns the candidate's accuracy on more held-out folds (twins of the model trained without
    them): the trial's ``val_accuracy``, which the front is chosen by, is then their mean with the
    model's own validation accuracy (kept as ``val_accuracy_split``; all as ``val_accuracy_folds``).
    """

    model: Any
    train: Any
    policy: CompressionPolicy | None = None
    info: dict = field(default_factory=dict)
    folds: Callable[..., list[float]] | None = None


@dataclass(frozen=True)
class StrategyOption:
    """One key of ``strategy.options``: what it accepts (words for errors), a check, a default."""

    expected: str
    check: Callable[[Any], bool]
    default: Any


class BaseStrategy(abc.ABC):
    """A search strategy.

    Call order: the run checks the strategy's capabilities against the study
    (:meth:`check`), then asks for the sampler once per process (:meth:`sampler`).

    Example:
        >>> @register_strategy("toy")  # doctest: +SKIP
        ... class ToyStrategy(BaseStrategy):
        ...     description = "random search with a fixed seed offset"
        ...     def sampler(self, ctx): return optuna.samplers.RandomSampler(seed=ctx.seed + 7)
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: works with several objectives
    multi_objective: ClassVar[bool] = True
    #: needs a finite, enumerable space (no continuous or per-layer genes)
    needs_grid: ClassVar[bool] = False
    #: the early-stopping rule used when the config asks for none
    default_early_stopping: ClassVar[str] = "none"
    #: each trial gets a sampler seeded from its place in the study (see SequencedSampler);
    #: False for a strategy whose one seed fixes an order kept in the storage (grid search)
    sequenced: ClassVar[bool] = True
    #: a study stopped by Ctrl-C and resumed proposes exactly what an uninterrupted one does;
    #: False where state in the storage counts the interrupted trial (CMA-ES's generations,
    #: the grid's order)
    exact_resume: ClassVar[bool] = True
    #: the keys of ``strategy.options`` the strategy reads (none by default)
    option_keys: ClassVar[dict[str, StrategyOption]] = {}

    @abc.abstractmethod
    def sampler(self, ctx: StrategyContext) -> optuna.samplers.BaseSampler:
        """The Optuna sampler that proposes candidates."""

    def prepare(self, study: optuna.Study, ctx: PrepareContext) -> dict | None:
        """Hook: runs once in the search's main process before its trials (and again when the
        search resumes: keep what it computes in ``ctx.folder`` and the study, and reuse it).
        One-shot strategies train their weight-sharing network here and store the candidates
        their sampler proposes in the study. Returns a report (JSON), or ``None``."""
        return None

    def warm_start(self, study: optuna.Study, trial: optuna.Trial, candidate: Any,
                   ctx: PrepareContext) -> WarmStart | None:
        """Hook: how trial ``trial`` (its ``candidate`` sampled) is trained, when the strategy
        has weights for it (a supernet's sub-network); ``None``: from scratch, as usual."""
        return None

    def check(self, ctx: StrategyContext, field: str = "strategy.name") -> None:
        """Raise :class:`ConfigError` when the strategy cannot run this study."""
        if ctx.n_objectives > 1 and not self.multi_objective:
            others = [n for n in list_strategies() if STRATEGIES.get(n).multi_objective]
            raise ConfigError(field, f"a single objective for {self.name!r} (use one of {others} for several)",
                              self.name)
        if self.needs_grid and ctx.space is None:
            raise ConfigError(field, f"a strategy other than {self.name!r} here (it needs a finite space of choices)",
                              self.name)
        self.resolved_options(ctx.options)

    def resolved_options(self, options: dict | None) -> dict:
        """``options`` checked against :attr:`option_keys`, defaults filled in, as JSON values;
        raises :class:`ConfigError` naming the first wrong key."""
        options = dict(options or {})
        for key, value in options.items():
            if key not in self.option_keys:
                known = f"one of {sorted(self.option_keys)}" if self.option_keys else "no options"
                raise ConfigError(f"strategy.options.{key}", f"{known} (strategy {self.name!r})", value)
            if not self.option_keys[key].check(value):
                raise ConfigError(f"strategy.options.{key}", self.option_keys[key].expected, value)
        out = {k: options.get(k, o.default) for k, o in self.option_keys.items()}
        return json.loads(json.dumps(out))


STRATEGIES: Registry[type[BaseStrategy]] = Registry("strategy.name")


def register_strategy(name: str) -> Callable[[type[BaseStrategy]], type[BaseStrategy]]:
    """Class decorator: register a :class:`BaseStrategy` under ``name`` (``--strategy name``)."""

    return STRATEGIES.register_class(name)


def list_strategies() -> list[str]:
    return STRATEGIES.names()


def get_strategy(name: str, field: str = "strategy.name") -> BaseStrategy:
    return STRATEGIES.get(name, field)()


def make_sampler(name: str, ctx: StrategyContext, field: str = "strategy.name") -> optuna.samplers.BaseSampler:
    """The checked sampler of strategy ``name`` for ``ctx``, seeded trial by trial from
    ``ctx.seed`` and each trial's place in the study (see :class:`SequencedSampler`): a resumed
    study continues its sequence."""
    strategy = get_strategy(name, field)
    strategy.check(ctx, field)
    if not strategy.sequenced:
        return strategy.sampler(ctx)
    return SequencedSampler(lambda seed: strategy.sampler(dataclasses.replace(ctx, seed=seed)), ctx.seed)
