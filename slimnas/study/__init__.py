"""Studies: one driver for every search (plain, joint architecture x compression, and
``compress --auto``), their trial objectives, run folders, resume, and the Pareto front; run
folders read back (``slimnas.load``, exports, the list of runs)."""

from slimnas.study import (
    _export,  # noqa: F401 (loaded as before)
    _joint,  # noqa: F401 (loaded as before)
)
from slimnas.study._artifacts import RunFolder
from slimnas.study._auto import REFINE_LR_FACTORS, AutoResult, auto_compress
from slimnas.study._driver import StudySpec, open_study, run_study
from slimnas.study._events import Listener, ListenerGroup
from slimnas.study._load import load
from slimnas.study._objective import BaseTrialObjective
from slimnas.study._pareto import feasible, hypervolume_2d, pareto_front
from slimnas.study._plan import SearchPlan
from slimnas.study._progress import estimate_eta
from slimnas.study._record import RunRecord, open_run
from slimnas.study._runs import RunSummary, list_runs
from slimnas.study._search import FrontMember, SearchResult, load_splits, search
from slimnas.study._tensorboard import TensorBoardListener

__all__ = [
    "REFINE_LR_FACTORS",
    "AutoResult",
    "BaseTrialObjective",
    "FrontMember",
    "Listener",
    "ListenerGroup",
    "RunFolder",
    "RunRecord",
    "RunSummary",
    "SearchPlan",
    "SearchResult",
    "StudySpec",
    "TensorBoardListener",
    "auto_compress",
    "estimate_eta",
    "feasible",
    "hypervolume_2d",
    "list_runs",
    "load",
    "load_splits",
    "open_run",
    "open_study",
    "pareto_front",
    "run_study",
    "search",
]
