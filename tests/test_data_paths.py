"""Each way data comes in: tabular files scaled per feature, image arrays in both layouts, image
folders, text CSVs, augmentation (training batches only), the layout a user's model takes, and
one-line errors for what does not fit."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from slimnas.cli import main
from slimnas.data import Augment, Preprocessing, load_dataset
from slimnas.data._base import stratified_split
from slimnas.errors import ConfigError
from slimnas.spaces import TrainSpec
from slimnas.training import fit


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code or 0, out.getvalue(), err.getvalue()


def scaled_features(n: int = 300, seed: int = 0):
    """Three classes told apart by features on scales from 1e-3 to 1e3."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    scales = np.array([1e-3, 1.0, 1e3, 50.0])
    x = (rng.normal(size=(n, 4)) + y[:, None] * np.array([1.0, -1.0, 0.5, 0.0])) * scales + np.array([0, 5, -2e3, 7])
    return x.astype(np.float32), y


def test_tabular_files_are_scaled_per_feature_with_training_statistics_only(tmp_path):
    x, y = scaled_features()
    x_test = x[:60] + np.float32(1000.0)  # a test set far from the training data: its statistics must not leak
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x_test, y_test=y[:60])
    s = load_dataset(str(tmp_path / "d.npz"))
    p = s.preprocessing
    assert s.kind == "tabular" and p.normalize == "feature" and p.mean.shape == (1, 4)
    assert torch.allclose(s.x_train.mean(0), torch.zeros(1, 4), atol=1e-3)
    assert torch.allclose(s.x_train.std(0, unbiased=False), torch.ones(1, 4), atol=1e-3)
    assert (s.x_test.mean(0) > 1.0).any()  # test data scaled with the training statistics, not its own
    assert np.allclose(p.transform(x_test), s.x_test.numpy(), atol=1e-4)  # what a deployed model is fed
    assert np.allclose(Preprocessing.from_dict(p.to_dict()).transform(x_test), s.x_test.numpy(), atol=1e-4)
    # the same rows from a CSV get the same scaling; normalize: global gives the single mean of before
    lines = ["a,b,c,d,label"] + [",".join(f"{v:.9g}" for v in row) + f",{t}" for row, t in zip(x, y, strict=True)]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    c = load_dataset(str(tmp_path / "d.csv"))
    assert c.preprocessing.normalize == "feature" and torch.allclose(c.x_train.std(0, unbiased=False), torch.ones(1, 4), atol=1e-3)
    g = load_dataset(str(tmp_path / "d.npz"), normalize="global")
    assert g.preprocessing.mean.size == 1 and float(g.x_train.std(0)[0, 0]) < 1e-3  # tiny features drown


