"""Bayesian optimisation over the genes with a Gaussian process per objective and expected
hypervolume improvement (EHVI; Emmerich et al. 2006), the predictor-guided Pareto search of
BO-style multi-objective NAS.

Each objective's observed values are modelled by a Gaussian process on the trials' genes: the
kernel is ``exp(-distance / lengthscale)``, the distance the share of genes that differ (a
categorical gene) or their gap on the unit range (a numeric one), so every combination of genes
interacts. Where categorical genes share one choice set (a cell's edges, a chain's layers), the
kernel is half that and half ``exp(-counts / lengthscale')``, ``counts`` how far apart two
candidates are in how many of those genes take each choice (:func:`count_distances`): the
number of convolutions of a cell tells much of its accuracy wherever they sit, which the
mismatches alone learn one placement at a time. The lengthscales and the observation noise are
chosen by marginal likelihood from small grids on every trial (``lengthscale'`` may be
infinite: the counts left out). The model predicts a candidate's *observation*, noise included: a
cell's measured latency or single-seed accuracy scatters around what its genes explain (on
NAS-Bench-201 the fast end of the accuracy x latency front is made of cells measured a few
milliseconds faster than their operations predict), so a candidate whose predicted figures sit
behind the front still has a chance of landing on it, and that chance is worth trials where the
front would gain much area.

The next candidate is the one of a pool with the largest expected gain of the observed front's
hypervolume (reference: the worst value seen of each objective): with two objectives the gain
is integrated exactly over the first objective's Gaussian and by Gauss-Hermite quadrature over
the second's (its tails included: the trials that land far ahead of the front);
with one, it is the expected improvement over the best trial; with more than two, the
expected improvement of a random Tchebycheff scalarisation (ParEGO, Knowles 2006). The pool:
every candidate one or two genes away from a member of the front (the incumbent with one
objective), and random ones; never a candidate tried before.

Objectives known before training (:attr:`StrategyContext.known_objectives`: a candidate's size,
or a latency read from its architecture) are not modelled: with two objectives, one of them
known, each candidate's known value is read from the hook and only the other is predicted, so
the expected gain is exact in the known coordinate (a one-dimensional expected improvement of
the hypervolume per candidate, computed only for the candidates whose bound, with the prior's
spread, passes the best gain). The candidates are then the whole space when it is a small
categorical one (at most :data:`WHOLE_SPACE`), else the usual pool with :data:`N_RANDOM_KNOWN`
random ones; their costs are cheap to know, and the pool keeps :data:`N_KNOWN_POOL` of them
spread evenly over the cost's range (:func:`spread_by_cost`) with the front's neighbours, so the
search aims at the cost bands where the front lacks accuracy, the rare cheap candidates included.

No state is carried between trials: each trial's plan (the candidate) is derived from the
study's finished trials and written to the trial (see :mod:`slimnas.strategies._history`), so a
resumed study and several workers continue the same search.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence

import numpy as np
import optuna
from numpy.polynomial.hermite_e import hermegauss
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import ndtr

from slimnas.strategies._base import BaseStrategy, StrategyContext, register_strategy
from slimnas.strategies._genes import from_unit, in_distribution, neighbours, random_value, to_unit
from slimnas.strategies._history import BaseHistorySampler, best_front, completed, signed_values

#: lengthscales (on the share of genes that differ) and noise variances (of the standardised
#: values) the marginal likelihood picks from
LENGTHSCALES = (0.08, 0.17, 0.33, 0.67)
NOISES = (1e-3, 1e-2, 0.05, 0.2)
#: the choice counts' part of the kernel (see :class:`GaussianProcess`): its weight, its
#: lengthscales (inf: left out), and the genes' lengthscales added once the counts are in (inf:
#: the genes' part constant)
COUNT_WEIGHT = 0.5
COUNT_LENGTHSCALES = (math.inf, 0.25, 0.5, 1.0, 2.0, 4.0)
LONG_LENGTHSCALES = (1.33, math.inf)
#: Gauss-Hermite nodes over the second objective's predictive Gaussian (the two-objective gain)
QUANTILES = 24
#: random candidates added to the pool on every trial, and the most two-gene moves per front member
N_RANDOM = 500
MAX_PAIRS = 240
#: with a known objective: the candidates are every untried one of a categorical space of at most
#: this many, else the usual pool with this many random ones; of them, the pool keeps at most
#: N_KNOWN_POOL spread evenly over the known cost's range (COST_BINS equal bins), and the front's
#: neighbours
WHOLE_SPACE = 20_000
N_RANDOM_KNOWN = 4000
N_KNOWN_POOL = 2000
COST_BINS = 40
#: the known objectives' values of candidates, per hook (a cache, not state: a hook answers the
#: same for the same candidate), by the genes' names and the candidate's codes
_KNOWN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class GaussianProcess:
    """A Gaussian process on encoded candidates (see :class:`Encoding`), fitted to ``y``.

    The kernel is ``exp(-d / lengthscale)`` with ``d`` the mean over genes of the per-gene
    distance (1 for a categorical mismatch, the unit-range gap of a numeric gene); the values are
    standardised, and the lengthscale and noise are the pair of :data:`LENGTHSCALES` x
    :data:`NOISES` with the largest marginal likelihood.

    ``distance`` may also stack a second distance after the genes' (:func:`kernel_distances`:
    the choice counts'): the kernel is then ``(1 - w) exp(-d / lengthscale) + w exp(-d' /
    lengthscale')``, ``w`` = :data:`COUNT_WEIGHT`, so a candidate correlates with those of the same
    counts wherever its genes sit, and still more with those of the same genes. ``lengthscale'``
    is chosen from :data:`COUNT_LENGTHSCALES` (``inf``: the counts left out, the kernel as with one
    distance) with the genes' kept, then the genes' again, from :data:`LENGTHSCALES` and
    :data:`LONG_LENGTHSCALES`.

    Example:
        >>> x = np.array([[0, 0], [0, 1], [1, 1], [2, 2]], float); kinds = np.array([True, True])
        >>> gp = GaussianProcess(x, kinds, np.array([0.0, 1.0, 2.0, 5.0]))
        >>> mean, sd = gp.predict(np.array([[0, 1]], float))
        >>> bool(abs(mean[0] - 1.0) < 0.5)
        True
    """

    def __init__(self, x: np.ndarray, categorical: np.ndarray, y: np.ndarray, *,
                 distance: np.ndarray | None = None) -> None:
        self.x, self.categorical = x, categorical
        self.mean, self.scale = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mean) / self.scale
        d = distances(x, x, categorical) if distance is None else distance
        d = d[None] if d.ndim == 2 else d
        if len(d) > 2:
            raise ValueError(f"distance: the genes' and at most the counts' (got {len(d)} stacked)")
        eye = np.eye(len(z))

        def fit(scales: tuple[float, ...], noises=NOISES):
            best = None
            k0 = self._kernel(d, scales)
            for noise in noises:
                try:
                    chol = np.linalg.cholesky(k0 + noise * eye)
                except np.linalg.LinAlgError:
                    continue
                alpha = cho_solve((chol, True), z)
                loglik = -0.5 * float(z @ alpha) - float(np.log(np.diag(chol)).sum())
                if best is None or loglik > best[0]:
                    best = (loglik, scales, noise, chol, alpha)
            return best

        def better(best, scales, noises=NOISES):
            b = fit(scales, noises) if any(math.isfinite(ell) for ell in scales) else None
            return b if b is not None and (best is None or b[0] > best[0]) else best

        best = None
        for ell in LENGTHSCALES:  # the genes' lengthscale alone, then the counts', then the genes' again
            best = better(best, (ell, math.inf)[:len(d)])
        if len(d) > 1:
            for ell in COUNT_LENGTHSCALES:
                best = better(best, (best[1][0], ell))
            if math.isfinite(best[1][1]):
                for ell in (*LENGTHSCALES, *LONG_LENGTHSCALES):
                    best = better(best, (ell, best[1][1]))
        _, self.lengthscales, self.noise, self.chol, self.alpha = best
        self.lengthscale = self.lengthscales[0]

    @staticmethod
    def _kernel(d: np.ndarray, scales: tuple[float, ...]) -> np.ndarray:
        genes = np.exp(-d[0] / scales[0]) if math.isfinite(scales[0]) else np.ones(d[0].shape)
        if len(d) < 2 or not math.isfinite(scales[1]):
            return genes
        return (1 - COUNT_WEIGHT) * genes + COUNT_WEIGHT * np.exp(-d[1] / scales[1])

    def kernel(self, distance: np.ndarray) -> np.ndarray:
        """The kernel of the distances (the genes', or stacked with the counts' as when fitted)."""
        return self._kernel(distance[None] if distance.ndim == 2 else distance, self.lengthscales)

    def predict(self, x: np.ndarray, *, distance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The predictive mean and standard deviation of an observation (noise included);
        ``distance``: :func:`distances` of ``x`` to the fitted rows, when computed already."""
        d = distances(x, self.x, self.categorical) if distance is None else distance
        k = self.kernel(d)
        v = solve_triangular(self.chol, k.T, lower=True, check_finite=False)
        var = np.clip(1.0 - (v * v).sum(0), 0.0, None) + self.noise
        return k @ self.alpha * self.scale + self.mean, np.sqrt(var) * self.scale


