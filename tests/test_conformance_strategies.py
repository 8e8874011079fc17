"""Every registered search strategy (built-in or plug-in) passes the conformance suite of
:mod:`slimnas.testing`: a small study of each, resumed, seeded, single- and multi-objective (a
file of its own: the test workers take one file each, and these are many short searches)."""

from __future__ import annotations

import pytest

from slimnas.strategies import STRATEGIES, list_strategies
from slimnas.testing import check_strategy


@pytest.mark.parametrize("name", list_strategies())
def test_strategy_conformance(name, tmp_path):
    report = check_strategy(name, tmp_path)
    expected = "works" if STRATEGIES.get(name).multi_objective else "refused"
    assert report["multi_objective"] == expected
