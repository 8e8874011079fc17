"""A search's plan: its configuration resolved against every registry and checked, before
anything is written, loaded or trained."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimnas.compress._space import CompressionSpace
from slimnas.config import DeviceProfile, MeasureSettings, RunConfig, load_config
from slimnas.errors import ConfigError
from slimnas.measure import (
    RUNTIMES,
    Budget,
    LatencyPredictor,
    check_profile,
    get_metric,
    profile_predictor,
)
from slimnas.measure._metric import parse_objectives
from slimnas.measure._profile import load_profile, profile_precision
from slimnas.spaces import SearchSpace
from slimnas.strategies import StrategyContext, get_strategy
from slimnas.strategies._early_stopping import early_stopping_rule
from slimnas.study._definition import definition_of
from slimnas.study._driver import StudySpec
from slimnas.study._task import check_task_plan, plan_task, task_objectives, task_space
from slimnas.tasks import Task


@dataclass(frozen=True)
class SearchPlan:
    """Everything a search needs: the configuration, the search space, the objectives (metric
    names), the budget and the early-stopping rule, all checked.

    Example:
        >>> plan = SearchPlan.from_config(load_config(dataset="digits", budget=["macs<=20k"]))
        >>> plan.objectives, [str(b) for b in plan.budget]
        (('accuracy', 'macs'), ['macs<=20000'])
    """

    config: RunConfig
    space: SearchSpace
    objectives: tuple[str, ...]
    budget: tuple[Budget, ...]
    early_stopping: str
    #: the device the run targets (``device_profile``), and its table's latency predictor
    profile: DeviceProfile | None = field(default=None, compare=False)
    predictor: LatencyPredictor | None = field(default=None, compare=False, repr=False)
    #: what the models are trained to do (``task:``, or the dataset's own), not yet fitted
    task: Task | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: RunConfig) -> SearchPlan:
        """Resolve names (metrics, strategy, early stopping, runtime, families, compressors,
        the device profile) and check the space; raises :class:`ConfigError` naming the first
        wrong field."""
        if config.reevaluate:
            raise ConfigError("reevaluate", "0 in a training search (re-evaluating candidates on other seeds "
                              "applies to --benchmark searches for now)", config.reevaluate)
        task = plan_task(config)
        objectives = parse_objectives(list(task_objectives(task, config.objectives)))
        budget = tuple(Budget.parse(b, "budget") for b in config.budget)
        if any(b.relative for b in budget):
            raise ConfigError("budget", "absolute limits for a search (relative '%' budgets need an input model)",
                              [str(b) for b in budget])
        profile = predictor = None
        if config.device_profile is not None:
            profile = load_profile(config.device_profile, "device_profile")
            if profile.source not in ("built-in", ""):
                config = dataclasses.replace(config, device_profile=profile.source)  # found from any folder
            shown = {str(b) for b in budget}
            budget += tuple(b for b in check_profile(profile) if str(b) not in shown)
            predictor = profile_predictor(profile, "device_profile")
            if predictor is not None and not predictor.supports(profile.batch[0], profile_precision(profile)):
                predictor = None
        cost = get_metric(config.fitness.cost, "fitness.cost")
        if cost.direction != "minimize" or cost.name == "fitness":
            raise ConfigError("fitness.cost", "a cost metric such as macs, params, bytes or latency_ms", cost.name)
        if config.measure.runtime not in RUNTIMES:
            raise ConfigError("measure.runtime", f"one of {RUNTIMES.names()}", config.measure.runtime)
        timed = {"latency_ms"} & {*objectives, *(b.metric for b in budget), cost.name}
        if timed and predictor is None:  # latency is measured here: the runtime must run on this machine
            RUNTIMES.get(profile.runtime if profile else config.measure.runtime)().check(
                "device_profile.runtime" if profile else "measure.runtime")
        strategy = get_strategy(config.strategy.name)
        rule = early_stopping_rule(config.strategy.early_stopping, config.strategy.name)
        space = SearchSpace.from_config(task_space(task, config.space), config.training,
                                        compression=CompressionSpace.from_config)
        check_task_plan(task, config, {"objectives": objectives, "budget": [b.metric for b in budget],
                                       "fitness.cost": [cost.name]}, space.families)
        strategy.check(StrategyContext(space=space, seed=config.seed, n_objectives=len(objectives),
                                       options=dict(config.strategy.options), objectives=objectives))
        if strategy.needs_grid:
            space.grid()  # a space grid search cannot enumerate is refused now, not after set-up
        return cls(config=config, space=space, objectives=objectives, budget=budget, early_stopping=rule,
                   profile=profile, predictor=predictor, task=task)

    @classmethod
    def load(cls, config: str | Path | RunConfig | None = None, /, **overrides: Any) -> SearchPlan:
        """A plan from a YAML path (or ``None`` for the built-in default) and the CLI's overrides."""
        if isinstance(config, RunConfig):
            if overrides:
                raise TypeError("pass overrides with a YAML path or None, not with a RunConfig")
            return cls.from_config(config)
        return cls.from_config(load_config(config, **overrides))

    @property
    def study_spec(self) -> StudySpec:
        cfg = self.config
        return StudySpec(name=cfg.study_name, storage=cfg.storage_url, objectives=self.objectives,
                         strategy=cfg.strategy.name, early_stopping=self.early_stopping, seed=cfg.seed,
                         max_epochs=self.watched_epochs, space=self.space,
                         n_startup_trials=cfg.strategy.n_startup_trials, population_size=cfg.strategy.population_size,
                         definition=self.definition, options=dict(cfg.strategy.options) or None)

    @property
    def watched_epochs(self) -> int:
        """Length of the training that early stopping watches: the candidate's training, or with
        compression genes the short ranking fine-tune (parents always train in full)."""
        if self.space.compression is not None:
            return max(1, self.space.compression.value("finetune_epochs"))
        return self.config.epochs or self.space.max_epochs

    @property
    def tracked(self) -> list[str]:
        """Every metric the objectives and budgets read."""
        names = [*self.objectives, *(b.metric for b in self.budget)]
        if "fitness" in self.objectives:
            names.append(get_metric(self.config.fitness.cost).name)
        return list(dict.fromkeys(names))

    @property
    def measure_settings(self) -> MeasureSettings:
        """What metrics read from the run's settings (see :class:`slimnas.measure.MeasureContext`)."""
        m, f, p = self.config.measure, self.config.fitness, self.profile
        settings = MeasureSettings(runtime=m.runtime, latency_batch=m.latency_batch,
                                   latency_repeats=m.latency_repeats, threads=m.threads,
                                   fitness_cost=f.cost, fitness_weight=f.weight)
        if p is None:
            return settings
        # the device's runtime, threads, batch and precision; its table predicts latency
        return MeasureSettings.of(settings, runtime=p.runtime, threads=p.threads, latency_batch=p.batch[0],
                                  precision=profile_precision(p), activation_bytes=p.activation_bytes,
                                  latency_predictor=self.predictor)

    @property
    def definition(self) -> dict[str, Any]:
        """What makes a study this search: the data, the space, the recipe, the strategy and the
        objectives. A study resumes only under the same definition (the budget, the seed, the
        trial count and the timeout may change)."""
        return definition_of(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration (defaults filled in), as ``config.yaml`` stores it;
        :meth:`load` reads it back into an equal plan."""
        out = self.config.to_dict()
        out["objectives"] = list(self.objectives)
        out["budget"] = [str(b) for b in self.budget]
        out["space"], out["training"] = self.space.to_config()
        return out

