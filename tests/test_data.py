import numpy as np
import pytest

from slimnas.data import list_datasets, load_dataset
from slimnas.errors import ConfigError


def test_builtins_are_registered_and_split():
    assert {"mnist1d", "digits"} <= set(list_datasets())
    s = load_dataset("mnist1d")
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (3200, 800, 1000)
    assert s.input_shape == (1, 40) and s.n_classes == 10


def test_splits_are_disjoint_stratified_and_fixed():
    a, b = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    assert (a.x_val == b.x_val).all()
    rows = {tuple(r.flatten().tolist()) for r in a.x_train}
    assert not any(tuple(r.flatten().tolist()) in rows for r in a.x_test[:50])
    counts = np.bincount(a.y_val.numpy(), minlength=10)
    assert counts.min() >= 0.15 * len(a.y_val) / 10


def test_npz_and_csv_files(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 12)), rng.integers(0, 3, 200)
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x[:30], y_test=y[:30])
    s = load_dataset(str(tmp_path / "d.npz"))
    assert s.input_shape == (1, 12) and len(s.y_test) == 30 and s.n_classes == 3
    lines = ["a,b,label"] + [f"{r[0]},{r[1]},{'cat' if t else 'dog'}" for r, t in zip(x, y > 0, strict=True)]
    (tmp_path / "d.csv").write_text("\n".join(lines))
    s = load_dataset(str(tmp_path / "d.csv"))
    assert s.input_shape == (1, 2) and s.n_classes == 2


def test_bad_data_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match="^data.dataset"):
        load_dataset("imagenet")
    np.savez(tmp_path / "d.npz", inputs=np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="'x' and 'y'"):
        load_dataset(str(tmp_path / "d.npz"))
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="^data.label_column"):
        load_dataset(str(tmp_path / "d.csv"))
