"""Reports: pure summaries of a run folder first, rendering second."""

from slimnas.report._table import arch_summary, front_table, print_front

__all__ = ["arch_summary", "front_table", "print_front"]
