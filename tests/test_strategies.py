"""What each history-based strategy promises, on cheap synthetic objectives through plain Optuna
studies: evolution's children and ageing, local search's one-gene moves and restarts, REINFORCE's
policy moving towards rewarded choices, and state that lives in the study's storage (a fresh
sampler, even one per trial, continues the same sequence). The conformance suite (seeded
determinism, the space, Ctrl-C, several objectives, two workers) runs over them in
``test_conformance_strategies.py``."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

from slimnas.strategies import StrategyContext, get_strategy, list_strategies, stored_controller
from slimnas.strategies._evolution import RegularizedEvolutionSampler
from slimnas.strategies._genes import (
    from_unit,
    in_distribution,
    mutate,
    neighbours,
    random_value,
    to_unit,
)
from slimnas.strategies._history import best_front, fitness_keys
from slimnas.strategies._local import LocalSearchSampler
from slimnas.strategies._reinforce import CONTROLLER_KEY, ReinforceSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

GENES = [f"g{i}" for i in range(6)]
CHOICES = [0, 1, 2, 3]


def flat(trial: optuna.Trial) -> float:
    """Six categorical genes; the sum of the choices, minimised (optimum: all zeros)."""
    return float(sum(trial.suggest_categorical(g, CHOICES) for g in GENES))


def conditional(trial: optuna.Trial) -> float:
    """A define-by-run space: the family decides which genes exist, the depth how many widths."""
    if trial.suggest_categorical("family", ["deep", "wide"]) == "deep":
        depth = trial.suggest_int("depth", 1, 4)
        widths = [trial.suggest_categorical(f"width_{i}", [4, 8, 16]) for i in range(depth)]
        return sum(widths) / 16 + trial.suggest_float("lr", 1e-3, 1e-1, log=True)
    return trial.suggest_float("scale", 0.0, 2.0) + trial.suggest_int("units", 1, 64, log=True) / 64


def plan(trial: optuna.trial.FrozenTrial, key: str) -> dict:
    return trial.system_attrs[key]


def children(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if plan(t, "slimnas:evolution")["parent"] is not None]


# --- genes ---------------------------------------------------------------------------------------

DISTRIBUTIONS = [
    CategoricalDistribution([None, True, 2.5, "x"]),
    IntDistribution(1, 4),
    IntDistribution(0, 100, step=5),
    IntDistribution(1, 1024, log=True),
    FloatDistribution(0.0, 0.9),
    FloatDistribution(0.0, 0.9, step=0.05),
    FloatDistribution(1e-4, 1e-1, log=True),
]


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=str)
def test_draws_mutations_and_neighbours_stay_in_the_distribution(dist):
    rng = np.random.default_rng(0)
    for _ in range(50):
        value = random_value(dist, rng)
        assert in_distribution(dist, value)
        child = mutate(dist, value, rng)
        assert in_distribution(dist, child) and repr(child) != repr(value)
        near = neighbours(dist, value)
        assert near and all(in_distribution(dist, v) and repr(v) != repr(value) for v in near)
        if not isinstance(dist, CategoricalDistribution):
            assert from_unit(dist, to_unit(dist, value)) == pytest.approx(value)
            assert len(near) <= 2  # one step down, one up
    if isinstance(dist, CategoricalDistribution):
        assert neighbours(dist, None) == [True, 2.5, "x"]


# --- ranking: budgets as constraints, several objectives ------------------------------------------

def _trial(number, values, violation=None):
    attrs = {} if violation is None else {"constraints:macs<=100": violation}
    t = create_trial(values=values, system_attrs=attrs, state=TrialState.COMPLETE)
    t.number = number
    return t


def test_infeasible_trials_rank_below_every_feasible_one():
    minimize = [StudyDirection.MINIMIZE]
    trials = [_trial(0, [5.0], -1.0), _trial(1, [0.0], 3.0), _trial(2, [1.0], 0.5), _trial(3, [9.0], 0.0)]
    keys = fitness_keys(trials, minimize)
    order = sorted(trials, key=lambda t: keys[t.number])
    # the feasible ones by value, then the infeasible by how far they miss (not by value)
    assert [t.number for t in order] == [0, 3, 2, 1]
    assert [t.number for t in best_front(trials, minimize)] == [0]
    assert [t.number for t in best_front(trials[1:3], minimize)] == [2]  # none feasible: the closest


def test_several_objectives_rank_by_pareto_front_then_crowding():
    both = [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    front = [_trial(0, [0.9, 100.0]), _trial(1, [0.8, 50.0]), _trial(2, [0.79, 49.0]), _trial(3, [0.5, 10.0])]
    trials = [*front, _trial(4, [0.7, 60.0]), _trial(5, [0.95, 5.0], violation=1.0)]
    keys = fitness_keys(trials, both)
    assert {t.number for t in best_front(trials, both)} == {0, 1, 2, 3}
    assert keys[4][:3] == (0, 0.0, 1.0)  # dominated by trial 1: second front
    assert keys[5][0] == 1  # dominates everything, but misses the budget
    # within the front the ends come first, then the less crowded: 1 and 2 are close together
    assert keys[0][3] == keys[3][3] == -math.inf
    assert max(keys[1][3], keys[2][3]) < 0


def test_nondominated_rank_matches_the_row_by_row_sort(monkeypatch):
    import slimnas.strategies._early_stopping as es

    rng = np.random.default_rng(0)
    for n, d in [(1, 2), (7, 1), (40, 2), (60, 3)]:
        points = rng.integers(0, 5, size=(n, d)).astype(float)  # many ties
        points[rng.random((n, d)) < 0.05] = math.inf  # a missing value ranks as the worst
        fast = es.nondominated_rank(points)
        monkeypatch.setattr(es, "DOMINANCE_MATRIX_ROWS", 0)
        slow = es.nondominated_rank(points)
        monkeypatch.undo()
        assert fast.tolist() == slow.tolist()
        # no row dominates another of its own front, and each later row is dominated by an earlier front's
        for i in range(n):
            beaten = [j for j in range(n) if np.all(points[j] <= points[i]) and np.any(points[j] < points[i])]
            assert all(fast[j] != fast[i] for j in beaten)
            if fast[i] > 0:
                assert any(fast[j] == fast[i] - 1 for j in beaten)
    assert es.nondominated_rank(np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [2.0, 2.0]])).tolist() == [0, 0, 1, 2]


def test_finished_trials_keys_are_computed_once_for_every_sampler_of_the_study(monkeypatch):
    import slimnas.strategies._history as history

    study = optuna.create_study(sampler=RegularizedEvolutionSampler(seed=0, population_size=4, n_startup_trials=4))
    study.optimize(flat, n_trials=12)
    calls = []
    real = history.params_key
    monkeypatch.setattr(history, "params_key", lambda params: calls.append(1) or real(params))
    trials = study.get_trials(deepcopy=False)
    keys = RegularizedEvolutionSampler(seed=1).candidate_keys(study, trials)
    assert keys == {real(t.params) for t in trials} and len(calls) <= 1  # the last trial's was not needed before
    calls.clear()
    # a fresh sampler (every trial gets one) reuses them
    assert RegularizedEvolutionSampler(seed=2).candidate_keys(study, trials) == keys and calls == []
    other = optuna.create_study()  # another study's trials are not taken for these
    other.add_trials(trials)
    assert RegularizedEvolutionSampler(seed=1).candidate_keys(other, other.get_trials(deepcopy=False)) == keys
    assert len(calls) == len(trials)


# --- evolution -----------------------------------------------------------------------------------

def test_evolution_children_differ_from_a_tournament_winner_in_one_or_two_genes():
    sampler = RegularizedEvolutionSampler(seed=1, population_size=8, tournament_size=3, n_startup_trials=5)
    study = optuna.create_study(sampler=sampler)
    study.optimize(flat, n_trials=40)
    kids = children(study)
    assert len(kids) == 35
    n_mutated = set()
    for child in kids:
        p = plan(child, "slimnas:evolution")
        parent = study.trials[p["parent"]]
        changed = {g for g in GENES if child.params[g] != parent.params[g]}
        assert changed == set(p["mutated"]) and 1 <= len(changed) <= 2, (child.number, changed, p)
        n_mutated.add(len(changed))
        # the parent was a member of the population: one of the 8 trials before the child
        assert child.number - 8 <= parent.number < child.number
    assert n_mutated == {1, 2}
    assert study.best_value < min(t.value for t in study.trials[:5])  # evolution improved on random


def test_evolution_children_do_not_repeat_a_candidate_while_new_ones_are_near():
    # 9 candidates, every one within two genes of every other: a child is drawn again while it
    # repeats a tried one, so the first 9 trials (one random, eight children) try all 9
    def small(trial):
        return float(trial.suggest_categorical("a", [0, 1, 2]) + 3 * trial.suggest_categorical("b", [0, 1, 2]))

    sampler = RegularizedEvolutionSampler(seed=0, population_size=3, tournament_size=2, n_startup_trials=1)
    study = optuna.create_study(sampler=sampler)
    study.optimize(small, n_trials=9)
    assert len({(t.params["a"], t.params["b"]) for t in study.trials}) == 9
    assert all(plan(t, "slimnas:evolution")["parent"] is not None for t in study.trials[1:])
    study.optimize(small, n_trials=2)  # none left: a child repeats one rather than failing
    assert study.trials[-1].state == optuna.trial.TrialState.COMPLETE


def test_evolution_population_keeps_members_within_the_budget():
    def objective(trial):
        value = flat(trial)
        trial.set_constraint("g0<=1", trial.params["g0"] - 1)
        return value

    sampler = RegularizedEvolutionSampler(seed=4, population_size=4, n_startup_trials=6)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=30)
    trials = study.trials
    feasible = [t for t in trials if t.params["g0"] <= 1]
    assert 4 <= len(feasible) < len(trials)  # the test says something only with both kinds
    assert sampler.population(trials) == feasible[-4:]
    # too few within the budget: they all stay, and the most recent others fill the places left
    few = [t for t in trials if t.number <= feasible[1].number]
    kept = sampler.population(few)
    assert [t for t in kept if t.params["g0"] <= 1] == feasible[:2]
    assert len(kept) == min(4, len(few)) and kept[-1] == few[-1]


def test_evolution_population_ages_out_its_oldest_members():
    # trial 0 (enqueued) is the study's best by far, and stays so; with the whole population in
    # every tournament it is the parent while it is a member, and never after it has aged out
    best = dict.fromkeys(GENES, 0)

    def objective(trial):
        value = flat(trial)
        return -100.0 if trial.params == best else value

    sampler = RegularizedEvolutionSampler(seed=0, population_size=4, tournament_size=4, n_startup_trials=4)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial(best)
    study.optimize(objective, n_trials=20)
    assert study.best_trial.number == 0
    parents = {t.number: plan(t, "slimnas:evolution")["parent"] for t in children(study)}
    assert parents[4] == 0  # trials 0-3 are the population
    assert all(p != 0 for n, p in parents.items() if n > 4)
    assert all(n - 4 <= p for n, p in parents.items())


def test_evolution_children_keep_the_parents_values_of_genes_they_share_and_draw_new_ones():
    sampler = RegularizedEvolutionSampler(seed=2, population_size=6, n_startup_trials=4)
    study = optuna.create_study(sampler=sampler)
    study.optimize(conditional, n_trials=40)
    n_new = 0
    for child in children(study):
        p = plan(child, "slimnas:evolution")
        parent = study.trials[p["parent"]]
        for name, value in child.params.items():
            if name in parent.params and name not in p["mutated"]:
                assert value == parent.params[name], (child.number, name)
            n_new += name not in parent.params
    assert n_new > 0  # some children grew genes their parents lacked (deeper, or another family)


def test_evolution_tournaments_prefer_feasible_members():
    def objective(trial):
        value = flat(trial)
        trial.set_constraint("g0<=1", trial.params["g0"] - 1)  # a budget: g0 at most 1
        return value

    sampler = RegularizedEvolutionSampler(seed=3, population_size=6, tournament_size=6, n_startup_trials=6)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=30)
    done = []
    for t in study.trials:
        p = plan(t, "slimnas:evolution")["parent"]
        if p is not None and any(u.params["g0"] <= 1 for u in done[-6:]):
            assert study.trials[p].params["g0"] <= 1, t.number
        done.append(t)


# --- local search --------------------------------------------------------------------------------

def test_local_search_changes_one_gene_of_the_incumbent_at_a_time():
    study = optuna.create_study(sampler=LocalSearchSampler(seed=0, n_startup_trials=3))
    study.optimize(flat, n_trials=40)
    moves = 0
    for t in study.trials:
        p = plan(t, "slimnas:local")
        if p["centre"] is None:
            continue
        moves += 1
        run = [u for u in study.trials[:t.number] if plan(u, "slimnas:local")["run"] == p["run"]]
        incumbent = min(run, key=lambda u: (u.value, u.number))
        assert p["centre"] == incumbent.number, t.number
        changed = [g for g in GENES if t.params[g] != incumbent.params[g]]
        assert changed == [p["gene"]], (t.number, changed)
    assert moves > 30
    assert study.best_value == 0.0  # a separable objective: hill climbing reaches the optimum


def test_local_search_restarts_when_every_neighbour_is_tried():
    # two genes of three choices: the incumbent has four neighbours
    def objective(trial):
        x, y = trial.suggest_categorical("x", [0, 1, 2]), trial.suggest_categorical("y", [0, 1, 2])
        return float((x - 1) ** 2 + (y - 2) ** 2)

    study = optuna.create_study(sampler=LocalSearchSampler(seed=0, n_startup_trials=2))
    study.optimize(objective, n_trials=25)
    plans = [plan(t, "slimnas:local") for t in study.trials]
    restart = next(i for i, p in enumerate(plans) if p["run"] == 1)
    assert plans[restart]["centre"] is None
    run0 = study.trials[:restart]
    incumbent = min(run0, key=lambda t: (t.value, t.number))
    tried = {(t.params["x"], t.params["y"]) for t in run0}
    x, y = incumbent.params["x"], incumbent.params["y"]
    around = {(v, y) for v in (0, 1, 2) if v != x} | {(x, v) for v in (0, 1, 2) if v != y}
    assert around <= tried  # stuck: every neighbour evaluated, none better
    assert all(t.value >= incumbent.value for t in run0)
    # the new run climbs from its own start, not from the old incumbent
    after = [p for p in plans[restart + 1:] if p["run"] == 1 and p["centre"] is not None]
    assert after and all(p["centre"] > restart - 1 for p in after)
    assert max(p["run"] for p in plans) >= 2  # a space this small gets stuck again


# --- REINFORCE -----------------------------------------------------------------------------------

def _probabilities(entry: dict) -> dict:
    theta = np.asarray(entry["theta"])
    p = np.exp(theta - theta.max())
    return dict(zip(entry["choices"], p / p.sum(), strict=True))


def test_reinforce_moves_probability_mass_towards_the_rewarded_choice():
    def objective(trial):
        op = trial.suggest_categorical("op", ["conv", "pool", "skip", "none"])
        return (1.0 if op == "skip" else 0.0) + 0.01 * trial.suggest_int("noise", 0, 9)

    sampler = ReinforceSampler(seed=0, n_startup_trials=4)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(objective, n_trials=40)
    stored = stored_controller(study)
    p = _probabilities(stored["logits"]["op"])
    assert max(p, key=p.get) == "skip" and p["skip"] > 0.6, p
    assert stored["n"] == 40 and stored["last"] == 39
    picks = [t.params["op"] == "skip" for t in study.trials]
    assert sum(picks[20:]) > sum(picks[4:20]) * 20 / 16  # picked more often as it learns


def test_reinforce_moves_a_numeric_gene_towards_rewarded_values():
    sampler = ReinforceSampler(seed=1, n_startup_trials=4)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: abs(t.suggest_float("x", 0.0, 1.0) - 0.85), n_trials=60)
    gaussian = stored_controller(study)["gaussians"]["x"]
    assert gaussian["mu"] > 0.7, gaussian
    assert math.exp(gaussian["log_sigma"]) < 0.25  # narrower than it started


def test_reinforce_penalises_missing_the_budget():
    # 'big' has the best value but misses the budget: the controller learns 'mid'
    def objective(trial):
        size = trial.suggest_categorical("size", ["small", "mid", "big"])
        trial.set_constraint("size", 1.0 if size == "big" else -1.0)
        return {"small": 1.0, "mid": 2.0, "big": 3.0}[size]

    sampler = ReinforceSampler(seed=0, n_startup_trials=4)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(objective, n_trials=40)
    p = _probabilities(stored_controller(study)["logits"]["size"])
    assert max(p, key=p.get) == "mid" and p["big"] < 0.2, p


def test_reinforce_snapshot_equals_a_replay_and_a_stale_one_is_ignored():
    sampler = ReinforceSampler(seed=0, n_startup_trials=3)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(lambda t: float(t.suggest_categorical("op", ["a", "b", "c"]) == "b"), n_trials=15)
    stored = stored_controller(study)
    study._storage.set_study_system_attr(study._study_id, CONTROLLER_KEY, None)
    assert sampler.controller(study) == stored  # replayed from the trials alone
    # a snapshot that folded other trials than the history's prefix is not trusted
    bogus = {**stored, "n": 5, "last": 99, "logits": {"op": {"choices": ["a", "b", "c"], "theta": [9.0, 0.0, 0.0]}}}
    study._storage.set_study_system_attr(study._study_id, CONTROLLER_KEY, bogus)
    assert sampler.controller(study) == stored


# --- state in the study's storage ----------------------------------------------------------------

SAMPLERS = {
    "evolution": lambda seed: RegularizedEvolutionSampler(seed=seed, population_size=6, n_startup_trials=4),
    "local": lambda seed: LocalSearchSampler(seed=seed, n_startup_trials=4),
    "rl": lambda seed: ReinforceSampler(seed=seed, n_startup_trials=4),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_a_fresh_sampler_continues_the_same_sequence(name, tmp_path):
    storage = f"sqlite:///{tmp_path / 'state.db'}"
    make = SAMPLERS[name]

    def run(study_name, chunks):
        for n in chunks:  # each chunk: a new process's worth of trials, with a new sampler
            seed = 8 if study_name == "other-seed" else 7
            study = optuna.create_study(storage=storage, study_name=study_name, sampler=make(seed),
                                        load_if_exists=True)
            study.optimize(conditional, n_trials=n)
        return [t.params for t in study.trials]

    whole = run("whole", [18])
    assert run("resumed", [8, 10]) == whole
    assert run("per-trial", [1] * 18) == whole  # one sampler per trial: nothing kept in the object
    assert run("other-seed", [18]) != whole


@pytest.mark.parametrize("name", ["evolution", "local", "rl"])
def test_works_on_compress_auto_genes_from_enqueued_warm_starts(name):
    layers = ["conv1", "conv2", "fc"]
    warm = [{**{f"prune:{n}": r for n in layers}, **{f"precision:{n}": "int8" for n in layers}, "importance": "l1"}
            for r in (0.1, 0.3, 0.5)]

    def objective(trial):
        ratios = [trial.suggest_float(f"prune:{n}", 0.0, 0.9) for n in layers]
        bits = [trial.suggest_categorical(f"precision:{n}", ["fp32", "int8"]) for n in layers]
        trial.suggest_categorical("importance", ["l1", "taylor"])
        macs = sum(1 - r for r in ratios)
        trial.set_constraint("macs<=50%", macs - 1.5)
        return 1 - 0.1 * sum(r ** 2 for r in ratios) - 0.01 * bits.count("int8")

    ctx = StrategyContext(space=None, seed=0, n_objectives=1, n_startup_trials=4, population_size=6)
    sampler = get_strategy(name).sampler(ctx)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    for params in warm:
        study.enqueue_trial(params)
    study.optimize(objective, n_trials=16)
    assert [t.params for t in study.trials[:3]] == warm  # the warm starts ran as given
    assert len({str(t.params) for t in study.trials}) >= 12
    assert any(all(c <= 0 for c in t.constraints.values()) for t in study.trials[3:])


def test_every_history_strategy_is_registered():
    assert {"evolution", "local", "rl"} <= set(list_strategies())
    assert all(get_strategy(n).multi_objective for n in ("evolution", "local", "rl"))


def test_gp_samples_when_a_trial_without_a_parameter_completes_after_the_space_was_inferred():
    # two workers: the search space is inferred when a trial starts; another worker's trial
    # that lacks a parameter of it (a shallower net) completes before this one samples
    from slimnas.strategies._samplers import ParallelSafeGPSampler

    def deep(trial):
        return float(sum(trial.suggest_float(f"x{i}", 0, 1) for i in range(3)))

    sampler = ParallelSafeGPSampler(seed=0, n_startup_trials=3)
    study = optuna.create_study(sampler=sampler)
    study.optimize(deep, n_trials=4)
    trial = study.ask()
    space = sampler.infer_relative_search_space(study, study._storage.get_trial(trial._trial_id))
    assert set(space) == {"x0", "x1", "x2"}
    study.add_trial(optuna.trial.create_trial(params={"x0": 0.5}, distributions={
        "x0": optuna.distributions.FloatDistribution(0, 1)}, value=0.5))  # the other worker's
    params = sampler.sample_relative(study, study._storage.get_trial(trial._trial_id), space)
    assert set(params) == {"x0", "x1", "x2"} and all(0 <= v <= 1 for v in params.values())
