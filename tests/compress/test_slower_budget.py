"""A compressed model slower than its input says which budget kept it (issue 46, item 4): a
MAC or byte budget asks for a smaller model, not a faster one; under a latency budget a slower
result is never feasible, so one that is kept is the closest miss and says so."""

from __future__ import annotations

import optuna

from slimnas.compress import latency_change
from slimnas.compress._speed import slower_warning
from slimnas.measure import Budget
from slimnas.study._pareto import pareto_front

BEFORE, AFTER = {"latency_ms_b1": 0.0095}, {"latency_ms_b1": 0.0268}  # the small CNN: 2.8x slower


def test_a_slower_result_names_the_budget_that_kept_it():
    change = latency_change(BEFORE, AFTER)
    size = (Budget.parse("macs<=52960"), Budget.parse("bytes<=8KB"))
    text = slower_warning(change, size)
    assert "SLOWER" in text and "kept because the budget macs<=52960, bytes<=8000 asks for a smaller model" in text
    assert "add a latency budget" in text
    latency = slower_warning(change, (*size, Budget.parse("latency_ms<=0.0095")))
    assert "misses the latency budget latency_ms<=0.0095" in latency and "kept because" not in latency
    assert slower_warning(change) is not None and "budget" not in slower_warning(change)  # plain compress: none
    assert slower_warning(latency_change(BEFORE, BEFORE), size) is None


def _trial(accuracy: float, latency: float) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(value=accuracy, user_attrs={"metrics": {
        "val_accuracy": accuracy, "accuracy": accuracy, "macs": 1000, "latency_ms": latency}})


def test_under_a_latency_budget_a_slower_layout_is_never_the_choice():
    """--auto adds the input model's latency to a latency budget that allows more; the more accurate
    but slower policy is then off the front, whatever its MACs."""
    before_ms = 1.0
    budget = (Budget.parse("macs<=50%").resolve({"macs": 2000}), Budget.parse("latency_ms<=150%").resolve(
        {"latency_ms": before_ms}), Budget("latency_ms", "<=", before_ms))
    slower, faster = _trial(0.9, 1.4), _trial(0.8, 0.9)
    front, closest = pareto_front([slower, faster], ("accuracy",), budget)
    assert [t.value for t in front] == [0.8] and closest == []
