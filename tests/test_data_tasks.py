"""Built-in offline datasets of the other tasks: their targets pass the task's checks, their splits
are deterministic, the corpus is split by file; search's data loader reads the regression,
multi-label, language-model and detection ones."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np
import pytest

from slimnas.data import list_datasets, load_dataset, load_task_dataset
from slimnas.data._pysource import VOCAB, make_pysource, split_of, stdlib_files
from slimnas.data._pytags import TAGS, make_pysource_tags, tag_source
from slimnas.errors import ConfigError
from slimnas.tasks import get_task

SMALL = {"diabetes": {}, "digits-multilabel": {}, "pysource": {"n": 60, "seq_len": 32}, "boxes64": {"n": 30},
         "pysource-tags": {"n": 60, "seq_len": 32}}


@pytest.mark.parametrize("name, task_name", [("diabetes", "regression"), ("digits-multilabel", "multilabel"),
                                             ("pysource", "lm"), ("boxes64", "detection"),
                                             ("pysource-tags", "tokens")])
def test_each_task_dataset_loads_and_its_targets_pass_the_tasks_checks(name, task_name):
    assert name in list_datasets()
    task_of, splits = load_task_dataset(name, **SMALL[name])
    assert task_of == task_name and set(splits) == {"train", "val", "test"}
    task = get_task(task_of)
    shape = tuple(splits["train"][0].shape[1:])
    checked = {k: task.check_targets(y, n=len(x), input_shape=shape, field=f"y_{k}") for k, (x, y) in splits.items()}
    task.fit(checked["train"])
    head = task.head_size(checked["train"])  # the corpus: the characters it holds, at most the vocabulary
    assert 60 < head <= len(VOCAB) if name == "pysource" else head == {"diabetes": 1, "digits-multilabel": 6,
                                                                         "boxes64": 4, "pysource-tags": len(TAGS)}[name]
    again = load_task_dataset(name, **SMALL[name])[1]  # deterministic
    for k in splits:
        np.testing.assert_array_equal(splits[k][0], again[k][0])
    # search and compress read them, with their task fitted on the training split (detection: compress only)
    loaded = load_dataset(name, options=SMALL[name])
    if name == "pysource":  # a language model's vocabulary: every id of every split
        head = 1 + max(int(y.max()) for _, y in splits.values())
    assert loaded.task.name == task_name and loaded.n_classes == head and len(loaded.y_train) == len(splits["train"][1])


def test_regression_splits_differ_by_seed_and_cover_every_sample_once():
    a, b = load_task_dataset("diabetes", seed=0)[1], load_task_dataset("diabetes", seed=1)[1]
    assert not np.array_equal(a["test"][1], b["test"][1])
    assert sum(len(x) for x, _ in a.values()) == 442
    assert np.unique(np.concatenate([x for x, _ in a.values()]), axis=0).shape[0] == 442


@pytest.mark.parametrize("name", ["diabetes", "digits-multilabel"])
def test_data_seed_picks_a_task_datasets_split_as_it_does_every_other_datasets(name):
    """``data.seed`` (the seed of the splits) reaches a task dataset's split: search on seed 1 is
    search on load_task_dataset(seed=1)'s rows; data.options.seed, when given, still decides."""
    raw = load_task_dataset(name, seed=1)[1]
    splits = load_dataset(name, seed=1)
    task = splits.task
    assert np.array_equal(task.encode(task.check_targets(raw["test"][1])).numpy(), splits.y_test.numpy())
    assert not np.array_equal(splits.y_test.numpy(), load_dataset(name, seed=0).y_test.numpy())
    assert np.array_equal(load_dataset(name, seed=0, options={"seed": 1}).y_test.numpy(),
                          load_dataset(name, seed=5, options={"seed": 1}).y_test.numpy())


def test_the_corpus_is_split_by_file_so_test_text_is_unseen():
    root = Path(sysconfig.get_paths()["stdlib"])
    splits = {split_of(p.relative_to(root).as_posix()) for p in stdlib_files()}
    assert splits == {"train", "val", "test"}
    d = make_pysource(n=300, seq_len=48)
    assert d["train"][0].shape == (300, 48) and d["test"][0].shape == (60, 48)
    x, y = d["train"]
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # the targets are the next characters
    train = {"".join(VOCAB[i] for i in row) for row in d["train"][0]}
    test = ["".join(VOCAB[i] for i in row) for row in d["test"][0]]
    shared = [w for w in test if w in train]  # only text several files copy: "# Copyright 2007 Google, Inc. ..."
    assert len(shared) <= len(test) // 20, shared
    # the build's configuration (_sysconfigdata_*.py: compiler flags, a different file on every
    # machine) is not source; before, it was most of the test text
    assert not [p for p in stdlib_files() if p.name.startswith("_sysconfigdata")]


def test_boxes_lie_inside_the_images_and_the_seed_decides_them():
    _, a = load_task_dataset("boxes64", n=30, seed=0)
    _, b = load_task_dataset("boxes64", n=30, seed=1)
    x, y = a["train"]
    assert x.shape[1:] == (3, 64, 64) and 0 <= x.min() and x.max() <= 1
    boxes = np.concatenate([t["boxes"] for t in y])
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 64).all() and (boxes[:, 2:] > boxes[:, :2]).all()
    assert {int(c) for t in y for c in t["labels"]} == {0, 1, 2, 3}
    assert not np.array_equal(a["train"][0], b["train"][0])
    with pytest.raises(ConfigError, match=r"^data.options.n: expected an integer in 10..100,000, got 3$"):
        load_task_dataset("boxes64", n=3)