def distances(a: np.ndarray, b: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    """The mean per-gene distance between every row of ``a`` and of ``b`` (codes of
    :class:`Encoding`): 1 where a categorical gene differs (a missing gene, -1, differs from
    every value), the gap (at most 1) of a numeric one."""
    total = np.zeros((len(a), len(b)))
    cat = np.flatnonzero(categorical)
    if len(cat):
        width = int(max(a[:, cat].max(initial=0), b[:, cat].max(initial=0))) + 1
        def onehot(m):
            out = np.zeros((len(m), len(cat) * width))
            for j, g in enumerate(cat):
                rows = np.flatnonzero(m[:, g] >= 0)
                out[rows, j * width + m[rows, g].astype(int)] = 1.0
            return out
        total += len(cat) - onehot(a) @ onehot(b).T
    for g in np.flatnonzero(~categorical):
        total += np.minimum(np.abs(a[:, g][:, None] - b[:, g][None, :]), 1.0)
    return total / len(categorical)


def kernel_distances(enc: Encoding, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The distances :class:`GaussianProcess` is fitted on: the genes' (:func:`distances`), and
    stacked after them the choice counts' (:func:`count_distances`) where genes share a choice set."""
    d = distances(a, b, enc.categorical)
    if not shared_choice_groups(enc):
        return d
    return np.stack([d, count_distances(enc, a, b)])


def shared_choice_groups(enc: Encoding) -> list[list[int]]:
    """The categorical genes that share one choice set, in groups of two or more."""
    groups: dict[tuple, list[int]] = {}
    for g, (dist, cat) in enumerate(zip(enc.dists, enc.categorical, strict=True)):
        if cat:
            groups.setdefault(tuple(map(repr, dist.choices)), []).append(g)
    return [gs for gs in groups.values() if len(gs) > 1]


def count_distances(enc: Encoding, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How far apart rows of ``a`` and ``b`` are in how many genes take each choice, among
    categorical genes that share one choice set (the edges of a cell, the layers of a chain):
    half the L1 gap of the counts over the group's size, averaged over such groups; zeros where
    no two genes share a choice set."""
    groups = shared_choice_groups(enc)
    if not groups:
        return np.zeros((len(a), len(b)))

    def steps(m: np.ndarray) -> np.ndarray:
        # [how many genes take choice c > t], t < the group's size, weighted: two rows' counts of a
        # choice differ by the number of such steps that differ (a square distance of 0/1 features)
        out = []
        for genes in groups:
            counts = np.stack([(m[:, genes] == c).sum(1) for c in range(len(enc.dists[genes[0]].choices))], 1)
            out.append((counts[:, :, None] > np.arange(len(genes))).reshape(len(m), -1) / math.sqrt(2 * len(genes)))
        return np.concatenate(out, 1)

    sa, sb = steps(a), steps(b)
    total = (sa * sa).sum(1)[:, None] + (sb * sb).sum(1)[None, :] - 2 * sa @ sb.T
    return np.maximum(total, 0.0) / len(groups)


def expected_gain(mean: np.ndarray, sd: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``E[max(0, level - y)]`` for ``y ~ N(mean, sd)``, per candidate (rows) and level (columns)."""
    z = (levels[None, :] - mean[:, None]) / sd[:, None]
    return sd[:, None] * (z * ndtr(z) + np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))


def expected_hvi(mean: np.ndarray, sd: np.ndarray, front: np.ndarray, reference: Sequence[float],
                 quantiles: int = QUANTILES) -> np.ndarray:
    """The expected gain of a two-objective front's hypervolume (both minimised) from adding a
    candidate whose objectives are independent Gaussians (``mean``, ``sd``: one row per candidate,
    two columns). Exact over the first objective, by a ``quantiles``-node Gauss-Hermite rule over
    the second.

    ``front``: the front's points (rows), bounded by ``reference`` (the worst values).

    Example:
        >>> front = np.array([[1.0, 3.0], [3.0, 1.0]])
        >>> g = expected_hvi(np.array([[0.0, 0.0], [2.0, 2.0], [5.0, 5.0]]), np.full((3, 2), 1e-6),
        ...                  front, (4.0, 4.0))
        >>> [round(float(v), 3) for v in g]  # the gain of (0, 0), of (2, 2), of a dominated point
        [11.0, 1.0, 0.0]
    """
    pts = front[np.argsort(front[:, 1], kind="stable")] if len(front) else np.zeros((0, 2))
    # along the second objective: [-inf, x1), [x1, x2), ..., [xk, ref) with the first objective's
    # best value in each (the reference before the first point)
    starts = np.concatenate([[-np.inf], pts[:, 1]])
    ends = np.concatenate([pts[:, 1], [reference[1]]])
    levels = np.concatenate([[reference[0]], np.minimum.accumulate(pts[:, 0]) if len(pts) else []])
    gain = expected_gain(mean[:, 0], sd[:, 0], levels)  # per candidate and segment
    total = np.zeros(len(mean))
    nodes, weights = hermegauss(quantiles)
    for z, w in zip(nodes, weights / weights.sum(), strict=True):
        x = mean[:, 1] + z * sd[:, 1]
        width = np.clip(np.minimum(ends[None, :], reference[1]) - np.maximum(starts[None, :], x[:, None]), 0.0, None)
        total += w * (width * gain).sum(1)
    return total


class EHVISampler(BaseHistorySampler):
    """Gaussian-process Bayesian optimisation with expected hypervolume improvement, as an
    Optuna sampler (see the module's docstring).

    Args:
        seed: with each trial's number, seeds its random candidates and draws.
        n_startup_trials: complete trials drawn at random before the models are fitted.
        known: the objectives known before training (see
            :attr:`~slimnas.strategies.StrategyContext.known_objectives`).

    Example:
        >>> import optuna
        >>> study = optuna.create_study(sampler=EHVISampler(seed=0, n_startup_trials=4))
        >>> study.optimize(lambda t: abs(t.suggest_int("x", 0, 20) - 7), n_trials=20)
        >>> study.best_value
        0.0
    """

    plan_key = "slimnas:ehvi"

    def __init__(self, *, seed: int = 0, n_startup_trials: int = 5,
                 known: Callable[[dict], Sequence[float | None]] | None = None) -> None:
        super().__init__(seed=seed, n_startup_trials=n_startup_trials)
        self.known = known

    def known_values(self, enc: Encoding, rows: np.ndarray, directions) -> np.ndarray:
        """The hook's values of candidates (codes), minimised like :func:`signed_values`; ``nan``
        where an objective needs training. Each candidate is asked once per hook (each trial has
        a sampler of its own: the answers are kept with the hook)."""
        def ask(row: np.ndarray) -> list[float]:
            given = list(self.known(enc.decode(row)) or [])
            values = [math.nan if j >= len(given) or given[j] is None else float(given[j])
                      for j in range(len(directions))]
            return [-v if d == optuna.study.StudyDirection.MAXIMIZE else v
                    for v, d in zip(values, directions, strict=True)]

        try:
            store = _KNOWN.setdefault(self.known, {})
        except TypeError:  # a hook that cannot be weakly referenced: no cache
            store = {}
        sizes = [len(d.choices) if c else 0 for d, c in zip(enc.dists, enc.categorical, strict=True)]
        if enc.categorical.all() and math.prod(sizes) <= WHOLE_SPACE and (rows >= 0).all():
            # a small categorical space: the answers in an array indexed by the candidate's place
            values, asked = store.setdefault((tuple(enc.names), "grid"), (
                np.zeros((math.prod(sizes), len(directions))), np.zeros(math.prod(sizes), dtype=bool)))
            idx = np.ravel_multi_index(rows.astype(int).T, sizes)
            for i in np.unique(idx[~asked[idx]]):
                values[i], asked[i] = ask(np.array(np.unravel_index(i, sizes), dtype=float)), True
            return values[idx]
        cache = store.setdefault(tuple(enc.names), {})
        out = np.empty((len(rows), len(directions)))
        for i, row in enumerate(rows):
            key = row.tobytes()
            if key not in cache:
                cache[key] = ask(row)
            out[i] = cache[key]
        return out

    def plan(self, study: optuna.Study, trial: FrozenTrial, others: list[FrozenTrial], *, enqueued: bool) -> dict:
        done = completed(others)
        if enqueued or len(done) < max(2, self.n_startup_trials):
            return {"centre": None}
        enc = Encoding(gene_space(done))
        if not enc.names:
            return {"centre": None}
        directions = study.directions
        y = np.array([signed_values(t, directions) for t in done], dtype=float)
        for j in range(y.shape[1]):  # a failed measurement: the worst value seen, and a little worse
            col, ok = y[:, j], np.isfinite(y[:, j])
            if not ok.any():
                return {"centre": None}
            span = float(col[ok].max() - col[ok].min()) or 1.0
            col[~ok] = col[ok].max() + 0.1 * span
        rng = self.rng(study, trial, "ehvi")
        x = np.array([enc.encode(t.params) for t in done])
        incumbents = best_front(done, directions)
        seen = {enc.encode(t.params).tobytes() for t in others if t.state not in (TrialState.COMPLETE,)}
        seen |= {row.tobytes() for row in x}
        centres = np.array([enc.encode(t.params) for t in incumbents])
        known_cols: list[int] = []
        if self.known is not None and len(directions) == 2:
            pool = whole_space(enc, seen)
            if pool is None:
                pool = candidate_pool(enc, centres, rng, seen, n_random=N_RANDOM_KNOWN)
            if len(pool):
                kv = self.known_values(enc, pool, directions)
                known_cols = [j for j in range(2) if np.isfinite(kv[:, j]).all()]
                if len(known_cols) != 1:  # both known: nothing to learn, as without the hook
                    known_cols = []
                    pool = candidate_pool(enc, centres, rng, seen)
                elif len(pool) > N_KNOWN_POOL:  # spread over the known cost, and the front's neighbours
                    pool = np.unique(np.concatenate([
                        pool[spread_by_cost(kv[:, known_cols[0]], N_KNOWN_POOL, rng)],
                        candidate_pool(enc, centres, rng, seen, n_random=0)]), axis=0)
                    kv = self.known_values(enc, pool, directions)
        else:
            pool = candidate_pool(enc, centres, rng, seen)
        if not len(pool):
            return {"centre": None}
        if len(directions) > 2:  # ParEGO: one random Tchebycheff scalarisation per trial
            lo, hi = y.min(0), y.max(0)
            w = rng.dirichlet(np.ones(y.shape[1]))
            u = (y - lo) / np.where(hi > lo, hi - lo, 1.0)
            y = (np.max(w * u, axis=1) + 0.05 * (w * u).sum(1))[:, None]
        d_fit, d_pool = kernel_distances(enc, x, x), kernel_distances(enc, pool, x)
        keep = {t.number for t in incumbents}
        front = np.array([y[i] for i, t in enumerate(done) if t.number in keep])
        if known_cols:  # one objective known, the other modelled: the gain is exact in the known one
            k = known_cols[0]
            u = 1 - k
            reference = (float(y[:, u].max()), max(float(y[:, k].max()), float(kv[:, k].max())))
            gp = GaussianProcess(x, enc.categorical, y[:, u], distance=d_fit)
            score = known_cost_gain(gp, d_pool, kv[:, k], front[:, [u, k]], reference)
        elif y.shape[1] == 2:
            preds = [GaussianProcess(x, enc.categorical, y[:, j], distance=d_fit).predict(pool, distance=d_pool)
                     for j in range(2)]
            mean = np.stack([p[0] for p in preds], 1)
            sd = np.maximum(np.stack([p[1] for p in preds], 1), 1e-9)
            score = expected_hvi(mean, sd, front, tuple(y.max(0)))
        else:
            mean, sd = GaussianProcess(x, enc.categorical, y[:, 0], distance=d_fit).predict(pool, distance=d_pool)
            score = expected_gain(mean, np.maximum(sd, 1e-9), np.array([y[:, 0].min()]))[:, 0]
        best = int(np.argmax(score))
        out = {"centre": None, "params": enc.decode(pool[best]), "gain": float(score[best])}
        if known_cols:
            out["known"] = known_cols
        return out


def known_cost_gain(gp: GaussianProcess, distance: np.ndarray, cost: np.ndarray, front: np.ndarray,
                    reference: tuple[float, float], chunk: int = 1000) -> np.ndarray:
    """The expected hypervolume gain of candidates whose cost (second objective) is known and
    whose first objective is ``gp``'s prediction (``distance``: theirs to the fitted rows): exact,
    a one-dimensional expected improvement per band of the front. The gain grows with the
    prediction's spread, so it is first bounded with the prior's (the largest) and computed only
    for the candidates whose bound passes the best gain found (``-inf`` for the others: never
    the best).

    Example:
        >>> gp = GaussianProcess(np.array([[0.0], [1.0]]), np.array([True]), np.array([1.0, 2.0]))
        >>> g = known_cost_gain(gp, np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([0.5, 9.0]),
        ...                     np.array([[1.0, 1.0], [2.0, 0.8]]), (3.0, 10.0))
        >>> bool(g[0] > g[1] > 0)  # the cheaper candidate gains more
        True
    """
    mean = gp.kernel(distance) @ gp.alpha * gp.scale + gp.mean

    def gain(idx: np.ndarray, sd: np.ndarray) -> np.ndarray:
        return expected_hvi(np.column_stack([mean[idx], cost[idx]]),
                            np.column_stack([np.maximum(sd, 1e-9), np.full(len(idx), 1e-9)]), front, reference,
                            quantiles=1)

    every = np.arange(len(mean))
    bound = gain(every, np.full(len(mean), math.sqrt(1.0 + gp.noise) * gp.scale))
    order = np.argsort(-bound, kind="stable")
    out = np.full(len(mean), -np.inf)
    for start in range(0, len(order), chunk):
        idx = order[start:start + chunk]
        if start and bound[idx[0]] <= out.max():
            break
        out[idx] = gain(idx, gp.predict(None, distance=distance[..., idx, :])[1])
    return out


def gene_space(trials: Sequence[FrozenTrial]) -> dict[str, BaseDistribution]:
    """Every gene the trials sampled, with its distribution (the latest trial's)."""
    out: dict[str, BaseDistribution] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            if not dist.single():
                out[name] = dist
    return out


class Encoding:
    """Candidates as rows of numbers (codes): a categorical gene's choice index, a numeric gene's
    place on its unit (log-)range; -1 where a candidate lacks the gene."""

    def __init__(self, genes: dict[str, BaseDistribution]) -> None:
        self.names = sorted(genes)
        self.dists = [genes[n] for n in self.names]
        self.categorical = np.array([isinstance(d, CategoricalDistribution) for d in self.dists], dtype=bool)

    def encode(self, params: dict) -> np.ndarray:
        out = np.full(len(self.names), -1.0)
        for g, (name, dist) in enumerate(zip(self.names, self.dists, strict=True)):
            value = params.get(name)
            if name in params and in_distribution(dist, value):
                out[g] = dist.to_internal_repr(value) if self.categorical[g] else to_unit(dist, value)
        return out

    def decode(self, row: np.ndarray) -> dict:
        out = {}
        for code, name, dist in zip(row, self.names, self.dists, strict=True):
            if code >= 0:
                out[name] = dist.choices[int(code)] if isinstance(dist, CategoricalDistribution) \
                    else from_unit(dist, float(code))
        return out

    def moves(self, row: np.ndarray) -> list[tuple[int, float]]:
        """(gene, code) of every candidate one gene away (:func:`neighbours`)."""
        out = []
        for g, dist in enumerate(self.dists):
            if row[g] < 0:
                continue
            if self.categorical[g]:
                out += [(g, float(c)) for c in range(len(dist.choices)) if c != int(row[g])]
            else:
                out += [(g, to_unit(dist, v)) for v in neighbours(dist, from_unit(dist, float(row[g])))]
        return out

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        out = np.empty((n, len(self.names)))
        for g, dist in enumerate(self.dists):
            if self.categorical[g]:
                out[:, g] = rng.integers(len(dist.choices), size=n)
            else:
                out[:, g] = [to_unit(dist, random_value(dist, rng)) for _ in range(n)]
        return out


def spread_by_cost(cost: np.ndarray, n: int, rng: np.random.Generator, bins: int = COST_BINS) -> np.ndarray:
    """Indices of about ``n`` of the candidates, as many from each of ``bins`` equal bins of the
    ``cost`` range (all of a bin that has fewer): the hypervolume is an area along the cost, and a
    rare cost (the few fastest cells) weighs as much as a common one.

    Example:
        >>> cost = np.concatenate([np.zeros(2), np.ones(1000)])
        >>> spread_by_cost(cost, 10, np.random.default_rng(0), bins=2)[:2].tolist()  # both cheap ones kept
        [0, 1]
    """
    span = float(cost.max() - cost.min()) or 1.0
    which = np.minimum(((cost - cost.min()) / span * bins).astype(int), bins - 1)
    per = max(1, n // bins)
    out = []
    for b in range(bins):
        members = np.flatnonzero(which == b)
        out.append(members if len(members) <= per else rng.choice(members, per, replace=False))
    return np.sort(np.concatenate(out))


def whole_space(enc: Encoding, seen: set[bytes]) -> np.ndarray | None:
    """Every untried candidate (codes) of a categorical space of at most :data:`WHOLE_SPACE`;
    ``None`` for a larger space or one with a numeric gene."""
    if not enc.categorical.all():
        return None
    sizes = [len(d.choices) for d in enc.dists]
    if math.prod(sizes) > WHOLE_SPACE:
        return None
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in sizes], indexing="ij"), -1).reshape(-1, len(sizes))
    return grid[[row.tobytes() not in seen for row in grid]]


