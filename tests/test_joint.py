"""Joint architecture x compression search and --auto compression of an existing model."""

import json

import numpy as np
import optuna
import pytest
import torch
import yaml

import slimnas
from slimnas.compress import CompressionPolicy, apply_policy
from slimnas.compress._space import CompressionSpace
from slimnas.data import load_dataset
from slimnas.export import structure
from slimnas.export._session import ort_session
from slimnas.export._structure import load_compressed
from slimnas.measure import count_macs
from slimnas.models import build_model
from slimnas.spaces._spec import Candidate
from slimnas.study import auto_compress

JOINT = {
    "data": {"dataset": "digits"},
    "objectives": ["accuracy", "macs"],
    "budget": ["macs<=1500", "bytes<=4KB"],
    "space": {
        "family": "cnn",
        "cnn": {"n_layers": 2, "channels": [12], "kernel": [3], "stride": [2], "head": ["gap"], "residual": [False, True]},
        "compression": {"prune": {"low": 0.0, "high": 0.6}, "precision": ["fp32", "int8"], "finetune_epochs": 1,
                        "final_epochs": 2},
    },
    "training": {"epochs": 2, "lr": 0.01, "optimizer": "adam"},
}


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("joint")
    (d / "c.yaml").write_text(yaml.safe_dump(JOINT))
    return slimnas.search(d / "c.yaml", n_trials=4, seed=0, out=str(d / "run"))


def test_joint_front_meets_the_budget_when_remeasured_from_files(joint_run):
    data = load_dataset("digits")
    assert joint_run.front, "the MAC budget is met by construction, so the front cannot be empty"
    for m in joint_run.front:
        onnx = m.path / "model.onnx"
        assert onnx.stat().st_size <= 4000 and onnx.stat().st_size == m.metrics["bytes"]
        cand = Candidate.from_dict(json.loads((m.path / "arch.json").read_text()))
        model = load_compressed(build_model(cand.arch, data.input_shape, data.n_classes), m.path)
        macs = count_macs(model, data.input_shape)
        assert macs <= 1500 and macs == m.metrics["macs"]
        # the reported test accuracy is that of the exported (quantized) file in ONNX Runtime
        logits = ort_session(onnx).run(None, {"input": data.x_test.numpy()})[0]
        acc = float((logits.argmax(1) == data.y_test.numpy()).mean())
        assert acc == pytest.approx(m.metrics["test_accuracy"])
        doc = json.loads((m.path / "policy.json").read_text())
        pruned = CompressionPolicy.from_dict(doc["policy"]).options("prune")["layer_ratios"]
        assert {row["layer"] for row in doc["layers"]} >= set(pruned)
        assert all(row["ratio"] == pruned.get(row["layer"], 0.0) for row in doc["layers"])
        assert all("sensitivity" in row for row in doc["layers"][:-1])


def test_joint_trials_reuse_trained_parents(joint_run):
    parents = list((joint_run.run_dir / "parents").glob("*.pt"))
    trials = joint_run.study.trials
    reused = [t.user_attrs["metrics"]["parent_reused"] for t in trials]
    # two architectures (residual or not) share the 4 trials: at most 2 parents are trained
    assert len(parents) <= 2 and sum(reused) == len(trials) - len(parents)


def test_auto_meets_a_mac_budget_and_the_policy_reproduces_the_structure(tmp_path, mnist1d_cnn):
    spec, model, data = mnist1d_cnn
    res = auto_compress(model, data, budget=["macs<=40%"], n_trials=3, finetune_epochs=1, final_epochs=1,
                        out=tmp_path / "auto", latency_repeats=5)
    base = count_macs(model, data.input_shape)
    assert res.before["macs"] == base and res.after["macs"] <= 0.4 * base
    assert res.feasible
    doc = json.loads((tmp_path / "auto" / "policy.json").read_text())
    report = json.loads((tmp_path / "auto" / "report.json").read_text())
    assert report["after"]["macs"] == res.after["macs"]
    policy = CompressionPolicy.from_dict(doc["policy"])
    again = apply_policy(model, policy, data, epochs=0).model
    saved = load_compressed(build_model(spec, data.input_shape, data.n_classes), tmp_path / "auto")
    assert structure(again) == structure(saved)
    # the saved weights are those of the measured ONNX file
    x = data.x_val[:16]
    onnx_out = ort_session(tmp_path / "auto" / "model.onnx").run(None, {"input": x.numpy()})[0]
    if set(policy.options("quantize")["layer_precision"].values()) == {"fp32"}:
        np.testing.assert_allclose(onnx_out, saved(x).detach().numpy(), atol=1e-4)
    assert (onnx_out.argmax(1) == saved(x).detach().numpy().argmax(1)).mean() >= 0.8


