"""The tokens task end to end from the command line on its built-in dataset, pysource-tags:
a search of per-token CNN and GRU candidates scored by token F1, `compress --auto` of a trial,
the report and the exported files, whose tag scores per position equal the eager models'; a
language-model search of causal CNN and LSTM candidates; a tokens search of ResNets and a
language-model one of MobileNets, pruned and int8; DARTS on text."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import slimnas
from slimnas.cli import build_app
from slimnas.data import load_dataset
from slimnas.export import predict
from slimnas.study._export import export_run

DATA = {"dataset": "pysource-tags", "options": {"n": 120, "seq_len": 24}}


def test_the_tokens_task_searches_compresses_reports_and_exports_per_token_cnn_and_rnn_models(tmp_path, cli_here):
    (tmp_path / "tags.yaml").write_text(yaml.safe_dump({
        "data": DATA, "seed": 0,
        "space": {"family": ["cnn", "rnn"], "cnn": {"n_layers": 2, "channels": [8, 16], "kernel": [3, 5],
                                                    "stride": [2], "pool": ["max"]},
                  "rnn": {"cell": ["gru"], "hidden": [8], "n_layers": 1, "bidirectional": [True]}},
        "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"}}))
    run = tmp_path / "run"
    r = cli_here("search", str(tmp_path / "tags.yaml"), "--n-trials", "4", "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    pareto = json.loads((run / "pareto.json").read_text())
    assert pareto["objectives"] == ["token_f1", "macs"]
    archs = [json.loads(p.read_text())["arch"] for p in sorted((run / "trials").glob("*/arch.json"))]
    assert {a["family"] for a in archs} == {"cnn", "rnn"}  # both families, each with a per-token head
    assert all(a["per_token"] == "tokens" and a["vocab_size"] > 90 for a in archs)
    cnn = next(a for a in archs if a["family"] == "cnn")  # the head keeps the length: no stride, no pooling
    assert all(layer["stride"] == 1 and layer["pool"] == "none" for layer in cnn["layers"]) and cnn["head"] == "gap"
    member = pareto["front"][0]
    assert 0 < member["metrics"]["test_token_f1"] <= 1 and 0 < member["metrics"]["test_token_accuracy"] <= 1

    auto = tmp_path / "auto"
    r = cli_here("compress", "--run", str(run), "--trial", str(member["trial"]), "--auto", "--budget", "macs<=60%",
                "--n-trials", "1", "--finetune-epochs", "1", "--final-epochs", "1", "--out", str(auto), "--quiet")
    assert r.returncode == 0, r.stderr
    report = json.loads((auto / "report.json").read_text())
    assert report["feasible"] and report["after"]["macs"] <= 0.6 * report["before"]["macs"]
    assert 0 < report["after"]["val_token_f1"] <= 1 and "test_token_f1" in report["after"]

    cli = CliRunner()  # in this process: the same commands, without a Python start each
    r = cli.invoke(build_app(), ["report", str(run)])
    assert r.exit_code == 0, r.output
    assert "token F1" in (run / "report.md").read_text()

    x = load_dataset("pysource-tags", options=DATA["options"]).x_test[:5]
    for folder, args in ((run, ["--best", ""]), (auto, [])):
        r = cli.invoke(build_app(), ["export", str(folder), *args, "--out", str(tmp_path / f"{folder.name}.onnx")])
        assert r.exit_code == 0, r.output
        model = slimnas.load(folder) if folder is auto else slimnas.load(folder, best="")
        with torch.no_grad():
            eager = model(x).numpy()
        assert eager.shape == (5, 24, 10)  # a score per tag at every position
        np.testing.assert_allclose(predict(tmp_path / f"{folder.name}.onnx", x), eager, atol=1e-4)


def test_a_language_model_search_takes_causal_cnn_and_rnn_candidates(tmp_path):
    """lm on pysource with the CNN and recurrent families: causal heads (a prediction does not
    read later tokens), scored by perplexity, their ONNX files equal to the eager models."""
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump({
        "data": {"dataset": "pysource", "options": {"n": 60, "seq_len": 16}}, "seed": 0,
        "space": {"family": ["cnn", "rnn"], "cnn": {"n_layers": 2, "channels": [8], "kernel": [3],
                                                    "dilation": [2], "residual": [True]},
                  "rnn": {"cell": ["lstm"], "hidden": [8], "n_layers": 1, "bidirectional": [True]}},
        "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"}}))
    res = slimnas.search(tmp_path / "lm.yaml", n_trials=4, out=str(tmp_path / "run"))
    x = load_dataset("pysource", options={"n": 60, "seq_len": 16}).x_val[:4]
    later = x.clone()
    later[..., 10:] = (later[..., 10:] + 1) % 90
    families = set()
    for folder in sorted((tmp_path / "run" / "trials").iterdir()):
        arch = json.loads((folder / "arch.json").read_text())["arch"]
        families.add(arch["family"])
        assert arch["per_token"] == "causal" and not arch.get("bidirectional")
        model = slimnas.load(tmp_path / "run", int(folder.name))
        with torch.no_grad():
            y = model(x)
            assert y.shape[:2] == (4, 16) and torch.equal(model(later)[:, :10], y[:, :10])
        np.testing.assert_allclose(predict(folder / "model.onnx", x), y.numpy(), atol=1e-4)
    assert families == {"cnn", "rnn"} and 1 < res.front[0].metrics["test_perplexity"] < 200


def test_darts_takes_text_data_and_another_one_shot_strategy_is_refused(tmp_path):
    """DARTS relaxes the CNN with its embedding (tests/test_darts.py checks its token supernets);
    a one-shot strategy without token supernets is refused in one line."""
    from slimnas.errors import ConfigError
    from slimnas.study._plan import SearchPlan
    from slimnas.study._search import load_splits
    from slimnas.study._task import check_token_one_shot

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"data": {"dataset": "text", "options": {"n": 300}},
                                                     "space": {"family": ["cnn"]}}))
    plan = SearchPlan.load(tmp_path / "c.yaml", strategy="darts", out=str(tmp_path / "x"))
    assert load_splits(plan).vocab_size > 2
    with pytest.raises(ConfigError, match=r"^strategy.name: expected supernet, darts or a strategy that trains each "
                                          r"candidate for text data \(mine has no supernet of token ids"):
        check_token_one_shot("mine", ["cnn"], "text data")


@pytest.mark.parametrize("family, data, space", [
    ("resnet", DATA, {"n_stages": 2, "blocks": [1], "width": [8], "stride": [2], "stem": [8]}),
    ("mobilenet", {"dataset": "pysource", "options": {"n": 60, "seq_len": 16}},
     {"n_blocks": 2, "width": [8], "expand": [2], "kernel": [3, 5], "stride": [2], "se": [True], "stem": [8]}),
])
def test_the_residual_and_inverted_residual_families_search_per_token_tasks_to_int8_files(tmp_path, family, data,
                                                                                           space):
    """A tokens search of resnet candidates and a language-model search of mobilenet ones, with
    pruning and int8 genes: per-token heads at stride 1 (a causal one without squeeze-and-excitation,
    its predictions blind to later tokens), the deployed int8 file scoring what its trial reported,
    the fp32 export equal to the eager model."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "data": data, "seed": 0, "space": {"family": [family], family: space, "compression": {
            "prune": {"low": 0.25, "high": 0.5}, "precision": ["int8"], "finetune_epochs": 1, "final_epochs": 1}},
        "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"}}))
    res = slimnas.search(tmp_path / "c.yaml", n_trials=1, out=str(tmp_path / "run"))
    pareto = json.loads((res.run_dir / "pareto.json").read_text())
    member = pareto["front"][0]
    arch, metric = member["arch"], pareto["objectives"][0]
    causal = data["dataset"] == "pysource"
    assert arch["family"] == family and arch["per_token"] == ("causal" if causal else "tokens")
    assert [b["stride"] for b in arch.get("stages", arch.get("blocks"))] == [1, 1] and arch["vocab_size"] > 90
    assert family == "resnet" or [b["se"] for b in arch["blocks"]] == [False, False]
    stored = json.loads((res.run_dir / "trials" / f"{member['trial']:05d}" / "metrics.json").read_text())
    assert stored["macs"] < stored["parent_macs"]  # pruned, the head still one prediction per position
    splits = load_dataset(data["dataset"], options=data["options"])
    logits = predict(res.run_dir / "trials" / f"{member['trial']:05d}" / "model.onnx", splits.x_test)
    assert logits.shape[:2] == tuple(splits.x_test.shape[::2])  # a prediction per position
    reported = member["metrics"][f"test_{metric}"]
    assert splits.task.score(torch.from_numpy(logits), splits.y_test)[metric] == pytest.approx(reported, rel=1e-4)

    export_run(res.run_dir, tmp_path / "m.onnx", format="onnx-fp32", best="")
    model = slimnas.load(res.run_dir, best="")
    x = splits.x_test[:6]
    later = x.clone()
    later[..., 10:] = (later[..., 10:] + 1) % 90  # other tokens from position 10 on
    with torch.no_grad():
        eager, changed = model(x), model(later)
    assert torch.equal(changed[:, :10], eager[:, :10]) == causal
    np.testing.assert_allclose(predict(tmp_path / "m.onnx", x), eager.numpy(), atol=1e-4)
