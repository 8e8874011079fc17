"""slimnas: neural architecture search and automated model compression under a deployment budget.

Example:
    >>> import slimnas
    >>> result = slimnas.search(dataset="digits", n_trials=4, epochs=1)  # doctest: +SKIP
    >>> model = slimnas.load(result.run_dir, trial=result.front[0].trial)  # doctest: +SKIP
"""

from slimnas.errors import ConfigError, SlimnasError
from slimnas.study import AutoResult, SearchResult, auto_compress, load, search

__version__ = "0.1.0"

__all__ = ["AutoResult", "ConfigError", "SearchResult", "SlimnasError", "__version__", "auto_compress", "load",
           "search"]
