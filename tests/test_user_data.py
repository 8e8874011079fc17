"""The user's own Datasets / DataLoaders, training step and score function through compress,
auto_compress, search and the command line (issue 42)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import slimnas
from slimnas.compress import compress
from slimnas.data import DataSplits, unwrap
from slimnas.data._loaders import splits_from_loaders
from slimnas.errors import ConfigError
from slimnas.spaces._policy import CompressionPolicy

PRUNE = CompressionPolicy.of(prune={"ratio": 0.5})


def _plain():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 8, generator=g)
    return x, (x[:, 0] > 0).long()


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))


def _bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=16, num_labels=2)
    return transformers.BertForSequenceClassification(cfg).eval()


class _TokenData(torch.utils.data.Dataset):
    """Dict samples as a Hugging Face collator gives them: ids, mask and labels."""

    def __init__(self, n: int = 64) -> None:
        g = torch.Generator().manual_seed(1)
        self.ids = torch.randint(1, 50, (n, 8), generator=g)
        self.mask = torch.ones_like(self.ids)
        self.mask[:, 6:] = 0
        self.labels = (self.ids[:, 0] > 25).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": self.labels[i]}


def data_splits_x(data: _TokenData) -> torch.Tensor:
    """The packed float rows compress holds for the dict samples (ids, then mask)."""
    return torch.cat([data.ids, data.mask], dim=1).float()[:4]


def test_loaders_give_the_same_figures_as_the_same_tensors():
    x, y = _plain()
    ds = torch.utils.data.TensorDataset(x, y)
    loader = torch.utils.data.DataLoader(ds, batch_size=32)
    via_loaders = compress(_net(), PRUNE, train=loader, val=ds, epochs=1, latency_repeats=3)
    splits = DataSplits("t", x, y, x, y, x, y, n_classes=2)
    via_tensors = compress(_net(), splits, PRUNE, epochs=1, latency_repeats=3)
    for key in ("val_accuracy", "test_accuracy", "macs", "params"):
        assert via_loaders.after[key] == via_tensors.after[key], key
        assert via_loaders.before[key] == via_tensors.before[key], key


def test_hf_dict_batches_go_through_the_users_step_and_score(tmp_path):
    data = _TokenData()
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    calls = {"step": 0, "score": 0, "batch_keys": set()}

    def step(model, batch, optimizer):
        calls["step"] += 1
        calls["batch_keys"] |= set(batch)
        out = model(**batch)  # the Hugging Face model itself, its loss from the labels
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        return out.loss

    def score(model, batches):
        calls["score"] += 1
        wrong = 0
        for b in batches:
            pred = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits.argmax(1)
            wrong += int((pred != b["labels"]).sum())
        return {"minus_errors": -float(wrong)}  # no accuracy: a figure only this function gives

    res = compress(_bert(), policy=PRUNE, train=loader, val=loader, test=data, epochs=2, latency_repeats=3,
                   train_step=step, score_fn=score, out=tmp_path / "out")
    spec_batch = 128  # the fine-tune's batch size: 64 samples are one batch per epoch
    assert calls["step"] == 2 * max(1, -(-len(data) // spec_batch))
    assert calls["batch_keys"] == {"input_ids", "attention_mask", "labels"}
    assert calls["score"] >= 3  # eager while fine-tuning, the ONNX files before and after
    for figures in (res.before, res.after):
        assert figures["val_accuracy"] <= 0 and figures["val_accuracy"] == int(figures["val_accuracy"])
    assert res.after["macs"] < res.before["macs"]
    assert (tmp_path / "out" / "model.onnx").is_file()
    own = unwrap(res.model)  # the Hugging Face model itself, pruned without a wrapper of the user's
    assert type(own).__name__ == "BertForSequenceClassification"
    assert own.bert.encoder.layer[0].intermediate.dense.out_features < 32
    back = slimnas.load(tmp_path / "out", model=_bert())  # run.json's batch_form rebuilds the packed model
    x = data_splits_x(data)
    assert torch.allclose(back(x), res.model(x), atol=1e-5)


def test_auto_compress_on_dict_loaders(tmp_path):
    data = _TokenData(48)
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    res = slimnas.auto_compress(_bert(), train=loader, val=loader, budget=["macs<=70%"], n_trials=1,
                                finetune_epochs=1, final_epochs=1, out=tmp_path / "auto")
    assert res.after["macs"] <= 0.7 * res.before["macs"]
    assert 0.0 <= res.after["val_accuracy"] <= 1.0
    back = slimnas.load(tmp_path / "auto", model=_bert())
    x = data_splits_x(data)
    assert torch.allclose(back(x), res.artifact.model(x), atol=1e-5)


def test_search_reads_the_input_shape_from_the_first_batch(tmp_path):
    x, y = _plain()
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:120], y[:120]), batch_size=32)
    val = torch.utils.data.TensorDataset(x[120:], y[120:])
    res = slimnas.search(train=train, val=val, n_trials=1, epochs=1, out=str(tmp_path / "run"))
    assert res.front and 0.0 <= res.front[0].metrics["test_accuracy"] <= 1.0
    arch = json.loads(next((tmp_path / "run").rglob("run.json")).read_text())
    assert arch["input_shape"] == [8]


def test_a_batch_the_model_does_not_take_is_one_line():
    x, y = _plain()
    ds = torch.utils.data.TensorDataset(x[:, :5], y)
    with pytest.raises(ConfigError, match=r"train: expected inputs Sequential runs on.*\(2, 5\)"):
        splits_from_loaders(_net(), ds, ds)
    with pytest.raises(ConfigError, match="val batch 0: expected the structure of the training data's batches"):
        splits_from_loaders(_net(), torch.utils.data.TensorDataset(x, y), torch.utils.data.TensorDataset(x[:, :4], y))
    with pytest.raises(ConfigError, match="train batch 0: expected batches of .inputs, target. or dicts"):
        splits_from_loaders(_net(), [x[0]], [x[0]])


def test_cli_data_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "user.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn

        def model():
            torch.manual_seed(0)
            return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))

        def data():
            x = torch.randn(96, 8, generator=torch.Generator().manual_seed(0))
            ds = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
            return {"train": torch.utils.data.DataLoader(ds, batch_size=32), "val": ds}

        def other():
            samples = [{"pixels": torch.randn(5), "labels": i % 2} for i in range(32)]  # a list is a Dataset
            return {"train": samples, "val": samples}
    """))
    base = [sys.executable, "-m", "slimnas", "compress", "--model", "user.py:model", "--prune", "0.5", "--quiet"]
    ok = subprocess.run([*base, "--data", "user.py:data", "--train-epochs", "1", "--finetune-epochs", "1",
                         "--out", "good"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "good" / "model.onnx").is_file()
    from slimnas.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:  # in this process: the same command line, no second start-up
        main([*base[3:], "--data", "user.py:other", "--out", "bad"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert exit_.value.code == 2 and len(err) == 1, err
    assert "pixels" in err[0] and "forward takes" in err[0]
    assert not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit) as exit_:
        main([*base[3:], "--data", "user.py:data", "--dataset", "digits", "--out", "bad"])
    assert exit_.value.code == 2 and "--dataset reads a dataset" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_cli_search_data_beside_a_dataset_is_one_line(tmp_path, monkeypatch, capsys):
    from slimnas.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "user.py").write_text("def data():\n    return {'train': [], 'val': []}\n")
    with pytest.raises(SystemExit) as exit_:
        main(["search", "--data", "user.py:data", "--dataset", "digits", "--out", "run", "--quiet"])
    assert exit_.value.code == 2
    assert "dataset: expected either a dataset or train= / val= data (--data), not both" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_lower_is_better_score_ranks_negated_and_a_bad_one_is_one_line():
    from slimnas.training import evaluate
    from slimnas.training._user import UserTraining, using

    x, y = _plain()
    seen = []

    def err(model, batches):
        seen.extend(len(b[1]) for b in batches)
        return {"err": 0.25, "other": 1.0}

    with using(UserTraining(score_fn=err, direction="minimize")):
        scores = evaluate(_net(), x, y)
    assert scores["accuracy"] == -0.25 and scores["err"] == 0.25 and sum(seen) == len(y)
    assert "accuracy" in evaluate(_net(), x, y) and evaluate(_net(), x, y)["accuracy"] != -0.25  # outside: built-in
    with using(UserTraining(score_fn=lambda m, b: 0.5)), pytest.raises(ConfigError, match="score_fn: expected a "
                                                                                          "function returning a dict"):
        evaluate(_net(), x, y)
    with using(UserTraining(score_fn=err, primary="f1")), pytest.raises(ConfigError, match="score_primary"):
        evaluate(_net(), x, y)


def test_search_on_loaders_of_another_task(tmp_path):
    x, _ = _plain()
    y = 2 * x[:, 0]  # a regression target
    train, val = torch.utils.data.TensorDataset(x[:120], y[:120]), torch.utils.data.TensorDataset(x[120:], y[120:])
    res = slimnas.search(train=train, val=val, task="regression", n_trials=1, epochs=1, out=str(tmp_path / "run"))
    assert "test_r2" in res.front[0].metrics and "test_accuracy" not in res.front[0].metrics
