"""Bayesian optimisation over the genes with a Gaussian process per objective and expected
hypervolume improvement (EHVI; Emmerich et al. 2006), the predictor-guided Pareto search of
BO-style multi-objective NAS.

Each objective's observed values are modelled by a Gaussian process on the trials' genes: the
kernel is ``exp(-distance / lengthscale)``, the distance the share of genes that differ (a
categorical gene) or their gap on the unit range (a numeric one), so every combination of genes
interacts. The lengthscale and the observation noise are chosen by marginal likelihood from a
small grid on every trial. The model predicts a candidate's *observation*, noise included: a
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

No state is carried between trials: each trial's plan (the candidate) is derived from the
study's finished trials and written to the trial (see :mod:`slimnas.strategies._history`), so a
resumed study and several workers continue the same search.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
#: Gauss-Hermite nodes over the second objective's predictive Gaussian (the two-objective gain)
QUANTILES = 24
#: random candidates added to the pool on every trial, and the most two-gene moves per front member
N_RANDOM = 500
MAX_PAIRS = 240


class GaussianProcess:
    """A Gaussian process on encoded candidates (see :class:`Encoding`), fitted to ``y``.

    The kernel is ``exp(-d / lengthscale)`` with ``d`` the mean over genes of the per-gene
    distance (1 for a categorical mismatch, the unit-range gap of a numeric gene); the values are
    standardised, and the lengthscale and noise are the pair of :data:`LENGTHSCALES` x
    :data:`NOISES` with the largest marginal likelihood.

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
        best = None
        eye = np.eye(len(z))
        for ell in LENGTHSCALES:
            k0 = np.exp(-d / ell)
            for noise in NOISES:
                try:
                    chol = np.linalg.cholesky(k0 + noise * eye)
                except np.linalg.LinAlgError:
                    continue
                alpha = cho_solve((chol, True), z)
                loglik = -0.5 * float(z @ alpha) - float(np.log(np.diag(chol)).sum())
                if best is None or loglik > best[0]:
                    best = (loglik, ell, noise, chol, alpha)
        _, self.lengthscale, self.noise, self.chol, self.alpha = best

    def predict(self, x: np.ndarray, *, distance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The predictive mean and standard deviation of an observation (noise included);
        ``distance``: :func:`distances` of ``x`` to the fitted rows, when computed already."""
        d = distances(x, self.x, self.categorical) if distance is None else distance
        k = np.exp(-d / self.lengthscale)
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
        [9.0, 1.0, 0.0]
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

    Example:
        >>> import optuna
        >>> study = optuna.create_study(sampler=EHVISampler(seed=0, n_startup_trials=4))
        >>> study.optimize(lambda t: abs(t.suggest_int("x", 0, 20) - 7), n_trials=20)
        >>> study.best_value
        0.0
    """

    plan_key = "slimnas:ehvi"

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
        pool = candidate_pool(enc, np.array([enc.encode(t.params) for t in incumbents]), rng, seen)
        if not len(pool):
            return {"centre": None}
        if len(directions) > 2:  # ParEGO: one random Tchebycheff scalarisation per trial
            lo, hi = y.min(0), y.max(0)
            w = rng.dirichlet(np.ones(y.shape[1]))
            u = (y - lo) / np.where(hi > lo, hi - lo, 1.0)
            y = (np.max(w * u, axis=1) + 0.05 * (w * u).sum(1))[:, None]
        d_fit, d_pool = distances(x, x, enc.categorical), distances(pool, x, enc.categorical)
        preds = [GaussianProcess(x, enc.categorical, y[:, j], distance=d_fit).predict(pool, distance=d_pool)
                 for j in range(y.shape[1])]
        mean = np.stack([p[0] for p in preds], 1)
        sd = np.maximum(np.stack([p[1] for p in preds], 1), 1e-9)
        if y.shape[1] == 2:
            keep = {t.number for t in incumbents}
            front = np.array([y[i] for i, t in enumerate(done) if t.number in keep])
            score = expected_hvi(mean, sd, front, tuple(y.max(0)))
        else:
            score = expected_gain(mean[:, 0], sd[:, 0], np.array([y[:, 0].min()]))[:, 0]
        best = int(np.argmax(score))
        return {"centre": None, "params": enc.decode(pool[best]), "gain": float(score[best])}


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


def candidate_pool(enc: Encoding, incumbents: np.ndarray, rng: np.random.Generator, seen: set[bytes]) -> np.ndarray:
    """Untried candidates (codes): every one a gene away from an incumbent, up to
    :data:`MAX_PAIRS` two genes away from each, and :data:`N_RANDOM` random ones."""
    parts = [enc.random(N_RANDOM, rng)]
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
        return EHVISampler(seed=ctx.seed, n_startup_trials=ctx.n_startup_trials)