def test_each_character_of_python_source_is_tagged_by_the_class_of_its_token():
    text = 'def f(x):  # see\n    """doc"""\n    return len(x) + 1.5 \\\n        * g(f"{x}")\n'
    letters = "_nkbidNsco"  # TAGS' initials: space, newline, keyword, builtin, name (i), definition, ...
    assert [t[0] for t in TAGS] == ["s", "n", "k", "b", "n", "d", "n", "s", "c", "o"]
    got = "".join(letters[t] for t in tag_source(text))
    assert got == "kkk_doioo__cccccn____sssssssssn____kkkkkk_bbboio_o_NNN__n________o_iosssssson", got
    assert tag_source("def f(:\n") is None  # a file tokenize cannot read is left out


def test_the_tagged_corpus_is_the_source_split_by_file_with_every_tag_in_every_split():
    d = make_pysource_tags(n=300, seq_len=48)
    assert d["train"][0].shape == d["train"][1].shape == (300, 48) and d["test"][0].shape == (60, 48)
    for _, y in d.values():  # every tag occurs in each split, and the commonest is far from all
        counts = np.bincount(y.ravel(), minlength=len(TAGS))
        assert (counts > 0).all() and counts.max() < 0.5 * y.size
    train = {"".join(VOCAB[i] for i in row) for row in d["train"][0]}  # other files: few windows alike
    assert len(train & {"".join(VOCAB[i] for i in row) for row in d["test"][0]}) <= 2


def test_a_language_models_vocabulary_covers_ids_only_held_out_text_uses():
    """A character that only the test text holds still has a row in the head, so the test
    perplexity is scored (it was an IndexError when the vocabulary came from training ids)."""
    import torch

    from slimnas.data._tasks import _token_splits

    rng = np.random.default_rng(0)
    train = rng.integers(0, 5, (20, 9))
    test = train[:4].copy()
    test[:, 3] = 7  # an id no training window holds
    raw = {s: (w[:, :-1], w[:, 1:]) for s, w in (("train", train), ("val", train[:4]), ("test", test))}
    splits = _token_splits("ids", get_task("lm"), raw)
    assert splits.task.vocab_size == splits.n_classes == splits.vocab_size == 8
    logits = torch.zeros(4, 8, 8)
    assert splits.task.score(logits, splits.y_test)["perplexity"] == pytest.approx(8.0)


def _regression_rows(n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.normal(size=n) + 50.0).astype(np.float32)


def test_a_csv_or_npz_file_of_another_task_is_read_by_that_task(tmp_path):
    """A user's .csv / .npz of regression targets (or several 0/1 columns for multi-label) is
    split by data.seed and read by the named task: targets standardised from the training
    split for regression, not taken for class ids (it was refused: 'its labels are classes')."""
    import pandas as pd

    x, y = _regression_rows()
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(price=y)
    frame.to_csv(tmp_path / "r.csv", index=False)
    data = load_dataset(str(tmp_path / "r.csv"), label_column="price", task="regression", seed=3)
    assert data.task.name == "regression" and data.input_shape == (1, 4)
    assert (len(data.x_train), len(data.x_val), len(data.x_test)) == (77, 19, 24)
    # standardised with the training split's statistics, and back in the file's units on the way out
    assert abs(float(data.y_train.mean())) < 1e-5
    assert abs(float(data.task.decode(data.y_test).mean()) - 50.0) < 2.0
    np.savez(tmp_path / "r.npz", x=x, y=y)
    again = load_dataset(str(tmp_path / "r.npz"), task="regression", seed=3)
    assert np.allclose(again.x_test.numpy(), data.x_test.numpy())  # the same rows, whatever the file format

    labels = (x[:, :3] > 0).astype(np.float32)
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(l1=labels[:, 0], l2=labels[:, 1], l3=labels[:, 2])
    frame.to_csv(tmp_path / "m.csv", index=False)
    multi = load_dataset(str(tmp_path / "m.csv"), label_column="l1,l2,l3", task="multilabel")
    assert multi.n_classes == 3 and multi.input_shape == (1, 4) and tuple(multi.y_train.shape[1:]) == (3,)


def test_a_task_file_with_bad_targets_or_columns_is_one_line(tmp_path):
    import pandas as pd

    x, y = _regression_rows(40)
    pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(price=y).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(ConfigError, match=r"^data.label_column: expected a column of r.csv, or several joined by commas"):
        load_dataset(str(tmp_path / "r.csv"), label_column="price,cost", task="regression")
    y[3] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=y)
    with pytest.raises(ConfigError, match="NaN|finite"):
        load_dataset(str(tmp_path / "nan.npz"), task="regression")
    with pytest.raises(ConfigError, match=r"^data.stream: expected false or auto for a regression file"):
        load_dataset(str(tmp_path / "r.csv"), label_column="price", task="regression", stream=True)
