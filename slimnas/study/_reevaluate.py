"""Re-evaluating the leading candidates on other seeds (``reevaluate``, ``--reevaluate K``): the
cure for a search that picks its best from single noisy evaluations (SMAC's intensification).

A search that returns the candidate with the best single evaluation returns a lucky one: a cell
whose one seed came out high beats a better cell seen once on an ordinary seed. With
``reevaluate: K`` the study spends part of its budget evaluating again, on seeds not yet seen for
them, the candidates in the ``K`` best non-dominated layers by their mean over the seeds seen
(one objective: the ``K`` best candidates), until each has every seed there is. Each
re-evaluation is one more trial of the study (it counts against ``n_trials`` and a simulated
budget, and the strategy sees its figure like any other). What the search returns is chosen on
the means: with one objective, the best mean among the candidates seen on every seed once there
are any (a candidate seen once cannot beat one averaged over all its seeds by a lucky draw); with
several, the front of the candidates' means.

This module holds the rule only, on plain records (``key``: the candidate, ``seed``: which seed
it was evaluated on, ``values``: its figures); :mod:`slimnas.study._tabular` applies it to a
table's seeds. A training search would re-train the same architecture with other training seeds;
it is not wired there yet (``reevaluate`` is refused in one line outside ``--benchmark``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Estimate:
    """One candidate's figures over the distinct seeds it was evaluated on."""

    key: str
    first: int  # the evaluation that first saw it (ties go to the earlier)
    available: int  # how many seeds it has in all
    by_seed: dict[int, list[float]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.by_seed)

    @property
    def complete(self) -> bool:
        return self.n >= self.available

    @property
    def values(self) -> list[float]:
        """Each objective's mean over the distinct seeds seen (a seed read twice counts once)."""
        rows = list(self.by_seed.values())
        return [math.fsum(r[j] for r in rows) / len(rows) for j in range(len(rows[0]))]


def estimates(records: Sequence[dict], available: Callable[[dict], int]) -> dict[str, Estimate]:
    """Per candidate, in the order first seen: its figures by seed. ``records``: dicts with
    ``key``, ``seed`` and ``values`` (objective figures), in evaluation order."""
    out: dict[str, Estimate] = {}
    for k, r in enumerate(records):
        e = out.get(r["key"])
        if e is None:
            e = out[r["key"]] = Estimate(r["key"], k, int(available(r)))
        e.by_seed.setdefault(int(r["seed"]), list(r["values"]))
    return out


def _signed(e: Estimate, maximize: Sequence[bool]) -> list[float]:
    """The means as costs (lower is better)."""
    return [-v if up else v for v, up in zip(e.values, maximize, strict=True)]


def layers(cands: Sequence[Estimate], maximize: Sequence[bool], k: int) -> list[list[Estimate]]:
    """The first ``k`` non-dominated layers of ``cands`` by their means (one objective: the
    ``k`` best, one to a layer, the earlier seen first among equals)."""
    left, out = sorted(cands, key=lambda e: (_signed(e, maximize), e.first)), []
    while left and len(out) < k:
        if len(maximize) == 1:
            out.append([left.pop(0)])
            continue
        pts = [_signed(e, maximize) for e in left]
        front = [i for i, p in enumerate(pts) if not any(
            all(a <= b for a, b in zip(q, p, strict=True)) and q != p for q in pts)]
        out.append([left[i] for i in front])
        left = [e for i, e in enumerate(left) if i not in set(front)]
    return out


def next_reevaluation(est: dict[str, Estimate], maximize: Sequence[bool], k: int) -> Estimate | None:
    """The candidate to evaluate again next: in the ``k`` best layers by mean, the first lacking
    seeds (a better layer first; within a layer the one seen on fewest seeds, then the earliest);
    ``None`` when all of them have every seed (the next trial is the strategy's)."""
    for layer in layers(list(est.values()), maximize, k):
        short = [e for e in layer if not e.complete]
        if short:
            return min(short, key=lambda e: (e.n, e.first))
    return None


def best(est: dict[str, Estimate], maximize: bool = True) -> Estimate | None:
    """What a search with re-evaluation returns (one objective): the best mean among the
    candidates seen on all their seeds, or among all while none is."""
    pool = [e for e in est.values() if e.complete] or list(est.values())
    if not pool:
        return None
    return min(pool, key=lambda e: (-e.values[0] if maximize else e.values[0], e.first))


def front(est: dict[str, Estimate], maximize: Sequence[bool]) -> list[Estimate]:
    """What a search with re-evaluation returns (several objectives): the candidates whose means
    no other candidate's means dominate."""
    first = layers(list(est.values()), maximize, 1)
    return first[0] if first else []
