"""Data read from disk per batch: a set larger than the process may hold trains, and training on
it gives what training on the same data in memory gives."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from slimnas.data import DiskArray, RowFile, load_dataset
from slimnas.errors import ConfigError
from slimnas.spaces import TrainSpec
from slimnas.training import evaluate, fit


def images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = rng.normal(size=(n, 3, 8, 8)).astype(np.float32) * np.array([1, 3, 9], np.float32)[None, :, None, None]
    x[:, 0, :4] += y[:, None, None] * 0.8
    return x, y


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(256, 4))


def test_rows_are_read_from_npy_files_and_uncompressed_npz_members(tmp_path):
    x, y = images(50)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    np.save(tmp_path / "x.npy", x)
    rows = np.array([7, 3, 4, 5, 49, 3])
    for source in (RowFile.of_npz(tmp_path / "d.npz", "x"), RowFile.of_npy(tmp_path / "x.npy")):
        assert source.shape == x.shape and np.array_equal(source.read(rows), x[rows])
    np.savez_compressed(tmp_path / "z.npz", x=x, y=y)
    with pytest.raises(ConfigError, match="^data.stream: expected an uncompressed .npz"):
        load_dataset(str(tmp_path / "z.npz"), stream=True)
    with zipfile.ZipFile(tmp_path / "z.npz") as z:
        assert z.getinfo("x.npy").compress_type == zipfile.ZIP_DEFLATED  # so this was the refusal's reason


def test_streamed_splits_and_training_match_the_same_data_in_memory(tmp_path):
    x, y = images(400)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    mem = load_dataset(str(tmp_path / "d.npz"))
    disk = load_dataset(str(tmp_path / "d.npz"), stream=True, num_workers=0)
    assert isinstance(disk.x_train, DiskArray) and disk.streamed and not mem.streamed
    assert disk.input_shape == mem.input_shape == (3, 8, 8) and torch.equal(disk.y_val, mem.y_val)
    assert np.allclose(disk.preprocessing.mean, mem.preprocessing.mean, atol=1e-5)
    assert torch.allclose(disk.x_test[:], mem.x_test, atol=1e-5)
    spec = TrainSpec(epochs=2, batch_size=64, lr=0.01)
    a, b, c = small_net(), small_net(), small_net()
    fit(a, mem.x_train, mem.y_train, spec, seed=3)
    fit(b, disk.x_train, disk.y_train, spec, seed=3)
    workers = load_dataset(str(tmp_path / "d.npz"), stream=True, num_workers=2)
    fit(c, workers.x_train, workers.y_train, spec, seed=3)  # worker processes read the same batches
    for other in (b, c):
        for p, q in zip(a.state_dict().values(), other.state_dict().values(), strict=True):
            assert torch.allclose(p.float(), q.float(), atol=1e-4)
    assert evaluate(b, disk.x_val, disk.y_val) == pytest.approx(evaluate(a, mem.x_val, mem.y_val), abs=1e-4)
    # a folder of .npy files streams the same way, and augmentation applies to streamed batches
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "folder").mkdir()
    np.save(tmp_path / "folder" / "x.npy", x)
    np.save(tmp_path / "folder" / "y.npy", y)
    folder = load_dataset(str(tmp_path / "folder"), stream=True, num_workers=0, augment={"crop": 2, "flip": True})
    assert folder.streamed and torch.allclose(folder.x_val[:], mem.x_val, atol=1e-5)
    d = small_net()
    fit(d, folder.x_train, folder.y_train, spec, seed=3, augment=folder.augment)
    assert not torch.allclose(d[0].weight, a[0].weight)


LIMITED = textwrap.dedent("""
    import resource, sys
    import numpy as np, torch
    from torch import nn
    torch.set_num_threads(1)
    from slimnas.data import load_dataset
    from slimnas.spaces import TrainSpec
    from slimnas.training import fit, evaluate

    net = nn.Sequential(nn.AvgPool2d(16), nn.Flatten(), nn.Linear(48, 4))
    fit(net, torch.randn(64, 3, 64, 64), torch.randint(0, 4, (64,)), TrainSpec(epochs=1, batch_size=32))  # warm up
    vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize")) * 1024
    limit = vm + int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    splits = load_dataset(sys.argv[1], stream=True, num_workers=0)
    fit(net, splits.x_train, splits.y_train, TrainSpec(epochs=2, batch_size=128, lr=0.05), seed=0)
    print("trained", splits.streamed, evaluate(net, splits.x_val, splits.y_val)["accuracy"])
    try:  # the control: the same data read into memory does not fit under this limit
        load_dataset(sys.argv[1], stream=False)
    except MemoryError:
        print("in memory: MemoryError")
""")


def test_a_set_larger_than_the_memory_limit_trains_from_disk(tmp_path):
    """The process may grow by 48 MB after start-up; the set is 118 MB. Read from disk it trains;
    read into memory, in the same process, it cannot load."""
    n, headroom = 2400, 48 << 20
    rng = np.random.default_rng(0)
    y = np.arange(n) % 4
    x = np.repeat(np.repeat(rng.standard_normal((n, 3, 8, 8), dtype=np.float32), 8, axis=2), 8, axis=3)
    x[:, 0, :32] += y[:, None, None]
    np.savez(tmp_path / "big.npz", x=x, y=y)
    assert x.nbytes > 2 * headroom
    del x
    (tmp_path / "limited.py").write_text(LIMITED)
    out = subprocess.run([sys.executable, str(tmp_path / "limited.py"), str(tmp_path / "big.npz"), str(headroom)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("trained True") and float(lines[0].split()[-1]) > 0.5, out.stdout
    assert lines[1] == "in memory: MemoryError", out.stdout