def test_image_arrays_in_either_layout_give_the_same_splits(tmp_path):
    rng = np.random.default_rng(0)
    nchw = rng.uniform(0, 255, size=(60, 3, 6, 5)).astype(np.float32) * np.array([1, 2, 4], np.float32)[None, :, None, None]
    y = np.arange(60) % 3
    np.savez(tmp_path / "c.npz", x=nchw, y=y)
    np.savez(tmp_path / "l.npz", x=nchw.transpose(0, 2, 3, 1), y=y)
    first = load_dataset(str(tmp_path / "c.npz"))
    last = load_dataset(str(tmp_path / "l.npz"), layout="nhwc")
    assert first.input_shape == last.input_shape == (3, 6, 5) and first.kind == "image"
    assert torch.allclose(first.x_train, last.x_train) and torch.equal(first.y_test, last.y_test)
    p = first.preprocessing
    assert p.normalize == "channel" and p.mean.shape == (3, 1, 1)
    assert torch.allclose(first.x_train.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(first.x_train.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
    assert np.allclose(last.preprocessing.transform(nchw.transpose(0, 2, 3, 1)[:5]),
                       first.preprocessing.transform(nchw[:5]), atol=1e-5)
    assumed = load_dataset(str(tmp_path / "l.npz"))  # 3 channels last, 6x5 pixels: NHWC, and it says so
    assert torch.equal(assumed.x_train, last.x_train) and last.notes == () and first.notes == ()
    assert assumed.notes == ("data.layout: assumed nhwc (channels last) for images shaped (60, 6, 5, 3); "
                             "set data.layout: nchw if they are not",)
    np.savez(tmp_path / "a.npz", x=rng.normal(size=(60, 6, 3, 3)), y=y)
    with pytest.raises(ConfigError, match=r"^data.layout: expected nhwc"):  # could be either: not misread
        load_dataset(str(tmp_path / "a.npz"))
    upper = load_dataset(str(tmp_path / "l.npz"), layout="NHWC")  # any case
    assert torch.equal(upper.x_train, last.x_train) and upper.preprocessing.layout == "nhwc"
    with pytest.raises(ConfigError, match=r"^data.layout: expected only for 4-D"):
        load_dataset("wine", layout="nhwc")


def write_png(path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_a_folder_of_images_per_class(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for label, colour in (("red", 0), ("green", 1), ("blue", 2)):
            for i in range(n):
                img = rng.integers(0, 60, size=(7, 9, 3)).astype(np.uint8)
                img[..., colour] += 180
                write_png(tmp_path / "rgb" / split / label / f"{i}.png", img)
    s = load_dataset(str(tmp_path / "rgb"))
    assert s.kind == "image" and s.input_shape == (3, 7, 9) and s.n_classes == 3 and len(s.y_test) == 12
    assert s.preprocessing.mean.shape == (3, 1, 1)
    grey = tmp_path / "grey"
    for label in ("a", "b"):
        for i in range(6):
            write_png(grey / label / f"{i}.png", rng.integers(0, 255, size=(8, 8)).astype(np.uint8))
    assert load_dataset(str(grey)).input_shape == (1, 8, 8)
    write_png(grey / "a" / "odd.png", np.zeros((10, 8), np.uint8))
    with pytest.raises(ConfigError, match=r"^data.options.size: expected one image size"):
        load_dataset(str(grey))
    assert load_dataset(str(grey), options={"size": [4, 4], "mode": "RGB"}).input_shape == (3, 4, 4)


def test_a_text_csv_with_the_default_tokenizer(tmp_path):
    rows = ["review,stars"]
    for i in range(80):
        good = i % 2 == 0
        rows.append(f"\"the {'soup' if i % 4 < 2 else 'film'} was {'not ' if i % 3 == 0 else ''}"
                    f"{'good' if good != (i % 3 == 0) else 'bad'}, truly\",{'pos' if good else 'neg'}")
    rows += [f"\"a word uniq{i} no other row has\",{'pos' if i % 2 else 'neg'}" for i in range(6)]
    (tmp_path / "t.csv").write_text("\n".join(rows))
    s = load_dataset(str(tmp_path / "t.csv"), label_column="stars", tokenizer={"name": "word", "max_length": 6})
    assert s.kind == "text" and s.x_train.shape[1] == 6 and s.x_train.dtype == torch.int64
    vocab = s.preprocessing.tokenizer["vocab"]
    assert vocab[:2] == ["<pad>", "<unk>"] and s.vocab_size == len(vocab)
    for split in (s.x_train, s.x_val, s.x_test):
        assert int(split.max()) < s.vocab_size
    # the vocabulary comes from the training split: training rows have no unknown words (id 1),
    # and each one-off word is in it exactly when its row is not a validation or test row
    assert not (s.x_train == 1).any()
    held_out_unknown = int((s.x_val == 1).any(1).sum() + (s.x_test == 1).any(1).sum())
    assert sum(f"uniq{i}" in vocab for i in range(6)) + held_out_unknown == 6 and held_out_unknown >= 1
    tokens = Preprocessing.from_dict(s.preprocessing.to_dict()).transform(["the soup was zebra good"])
    assert tokens.tolist() == [[vocab.index("the"), vocab.index("soup"), vocab.index("was"), 1, vocab.index("good"), 0]]
    with pytest.raises(ConfigError, match="^data.text_column"):
        load_dataset(str(tmp_path / "t.csv"), label_column="stars", text_column="body")
    with pytest.raises(ConfigError, match="^data.tokenizer"):
        load_dataset(str(tmp_path / "t.csv"), label_column="stars", tokenizer="sentencepiece")


def test_a_local_hugging_face_tokenizer(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["good film", "bad film", "good soup"], trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]"]))
    tok.save(str(tmp_path / "tokenizer.json"))
    rows = ["text,label"] + [f"{'good' if i % 2 else 'bad'} film,{i % 2}" for i in range(40)]
    (tmp_path / "t.csv").write_text("\n".join(rows))
    s = load_dataset(str(tmp_path / "t.csv"), tokenizer={"name": "hf", "path": str(tmp_path / "tokenizer.json")})
    assert s.x_train.shape[1] == 2 and s.pad_id == tok.token_to_id("[PAD]") == 0
    assert set(s.x_train[:, 0].tolist()) == {tok.token_to_id("good"), tok.token_to_id("bad")}
    with pytest.raises(ConfigError, match="^data.tokenizer.path"):
        load_dataset(str(tmp_path / "t.csv"), tokenizer={"name": "hf", "path": str(tmp_path / "missing.json")})


def test_augmentation_changes_training_batches_only(tmp_path):
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    gen = torch.Generator().manual_seed(0)
    cropped = Augment(crop=1)(x, gen)
    assert cropped.shape == x.shape and not torch.equal(cropped, x)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    windows = [padded[0, :, i : i + 4, j : j + 4] for i in range(3) for j in range(3)]
    assert any(torch.equal(cropped[0], w) for w in windows)  # a crop of the padded sample
    flipped = Augment(flip=True)(x, torch.Generator().manual_seed(1))
    assert all(torch.equal(f, s) or torch.equal(f, s.flip(-1)) for f, s in zip(flipped, x, strict=True))
    last = Augment(crop=1, layout="channels_last")(x.permute(0, 2, 3, 1), torch.Generator().manual_seed(0))
    assert torch.equal(last, cropped.permute(0, 2, 3, 1))  # same augmentation whatever the model's layout
    seq = torch.arange(10.0).view(1, 1, 10).repeat(4, 1, 1)
    shifted = Augment(shift=2)(seq, torch.Generator().manual_seed(0))
    assert shifted.shape == seq.shape and all(torch.equal(r[0][r[0] > 0], r[0][r[0] > 0].sort().values) for r in shifted)
    # through the data: training batches are augmented, validation and test tensors are not
    plain, aug = load_dataset("digits-images"), load_dataset("digits-images", augment={"crop": 1, "flip": True})
    assert plain.augment is None and aug.augment == Augment(crop=1, flip=True)
    assert torch.equal(plain.x_val, aug.x_val) and torch.equal(plain.x_test, aug.x_test)
    seen = []

    def spy(xb, gen):
        seen.append(len(xb))
        return aug.augment(xb, gen)

    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    fit(net, aug.x_train, aug.y_train, TrainSpec(epochs=1, batch_size=128), x_val=aug.x_val, y_val=aug.y_val, augment=spy)
    assert sum(seen) == len(aug.y_train)  # every training sample, in training batches only
    with pytest.raises(ConfigError, match="^data.augment.flip: expected image data"):
        load_dataset("mnist1d", augment={"flip": True})
    with pytest.raises(ConfigError, match="^data.augment.blur"):
        load_dataset("digits-images", augment={"blur": 2})


def test_the_input_layout_a_model_takes(tmp_path):
    last = load_dataset("digits-images", input_layout="channels_last")
    first = load_dataset("digits-images")
    assert last.input_shape == (8, 8, 1) and torch.equal(last.x_train, first.x_train.permute(0, 2, 3, 1))
    flat = load_dataset("mnist1d", input_layout="no_channel")
    assert flat.input_shape == (40,)
    with pytest.raises(ConfigError, match="^data.input_layout"):
        load_dataset("shapes32", options={"n": 50}, input_layout="no_channel")  # 3 channels cannot be dropped
    net = "import torch\nfrom torch import nn\n" + "\n".join([
        "class ChannelsLast(nn.Module):",
        "    def __init__(self):",
        "        super().__init__()",
        "        self.conv = nn.Conv2d(1, 4, 3, padding=1)",
        "        self.head = nn.Linear(4 * 8 * 8, 10)",
        "    def forward(self, x):",
        "        return self.head(torch.relu(self.conv(x.permute(0, 3, 1, 2))).flatten(1))",
        "def build():",
        "    return ChannelsLast()",
    ]) + "\n"
    (tmp_path / "net.py").write_text(net)
    args = ["compress", "--model", f"{tmp_path / 'net.py'}:build", "--dataset", "digits-images", "--train-epochs", "1",
            "--prune", "0.5", "--epochs", "1", "--out", str(tmp_path / "out")]
    code, _, err = run_cli(args)
    assert code == 2 and "--input-layout" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli([*args, "--input-layout", "channels_last"])
    assert code == 0, err
    info = yaml.safe_load((tmp_path / "out" / "run.json").read_text())
    assert info["input_shape"] == [8, 8, 1] and info["preprocessing"]["input_layout"] == "channels_last"
    assert info["data"]["input_layout"] == "channels_last"
    import slimnas
    from slimnas.study._load import open_model

    loaded = open_model(tmp_path / "out")
    assert loaded.preprocessing["input_layout"] == "channels_last"
    data = loaded.load_data()
    assert data.input_shape == (8, 8, 1)
    assert slimnas.load(tmp_path / "out")(data.x_val[:4]).shape == (4, 10)


HOSTILE = [
    (["--dataset", "{npz_nhwc}"], "data.layout"),
    (["--dataset", "digits-images", "--input-layout", "sideways"], "data.input_layout"),
    (["--data-config", "{cfg_augment}"], "data.augment.blur"),
    (["--data-config", "{cfg_stream}"], "data.stream"),
    (["--data-config", "{cfg_tokenizer}"], "data.tokenizer"),
    (["--data-config", "{cfg_options}"], "data.options.colour"),
    (["--data-config", "{cfg_not_data}"], "--data-config"),
]


@pytest.mark.parametrize("extra, field", HOSTILE, ids=[h[1] + str(i) for i, h in enumerate(HOSTILE)])
def test_bad_data_options_are_one_line_and_exit_2(tmp_path, extra, field):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "nhwc.npz", x=rng.normal(size=(30, 8, 3, 3)), y=np.arange(30) % 3)  # NHWC or NCHW?
    cfgs = {"cfg_augment": {"data": {"dataset": "digits-images", "augment": {"blur": 1}}},
            "cfg_stream": {"data": {"dataset": "digits", "stream": True}},
            "cfg_tokenizer": {"data": {"dataset": "text", "tokenizer": "bpe"}},
            "cfg_options": {"data": {"dataset": "shapes32", "options": {"colour": 1}}},
            "cfg_not_data": {"dataset": "digits"}}
    paths = {"npz_nhwc": str(tmp_path / "nhwc.npz")}
    for key, cfg in cfgs.items():
        (tmp_path / f"{key}.yaml").write_text(yaml.safe_dump(cfg))
        paths[key] = str(tmp_path / f"{key}.yaml")
    (tmp_path / "net.py").write_text("import torch\ndef build():\n    return torch.nn.Linear(40, 10)\n")
    argv = ["compress", "--model", f"{tmp_path / 'net.py'}:build", "--prune", "0.5", "--out", str(tmp_path / "o"),
            *[a.format(**paths) for a in extra]]
    code, _, err = run_cli(argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {field}"), err
    assert not (tmp_path / "o").exists()


SEARCH_HOSTILE = [
    ({"dataset": "text"}, "space.family"),
    ({"dataset": "digits-images", "input_layout": "channels_last"}, "data.input_layout"),
    ({"dataset": "text", "augment": {"noise": 0.1}}, "data.augment"),
    ({"dataset": "wine", "normalize": "sometimes"}, "data.normalize"),
    ({"dataset": "mnist1d", "stream": True}, "data.stream"),
]


@pytest.mark.parametrize("data, field", SEARCH_HOSTILE, ids=[h[1] for h in SEARCH_HOSTILE])
def test_searches_refuse_data_their_families_cannot_take(tmp_path, data, field):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"data": data, "space": {"family": ["mlp"]}}))
    code, _, err = run_cli(["search", str(tmp_path / "c.yaml"), "--n-trials", "1", "--out", str(tmp_path / "run"),
                            "--quiet"])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {field}"), err
    assert not (tmp_path / "run").exists()


def test_a_search_on_streamed_images_saves_their_preprocessing_with_the_run(tmp_path):
    """NHWC images read from disk per batch, augmented in training: the run folder says how inputs
    were prepared, and a model exported from it, fed raw samples prepared that way, scores as the
    search's test split says."""
    import json

    from slimnas.export import predict
    from slimnas.study._load import open_model

    rng = np.random.default_rng(0)
    y = np.arange(240) % 3
    x = (rng.normal(size=(240, 6, 6, 3)) * 5 + 100).astype(np.float32)
    x[..., 0] += y[:, None, None] * 4
    np.savez(tmp_path / "img.npz", x=x, y=y)
    cfg = {"data": {"dataset": str(tmp_path / "img.npz"), "layout": "nhwc", "stream": True, "num_workers": 0,
                    "augment": {"flip": True}},
           "space": {"family": ["mlp"], "mlp": {"n_layers": 1, "width": [8]}},
           "training": {"epochs": 2, "lr": 0.01, "optimizer": "adam"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, _, err = run_cli(["search", str(tmp_path / "c.yaml"), "--n-trials", "1", "--out", str(tmp_path / "run"),
                            "--quiet"])
    assert code == 0, err
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["preprocessing"]["layout"] == "nhwc" and info["preprocessing"]["normalize"] == "channel"
    loaded = open_model(tmp_path / "run", trial=0)
    assert loaded.preprocessing == info["preprocessing"] and loaded.load_data().streamed
    code, _, err = run_cli(["export", str(tmp_path / "run"), "--trial", "0", "--out", str(tmp_path / "m.onnx")])
    assert code == 0, err
    prep = Preprocessing.from_dict(json.loads((tmp_path / "m.preprocessing.json").read_text()))
    splits = loaded.load_data()
    _, test_rows = stratified_split(y, 0.2, 1)  # the test split carved from the file (data.seed + 1)
    prepared = prep.transform(x[test_rows])
    assert np.allclose(prepared, splits.x_test[:].numpy(), atol=1e-5)
    pred = predict(tmp_path / "m.onnx", torch.from_numpy(prepared)).argmax(1)
    pareto = json.loads((tmp_path / "run" / "pareto.json").read_text())
    assert pareto["front"][0]["metrics"]["test_accuracy"] == pytest.approx(float((pred == y[test_rows]).mean()))
