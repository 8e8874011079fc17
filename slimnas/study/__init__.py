"""Glue to Optuna: the trial objective, budgets as constraints, run folders, resume, the front."""

from slimnas.study._artifacts import RunFolder
from slimnas.study._auto import AutoResult, auto_compress
from slimnas.study._pareto import feasible, hypervolume_2d, pareto_front, total_violation
from slimnas.study._run import FrontMember, SearchResult, search

__all__ = [
    "AutoResult",
    "FrontMember",
    "RunFolder",
    "auto_compress",
    "SearchResult",
    "feasible",
    "hypervolume_2d",
    "pareto_front",
    "search",
    "total_violation",
]
