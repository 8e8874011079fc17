import pytest
import yaml

from slimnas.config import load_config, parse_config
from slimnas.errors import ConfigError
from slimnas.measure import Budget
from slimnas.study import SearchPlan


def test_defaults_round_trip_through_yaml():
    plan = SearchPlan.load(dataset="digits", n_trials=7, budget=["macs<=20k", "bytes<=8KB"])
    assert plan.config.study_name == "digits-tpe"
    again = SearchPlan.from_config(parse_config(yaml.safe_load(yaml.safe_dump(plan.to_dict()))))
    assert again.to_dict() == plan.to_dict()
    assert [b.limit for b in again.budget] == [20000, 8000]
    # the saved config spells the defaults out: the space and recipe a run actually searched
    assert again.to_dict()["space"]["cnn"]["kernel"] == [3, 5, 7] and "lr" in again.to_dict()["training"]


@pytest.mark.parametrize(
    "text, metric, op, limit",
    [("macs<=20000", "macs", "<=", 20000), ("params<=2k", "params", "<=", 2000),
     ("bytes<=8KB", "bytes", "<=", 8000), ("bytes<=8KiB", "bytes", "<=", 8192),
     ("latency_ms<=0.5", "latency_ms", "<=", 0.5), ("accuracy>=0.9", "accuracy", ">=", 0.9)],
)
def test_budget_parsing(text, metric, op, limit):
    b = Budget.parse(text)
    assert (b.metric, b.op) == (metric, op)
    assert b.limit == pytest.approx(limit)


def test_budget_violation_sign():
    b = Budget.parse("macs<=100")
    assert b.is_met({"macs": 100}) and not b.is_met({"macs": 101})
    assert b.violation({"macs": 150}) == 50
    assert Budget.parse("accuracy>=0.9").violation({"val_accuracy": 0.8}) == pytest.approx(0.1)
    assert Budget.parse("macs<=50%").resolve({"macs": 1000}).limit == 500


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"data": {"dataset": "nope"}}, None),  # checked when loading, see test_cli
        ({"strategy": {"name": "annealing"}}, "strategy.name"),
        ({"objectives": ["accuracy", "speed"]}, "objectives"),
        ({"n_trials": 0}, "n_trials"),
        ({"n_trials": "ten"}, "n_trials"),
        ({"space": {"family": "cnn", "cnn": {"kernel": [3, 4]}}}, "space.cnn.kernel"),
        ({"space": {"family": ["capsule"]}}, "space.family"),
        ({"space": {"cnn": {"channels": {"low": 8, "high": 4}}}}, "space.cnn.channels"),
        ({"training": {"lr": -1}}, "training.lr"),
        ({"budget": ["flops<=3"]}, "budget"),
        ({"strategy": {"name": "cmaes"}, "objectives": ["accuracy", "macs"]}, "strategy.name"),
        ({"colour": "red"}, "colour"),
        ({"strategy": {"early_stopping": "sometimes"}}, "strategy.early_stopping"),
        ({"fitness": {"cost": "accuracy"}}, "fitness.cost"),
        ({"measure": {"runtime": "tvm"}}, "measure.runtime"),
        ({"space": {"family": "mlp", "compression": {"prune": [1.5]}}}, "space.compression.prune"),
        ({"space": {"family": "mlp", "compression": {"finetune_epochs": [1, 2]}}}, "space.compression.finetune_epochs"),
        ({"strategy": {"name": "grid"}, "space": {"family": "mlp", "compression": {}}}, "strategy.name"),
    ],
)
def test_bad_config_names_the_field(raw, field):
    if field is None:
        SearchPlan.from_config(parse_config(raw))  # unknown datasets are found by the data registry
        return
    with pytest.raises(ConfigError) as e:
        SearchPlan.from_config(parse_config(raw))
    assert str(e.value).startswith(field + ":")


def test_malformed_yaml(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("space: [unclosed\n")
    with pytest.raises(ConfigError, match="config: expected valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="existing YAML file"):
        load_config(tmp_path / "missing.yaml")