def test_auto_refuses_a_missing_budget(mnist1d_cnn):
    _, model, data = mnist1d_cnn
    with pytest.raises(slimnas.ConfigError, match="--budget"):
        auto_compress(model, data, budget=[], n_trials=1)


def test_cli_auto_writes_report_and_policy(tmp_path, cli_here, monkeypatch):
    import subprocess
    import sys

    (tmp_path / "mynet.py").write_text(
        "import torch\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Conv1d(1, 8, 5, 2, 2), torch.nn.ReLU(), torch.nn.Conv1d(8, 8, 3, 2, 1),\n"
        "                               torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(80, 10))\n")
    r = subprocess.run([sys.executable, "-m", "slimnas", "compress", "--model", "mynet.py:build", "--auto",
                        "--budget", "macs<=50%", "--n-trials", "2", "--epochs", "1", "--final-epochs", "1",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["after"]["macs"] <= 0.5 * report["before"]["macs"] and report["feasible"]
    assert "per-layer decisions" in r.stdout
    # the phases, one line as each starts and ends (the output is not a terminal)
    phases = ["loading mnist1d and the model mynet.py:build ...", "training the input model (20 epochs) ...",
              "measuring the input model in ONNX Runtime: done in", "sensitivity analysis, each layer pruned alone (2 layers)",
              "searching per-layer policies (2 trials) ...", "trial   1 ", "searching per-layer policies: done in",
              "final fine-tune: prune (1 epoch) ...", "writing the compressed model and reports: done in"]
    lines = r.stdout.splitlines()
    at = [next((i for i, ln in enumerate(lines) if ln.startswith(p)), None) for p in phases]
    assert None not in at and at == sorted(at) and at[0] == 0, (at, r.stdout)
    monkeypatch.chdir(tmp_path)
    bad = cli_here("compress", "--model", "mynet.py:build", "--auto", "--budget", "macs<=half", "--out", tmp_path / "b")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --budget:")


def test_sensitivity_allocation_and_fill_use_the_mac_budget(mnist1d_cnn):
    from slimnas.compress import analyze_sensitivity, fill_to_macs, scale_to_macs
    from slimnas.compress._allocate import allocate_by_sensitivity, pruned_macs

    _, model, data = mnist1d_cnn
    shape = data.input_shape
    target = int(0.5 * count_macs(model, shape))
    sens = analyze_sensitivity(model, data, ratios=(0.3, 0.6, 0.9))
    ratios = allocate_by_sensitivity(model, sens, shape, target)
    assert pruned_macs(model, ratios, shape) <= target
    # not uniform, and the most sensitive layer (largest drop at 60%) is not the most pruned
    drops = {k: sens.baseline - v[1][1] for k, v in sens.curves.items()}
    assert len(set(ratios.values())) > 1 and ratios[max(drops, key=drops.get)] < max(ratios.values())
    scaled, macs = scale_to_macs(model, {k: 0.3 for k in sens.curves}, shape, target)
    filled = fill_to_macs(model, scaled, shape, target)
    assert macs <= pruned_macs(model, filled, shape) <= target


@pytest.mark.parametrize("keep", [0.3, 0.7])
def test_keep_macs_sets_the_level_and_the_ratios_only_the_shape(mnist1d_cnn, keep):
    from slimnas.compress import list_prunable_layers, prune_ratios
    from slimnas.compress._allocate import fit_to_macs, pruned_macs
    from slimnas.measure import Budget

    _, model, data = mnist1d_cnn
    shape = data.input_shape
    base = count_macs(model, shape)
    names = [lay.name for lay in list_prunable_layers(model, shape)]
    light = CompressionPolicy.of(prune={"layer_ratios": {names[0]: 0.05, names[1]: 0.1}})  # far less than `keep`
    heavy = CompressionPolicy.of(prune={"layer_ratios": {names[0]: 0.8, names[1]: 0.8}})  # far more
    for policy in (light, heavy):
        fitted = fit_to_macs(model, policy, shape, (), keep=keep)
        macs = pruned_macs(model, prune_ratios(fitted), shape)
        assert macs <= keep * base and macs >= 0.9 * keep * base
    # a tighter MAC budget wins over `keep`
    fitted = fit_to_macs(model, light, shape, (Budget.parse(f"macs<={int(0.2 * base)}"),), keep=keep)
    assert pruned_macs(model, prune_ratios(fitted), shape) <= 0.2 * base
    # keep = 1 with a roomy budget prunes nothing
    assert not prune_ratios(fit_to_macs(model, heavy, shape, (), keep=1.0))


def test_keep_macs_gene_is_sampled_and_stored_with_the_candidate():
    from slimnas.spaces import SearchSpace

    space = SearchSpace.from_config({"family": "cnn", "cnn": {"n_layers": 2, "channels": [8], "kernel": [3],
                                                              "stride": [2], "residual": [False], "head": ["gap"]},
                                     "compression": {"keep_macs": {"low": 0.3, "high": 1.0}}}, {},
                                    compression=CompressionSpace.from_config)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    cand = space.sample(trial, input_shape=(1, 40), n_classes=10)
    assert 0.3 <= cand.keep_macs <= 1.0 and trial.params["comp.keep_macs"] == cand.keep_macs
    assert Candidate.from_dict(json.loads(json.dumps(cand.to_dict()))) == cand
    with pytest.raises(slimnas.ConfigError, match="space.compression.keep_macs"):
        SearchSpace.from_config({"family": "cnn", "compression": {"keep_macs": [1.5]}}, {},
                                compression=CompressionSpace.from_config)


def test_fine_tune_epochs_count_on_across_retraining_steps(mnist1d_cnn):
    from slimnas.compress import list_prunable_layers
    from slimnas.compress._apply import compress_and_measure
    from slimnas.training import Callback

    _, model, data = mnist1d_cnn
    first = list_prunable_layers(model, data.input_shape)[0].name
    seen: list[int] = []

    class Record(Callback):
        def on_epoch_end(self, epoch, metrics):
            seen.append(epoch)

    policy = CompressionPolicy.of(prune={"ratio": 0.0, "layer_ratios": {first: 0.5}},
                                  lowrank={"layer_ratios": {first: 0.5}})  # two retraining steps
    compress_and_measure(model, policy, data, budget=(), epochs=2, seed=0, device="cpu", latency_repeats=2,
                    stoppers=lambda fitted: [Record()])
    assert seen == [1, 2, 3, 4]


def test_auto_stops_ranking_fine_tunes_that_fall_behind(mnist1d_cnn):
    _, model, data = mnist1d_cnn
    res = auto_compress(model, data, budget=["macs<=50%"], n_trials=12, strategy="random", finetune_epochs=3,
                        final_epochs=1, early_stopping="median", latency_repeats=2)
    states = [t.state for t in res.study.trials]
    pruned = [t for t in res.study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, states
    # a stopped trial's curve ends before the full fine-tune; completed ones ran all 3 epochs
    assert all(len(t.user_attrs["curve"]) < 3 for t in pruned)
    assert all(len(t.user_attrs["curve"]) == 3 for t in res.study.trials if t.state.name == "COMPLETE")
    assert res.feasible
    with pytest.raises(slimnas.ConfigError, match="--early-stopping"):
        auto_compress(model, data, budget=["macs<=50%"], n_trials=1, early_stopping="sometimes")


def test_joint_search_with_keep_macs_and_early_stopped_fine_tunes(tmp_path):
    raw = json.loads(json.dumps(JOINT))
    raw["space"]["compression"].update(keep_macs={"low": 0.3, "high": 1.0}, finetune_epochs=3, final_epochs=1)
    raw["strategy"] = {"name": "random", "early_stopping": "median"}
    raw["budget"] = ["macs<=2500"]  # the 7k-MAC parents are within keep_macs reach
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    res = slimnas.search(tmp_path / "c.yaml", n_trials=12, seed=0, out=str(tmp_path / "run"))
    trials = res.study.trials
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(len(t.user_attrs["curve"]) < 3 for t in pruned)
    for t in pruned:  # recorded with the pruned structure's costs, not lost
        stored = res.run_dir / "trials" / f"{t.number:05d}" / "metrics.json"
        doc = json.loads(stored.read_text())
        assert doc["state"] == "pruned" and doc["macs"] == t.user_attrs["costs"]["macs"]
    assert res.front and {m.trial for m in res.front} <= {t.number for t in trials if t.state.name == "COMPLETE"}
    for t in trials:
        if t.state.name == "COMPLETE":
            m, keep = t.user_attrs["metrics"], t.params["comp.keep_macs"]
            assert m["macs"] <= min(2500, keep * m["parent_macs"])


def test_auto_refines_criterion_and_learning_rate_on_validation_data(tmp_path, mnist1d_cnn):
    _, model, data = mnist1d_cnn
    # the refinement lasts half the final fine-tune: 1 epoch here (a third of 2 epochs was none)
    res = auto_compress(model, data, budget=["macs<=50%"], n_trials=2, finetune_epochs=1, final_epochs=2,
                        importances=("l1", "taylor"), out=tmp_path / "auto", latency_repeats=2)
    rows = res.refine
    assert {(r["importance"], r["epochs"]) for r in rows} == {("l1", 1), ("taylor", 1)} and len(rows) == 4
    assert len({r["lr"] for r in rows}) == 2
    best = max(rows, key=lambda r: r["val_accuracy"])
    assert (res.policy.options("prune")["importance"], res.train.lr) == (best["importance"], best["lr"])
    report = json.loads((tmp_path / "auto" / "report.json").read_text())
    assert report["finetune"]["lr"] == res.train.lr and report["refine"] == rows
    assert res.feasible
    assert {r["trial"] for r in rows} == {res.trial}  # refine_top 1: the chosen trial alone


def test_auto_refine_top_fine_tunes_the_best_distinct_shapes_and_keeps_the_best_on_validation(tmp_path, mnist1d_cnn):
    from slimnas.compress import prune_ratios, pruned_model

    _, model, data = mnist1d_cnn
    res = auto_compress(model, data, budget=["macs<=50%"], n_trials=4, strategy="random", finetune_epochs=1,
                        final_epochs=2, importances=("l1",), refine_top=3, out=tmp_path / "auto", latency_repeats=2,
                        hardware_aware=False)
    rows, q = res.refine, "val_accuracy"
    trials = list(dict.fromkeys(r["trial"] for r in rows))
    assert len(trials) == 3 and len(rows) == 6  # three trials x one criterion x two learning rates
    study = optuna.load_study(study_name=None, storage=f"sqlite:///{tmp_path / 'auto' / 'study.db'}")
    by_number = {t.number: t for t in study.trials}
    shapes = [tuple(tuple(w.shape) for w in pruned_model(model, prune_ratios(CompressionPolicy.from_dict(
        by_number[n].user_attrs["policy"])), data.input_shape).parameters()) for n in trials]
    assert len(set(shapes)) == 3  # distinct channel counts
    values = [by_number[n].values[0] for n in trials]
    assert values[0] == max(values) and values == sorted(values, reverse=True)  # best first, in the study's order
    best = max(rows, key=lambda r: r[q])
    kept = prune_ratios(res.policy)
    assert kept == prune_ratios(CompressionPolicy.from_dict(by_number[best["trial"]].user_attrs["policy"]))
    assert res.train.lr == best["lr"]
    with pytest.raises(slimnas.ConfigError, match="--refine-top"):
        auto_compress(model, data, budget=["macs<=50%"], n_trials=1, refine_top=0)


def test_auto_refine_horizon_is_half_the_final_finetune_unless_given():
    from slimnas.study._auto import AutoSettings

    def horizon(**kw):
        return AutoSettings(budget=("macs<=50%",), **kw).refine_horizon

    # a third (3 of 10) chose the lower learning rate on the lm benchmark, where the final 10 epochs wanted the higher
    assert horizon() == 5 and horizon(final_epochs=20) == 10 and horizon(final_epochs=1) == 0
    assert horizon(refine_epochs=3) == 3 and horizon(final_epochs=20, refine_epochs=0) == 0


def test_policy_finetune_lr_overrides_the_recipe_and_is_a_gene(mnist1d_cnn):
    import dataclasses

    from slimnas.compress import FINETUNE_SPEC, list_prunable_layers
    from slimnas.spaces import SearchSpace

    _, model, data = mnist1d_cnn
    first = list_prunable_layers(model, data.input_shape)[0].name
    base = CompressionPolicy.of(prune={"ratio": 0.0, "layer_ratios": {first: 0.5}})
    via_policy = apply_policy(model, dataclasses.replace(base, finetune_lr=0.02), data, epochs=1, seed=3).model
    via_recipe = apply_policy(model, base, data, epochs=1, seed=3,
                              train=dataclasses.replace(FINETUNE_SPEC, lr=0.02)).model
    default = apply_policy(model, base, data, epochs=1, seed=3).model
    x = data.x_val[:32]
    torch.testing.assert_close(via_policy(x), via_recipe(x))
    assert not torch.allclose(via_policy(x), default(x))
    space = SearchSpace.from_config({"family": "cnn", "cnn": {"n_layers": 2, "channels": [8], "kernel": [3],
                                                              "stride": [2], "residual": [False], "head": ["gap"]},
                                     "compression": {"finetune_lr": [0.003, 0.01]}}, {},
                                    compression=CompressionSpace.from_config)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    cand = space.sample(trial, input_shape=(1, 40), n_classes=10)
    assert cand.compression.finetune_lr == trial.params["comp.finetune_lr"] in (0.003, 0.01)
    with pytest.raises(slimnas.ConfigError, match="compression.finetune_lr"):
        CompressionPolicy(finetune_lr=-1.0)


def test_joint_search_skips_architectures_the_keep_range_cannot_bring_under_budget(tmp_path):
    raw = json.loads(json.dumps(JOINT))
    raw["space"]["cnn"].update(channels=[4, 24], stride=[1, 2])
    raw["space"]["compression"].update(keep_macs={"low": 0.5, "high": 1.0}, final_epochs=1)
    raw["strategy"] = {"name": "random"}
    raw["budget"] = ["macs<=1500"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    # seed 5: 2 of the first 10 random candidates are within reach (most are far over the budget)
    res = slimnas.search(tmp_path / "c.yaml", n_trials=10, seed=5, out=str(tmp_path / "run"))
    parents = sorted(p.name for p in (res.run_dir / "parents").glob("*.pt"))
    skipped, compressed = [], []
    for t in res.study.trials:
        doc = json.loads((res.run_dir / "trials" / f"{t.number:05d}" / "metrics.json").read_text())
        (skipped if doc["state"] == "skipped" else compressed).append((t, doc))
    assert skipped and compressed
    for t, doc in skipped:  # over 2x the budget: neither trained nor compressed, recorded as infeasible
        assert doc["macs"] > 3000 and not doc["trained"] and "parent_macs" not in doc
        assert max(t.user_attrs["constraints"]) > 0
    for _, doc in compressed:
        assert doc["parent_macs"] <= 3000 and doc["macs"] <= 1500
    assert 0 < len(parents) <= len(compressed)  # only reachable architectures train a parent
    # skip_infeasible: false compresses them anyway (squeezed to the budget by construction)
    raw["skip_infeasible"] = False
    (tmp_path / "all.yaml").write_text(yaml.safe_dump(raw))
    res = slimnas.search(tmp_path / "all.yaml", n_trials=len(res.study.trials), seed=5, out=str(tmp_path / "all"))
    docs = [json.loads((res.run_dir / "trials" / f"{t.number:05d}" / "metrics.json").read_text())
            for t in res.study.trials]
    assert all(d["state"] == "complete" and d["macs"] <= 1500 for d in docs)
    assert max(d["parent_macs"] for d in docs) > 3000


def _stored(run_dir, number: int) -> dict:
    return json.loads((run_dir / "trials" / f"{number:05d}" / "metrics.json").read_text())


def test_joint_front_is_chosen_after_the_full_fine_tune_of_the_leading_pareto_layers(joint_run):
    from slimnas.measure._metric import signed
    from slimnas.strategies._early_stopping import nondominated_rank
    from slimnas.study import pareto_front

    trials = [t for t in joint_run.study.trials if t.state.name == "COMPLETE"]
    objectives, budget = joint_run.plan.objectives, joint_run.plan.budget
    ok = [t for t in trials if all(b.is_met(t.user_attrs["metrics"]) for b in budget)]
    rank = nondominated_rank(np.array([signed(t.user_attrs["metrics"], objectives) for t in ok]))
    leading = [t for t, r in zip(ok, rank, strict=True) if r < 2]  # rerank_layers: 2 by default
    numbers = {t.number for t in leading}
    assert numbers
    for t in trials:
        doc = _stored(joint_run.run_dir, t.number)
        assert ("final" in doc) == (t.number in numbers), t.number
        if t.number in numbers:  # the full fine-tune's figures, the short one's kept beside them
            assert doc["final_epochs"] == 2
            assert doc["search_val_accuracy"] == pytest.approx(t.user_attrs["metrics"]["val_accuracy"])
    # the front: the Pareto front of those candidates by their validation figures after it
    refined = {t.number: {**t.user_attrs["metrics"], **{k: v for k, v in _stored(joint_run.run_dir, t.number).items()
                                                        if k in t.user_attrs["metrics"]}} for t in leading}
    expected, _ = pareto_front(leading, objectives, budget, metrics=lambda t: refined[t.number])
    assert [m.trial for m in joint_run.front] == [t.number for t in expected]
    for m in joint_run.front:
        assert m.metrics["val_accuracy"] == pytest.approx(refined[m.trial]["val_accuracy"])


def test_joint_front_by_the_short_fine_tune_with_rerank_layers_zero(tmp_path):
    from slimnas.study import pareto_front

    raw = json.loads(json.dumps(JOINT))
    raw["space"]["compression"]["rerank_layers"] = 0
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    res = slimnas.search(tmp_path / "c.yaml", n_trials=4, seed=0, out=str(tmp_path / "run"))
    expected, _ = pareto_front(res.study.trials, res.plan.objectives, res.plan.budget)
    assert [m.trial for m in res.front] == [t.number for t in expected]
    members = {m.trial for m in res.front}
    for t in res.study.trials:  # only the front's members get the full fine-tune
        assert ("final" in _stored(res.run_dir, t.number)) == (t.number in members)


def test_joint_search_on_a_device_profile_rounds_channels_under_the_mac_budget(tmp_path, joint_run, monkeypatch):
    """On a profile with a latency table, each compressed candidate fitted to its MAC target is
    rounded to the multiple the table predicts fastest per MAC (no timing per trial; the choice
    itself is tested in test_device: here it is made for every trial, and its rounding, forced
    to 8, is what the trial's channel counts keep); without a profile nothing is rounded."""
    import slimnas.study._trials as objective
    from slimnas.compress import list_prunable_layers, prune_ratios, pruned_model
    from slimnas.compress._hardware import MacRounding
    from slimnas.config._profile import write_profile
    from slimnas.measure import build_profile
    from slimnas.study import SearchPlan

    assert all("mac_rounding" not in t.user_attrs["metrics"] for t in joint_run.study.trials
               if t.state.name == "COMPLETE")
    raw = json.loads(json.dumps(JOINT))
    raw["space"]["cnn"]["channels"] = [32]
    raw["space"]["compression"].update(keep_macs={"low": 0.3, "high": 0.6}, final_epochs=1)
    raw["budget"] = []
    shape = load_dataset("digits").input_shape
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    prof = build_profile(name="edge", space=SearchPlan.load(tmp_path / "c.yaml").space, input_shape=shape,
                         n_classes=10, n_calibration=3, n_check=0, repeats=5)
    raw["device_profile"] = str(write_profile(prof, tmp_path / "edge.yaml"))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    choices, real_choice = [], objective.choose_mac_rounding

    def choose(parent, shape, predictor, ratios, target_macs, **kw):
        real = real_choice(parent, shape, predictor, ratios, target_macs, **kw)
        choices.append((real, target_macs, kw))
        return MacRounding(8, real.tried, None, "forced by the test")

    monkeypatch.setattr(objective, "choose_mac_rounding", choose)
    res = slimnas.search(tmp_path / "c.yaml", n_trials=3, seed=0, out=str(tmp_path / "run"))
    done = [t for t in res.study.trials if t.state.name == "COMPLETE"]
    assert done and len(choices) == len(res.study.trials)
    for real, target, kw in choices:
        assert kw == {"batch": 1, "precision": "fp32"} and real.tried[0]["rounding"] == 1
        assert all(t["macs"] <= target for t in real.tried)
    for t in done:
        m = t.user_attrs["metrics"]
        assert m["mac_rounding"] == 8 and m["mac_rounding_reason"] == "forced by the test"
        assert m["macs"] <= t.params["comp.keep_macs"] * m["parent_macs"]
        parent = build_model(Candidate.from_dict(t.user_attrs["candidate"]).arch, shape, 10)
        original = {lay.name: lay.out_channels for lay in list_prunable_layers(parent, shape)}
        ratios = prune_ratios(CompressionPolicy.from_dict(t.user_attrs["policy"]))
        kept = {lay.name: lay.out_channels for lay in list_prunable_layers(pruned_model(parent, ratios, shape), shape)}
        assert all(w % 8 == 0 or w == original[n] for n, w in kept.items()), kept
        assert any(w < original[n] for n, w in kept.items())