def candidate_pool(enc: Encoding, incumbents: np.ndarray, rng: np.random.Generator, seen: set[bytes], *,
                   n_random: int = N_RANDOM) -> np.ndarray:
    """Untried candidates (codes): every one a gene away from an incumbent, up to
    :data:`MAX_PAIRS` two genes away from each, and ``n_random`` random ones."""
    parts = [enc.random(n_random, rng)]
    for centre in incumbents:
        moves = enc.moves(centre)
        if not moves:
            continue
        genes, codes = np.array([m[0] for m in moves]), np.array([m[1] for m in moves])
        single = np.repeat(centre[None, :], len(moves), 0)
        single[np.arange(len(moves)), genes] = codes
        i, j = np.triu_indices(len(moves), 1)
        ok = genes[i] != genes[j]
        i, j = i[ok], j[ok]
        if len(i) > MAX_PAIRS:
            pick = np.sort(rng.choice(len(i), MAX_PAIRS, replace=False))
            i, j = i[pick], j[pick]
        double = np.repeat(centre[None, :], len(i), 0)
        double[np.arange(len(i)), genes[i]] = codes[i]
        double[np.arange(len(i)), genes[j]] = codes[j]
        parts += [single, double]
    pool: dict[bytes, np.ndarray] = {}
    for row in np.concatenate(parts):
        key = row.tobytes()
        if key not in seen:
            pool.setdefault(key, row)
    return np.array(list(pool.values())) if pool else np.zeros((0, len(enc.names)))


@register_strategy("ehvi")
class EHVIStrategy(BaseStrategy):
    description = ("Bayesian optimisation: a Gaussian process per objective on the genes, the candidate of "
                   "largest expected hypervolume improvement (several objectives) or improvement (one)")

    def sampler(self, ctx: StrategyContext) -> EHVISampler:
        return EHVISampler(seed=ctx.seed, n_startup_trials=ctx.n_startup_trials, known=ctx.known_objectives)
