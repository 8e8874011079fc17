"""Studies: one driver for every search (plain, joint architecture x compression, and
``compress --auto``), their trial objectives, run folders, resume, and the Pareto front; run
folders read back (``slimnas.load``, exports, the list of runs)."""

from slimnas.study._artifacts import RunFolder, write_json
from slimnas.study._auto import (
    REFINE_LR_FACTORS,
    AutoObjective,
    AutoResult,
    AutoSettings,
    auto_compress,
    refine_finetune,
    warm_starts,
)
from slimnas.study._driver import (
    StudySpec,
    n_finished,
    open_study,
    quiet_optuna,
    run_study,
    torch_threads,
)
from slimnas.study._events import EpochReporter, Listener, ListenerGroup
from slimnas.study._export import export_run, preprocessing_sidecar
from slimnas.study._joint import cached_parent, final_finetune, parent_key, write_artifact
from slimnas.study._load import LoadedModel, load, open_model
from slimnas.study._objective import BaseTrialObjective, SearchObjective
from slimnas.study._pareto import feasible, hypervolume_2d, pareto_front, total_violation
from slimnas.study._plan import SearchPlan
from slimnas.study._progress import (
    estimate_eta,
    hypervolume_scales,
    progress,
    progress_rows,
    scaled_point,
)
from slimnas.study._record import RunRecord, load_study, open_run, parse_best, select_member
from slimnas.study._runs import RunSummary, list_runs, run_status, summarize_run
from slimnas.study._search import FrontMember, SearchResult, load_splits, resolve_device, search
from slimnas.study._tensorboard import TensorBoardListener

__all__ = [
    "REFINE_LR_FACTORS",
    "AutoObjective",
    "AutoResult",
    "AutoSettings",
    "BaseTrialObjective",
    "EpochReporter",
    "FrontMember",
    "Listener",
    "ListenerGroup",
    "LoadedModel",
    "RunFolder",
    "RunRecord",
    "RunSummary",
    "SearchObjective",
    "SearchPlan",
    "SearchResult",
    "StudySpec",
    "TensorBoardListener",
    "auto_compress",
    "cached_parent",
    "estimate_eta",
    "export_run",
    "preprocessing_sidecar",
    "feasible",
    "final_finetune",
    "hypervolume_2d",
    "hypervolume_scales",
    "list_runs",
    "load",
    "load_splits",
    "load_study",
    "n_finished",
    "open_model",
    "open_run",
    "open_study",
    "pareto_front",
    "parent_key",
    "parse_best",
    "progress",
    "progress_rows",
    "quiet_optuna",
    "refine_finetune",
    "resolve_device",
    "run_status",
    "run_study",
    "scaled_point",
    "search",
    "select_member",
    "summarize_run",
    "torch_threads",
    "total_violation",
    "warm_starts",
    "write_artifact",
    "write_json",
]
