"""``slimnas search --benchmark nasbench201:<dataset>``: a search on a tabulated benchmark."""

from __future__ import annotations

from slimnas.errors import ConfigError
from slimnas.study._tabular import tabular_search


def tabular_command(console, benchmark: str | None, given: list[str], **options) -> None:
    """Run the tabular search and print what it found against the table's optimum."""
    if benchmark is None:
        flag = "--known-costs" if options.get("known_costs") and options.get("sim_seconds") is None else "--sim-seconds"
        raise ConfigError(flag.strip("-").replace("-", "_"), f"--benchmark with {flag} (it applies to a tabular search)")
    if given:
        raise ConfigError("benchmark", f"no {given[0]} with --benchmark (the table is the data, its recipe fixed)",
                          given[0])
    result = tabular_search(benchmark, **options)
    s = result.summary
    console.print(f"{result.study.study_name}: {s['n_evaluations']} evaluations, "
                  f"{s['sim_seconds']:,.0f} simulated seconds", highlight=False)
    if "best_cell" in s:
        read = f" (mean of {s['best_seeds_read']} seeds read)" if "best_seeds_read" in s else ""
        console.print(f"best cell {s['best_cell']}: seen {s['best_seen']:.2f}{read}, table mean {s['best_mean']:.2f}; "
                      f"optimum {s['optimum']:.2f} (cell {s['optimum_cell']}), regret {s['regret']:.2f}",
                      highlight=False)
    if "reevaluations" in s:
        console.print(f"{s['reevaluations']} of the evaluations re-evaluated a cell on another seed", highlight=False)
    if "hypervolume_ratio" in s:
        console.print(f"hypervolume of the found front: {100 * s['hypervolume_ratio']:.2f}% of the true front's",
                      highlight=False)
    console.print(f"run folder: {result.run_dir} (slimnas report {result.run_dir})", style="dim", highlight=False)
