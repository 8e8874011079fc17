"""Reports: pure summaries of a run folder first, rendering second."""

from slimnas.report._explain import (
    explanation_table,
    layer_columns,
    policy_summary,
    read_policy,
    sensitivity_table,
)
from slimnas.report._table import (
    arch_summary,
    front_columns,
    front_table,
    make_console,
    print_front,
)

__all__ = [
    "arch_summary",
    "explanation_table",
    "front_columns",
    "front_table",
    "layer_columns",
    "make_console",
    "policy_summary",
    "print_front",
    "read_policy",
    "sensitivity_table",
]
