"""Detection through ``slimnas compress``: a user's detector (``examples/detector.py``:
batched boxes, scores and labels in eval mode, its losses given targets) on ``boxes64`` through
``--auto`` to half its MACs, the report in mAP, an export with boxes/scores/labels outputs; a
plain prune + int8 whose heads stay whole; the user's own Dataset and a torchvision-style
DataLoader; bad boxes refused in one line, nothing written. (A detection search:
tests/test_detection_search.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from test_search_tasks import keys_of  # every key and string of a JSON document

import slimnas
from slimnas.compress import CompressionPolicy, compress
from slimnas.data import load_dataset
from slimnas.data._boxes import make_boxes
from slimnas.export import predict
from slimnas.models._detector import aligned_detections, box_agreement

PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "detector.py"  # the user's file, as --model reads it


def build():
    """The example's detector, imported as ``--model`` imports a user's file."""
    from slimnas.registry import import_object

    return import_object(f"{PLUGIN}:build", "--model")()


def small_data(folder: Path, n: int = 40) -> Path:
    path = folder / "data.yaml"
    path.write_text(f"data: {{dataset: boxes64, options: {{n: {n}}}}}\n")
    return path


def test_auto_halves_a_detectors_macs_speaks_map_and_exports_boxes_scores_labels(tmp_path, cli_here):
    out = tmp_path / "auto"
    r = cli_here("compress", "--model", f"{PLUGIN}:build", "--data-config", str(small_data(tmp_path)), "--auto",
                "--budget", "macs<=50%", "--n-trials", "2", "--finetune-epochs", "1", "--final-epochs", "1",
                "--train-epochs", "1", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    before, after = report["before"], report["after"]
    assert report["feasible"] and after["macs"] <= 0.5 * before["macs"]
    for key in ("val_map50", "val_map50_95", "test_map50", "test_map50_95"):
        assert 0.0 <= after[key] <= 1.0 and 0.0 <= before[key] <= 1.0, key
    sens = json.loads((out / "sensitivity.json").read_text())
    assert (sens["metric"], sens["direction"]) == ("map50", "maximize")
    assert json.loads((out / "run.json").read_text())["task"]["name"] == "detection"
    for name in ("report.json", "sensitivity.json", "run.json"):
        assert not [k for k in keys_of(json.loads((out / name).read_text())) if "accuracy" in k], name
    assert "mAP@0.5" in r.stdout and "accuracy" not in r.stdout
    assert "no distillation term" in r.stdout + r.stderr  # --auto distils by default: said, not silently dropped

    assert cli_here("report", str(out)).returncode == 0
    assert "mAP@0.5" in (out / "report.md").read_text()

    files = {}
    for fmt in ("onnx-fp32", "onnx-int8"):
        files[fmt] = tmp_path / f"{fmt}.onnx"
        e = cli_here("export", str(out), "--format", fmt, "--out", str(files[fmt]))
        assert e.returncode == 0, e.stderr
        said = " ".join(e.stdout.split())  # the check in words, however the console wrapped it
        assert "top-1" not in said and ("box agreement" in said) == (fmt == "onnx-int8"), said
        sess = ort.InferenceSession(str(files[fmt]), providers=["CPUExecutionProvider"])
        assert [o.name for o in sess.get_outputs()] == ["boxes", "scores", "labels"]
    x = load_dataset("boxes64", options={"n": 40}).x_val.numpy()
    boxes, scores, labels = ort.InferenceSession(str(files["onnx-fp32"])).run(None, {"input": x})
    assert boxes.shape == (len(x), 20, 4) and scores.shape == labels.shape == (len(x), 20) and labels.dtype == np.int64
    with torch.no_grad():
        eager = slimnas.load(out).eval()(torch.from_numpy(x)).numpy()  # packed (N, K, 6), what compress measured
    got = np.concatenate([boxes, scores[..., None], labels[..., None].astype(np.float32)], -1)
    expected, got = aligned_detections(eager, got)
    assert np.abs(expected - got).max() < 1e-3


def test_the_users_loader_prunes_to_int8_with_the_heads_whole_and_distill_falls_back():
    x, y = make_boxes(24, seed=5)

    class Boxes(torch.utils.data.Dataset):  # (image, {'boxes', 'labels'}), any number of boxes per image
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return torch.from_numpy(x[i]), {k: torch.from_numpy(v) for k, v in y[i].items()}

    loader = torch.utils.data.DataLoader(Boxes(), batch_size=8, collate_fn=lambda b: tuple(zip(*b, strict=True)))
    policy = CompressionPolicy.of(prune={"ratio": 0.5}, quantize={"mode": "int8"}, distill=True)
    res = compress(build(), policy, train=loader, val=Boxes(), epochs=1, latency_repeats=3)  # detection: its targets
    assert "val_map50" in res.after and res.after["macs"] < 0.5 * res.before["macs"]
    layers = res.steps["prune"]["layers"]
    assert layers["model.heat.1"] == [4, 4] and layers["model.sides.1"] == [4, 4]  # classes and box sides
    assert all(after < before for name, (before, after) in layers.items() if not name.endswith(".1"))
    assert not [w for w in res.warnings if "left model." in w]  # the heads are outputs, not a failure to prune
    assert any("no distillation term" in w for w in res.warnings)
    packed = predict(res.onnx, torch.from_numpy(x))  # the int8 file, in ONNX Runtime
    assert packed.shape == (24, 20, 6) and np.isin(np.round(packed[..., 5]), [0, 1, 2, 3]).all()
    assert ((packed[..., :4] >= 0) & (packed[..., :4] <= 64)).all()


def test_box_agreement_matches_label_and_overlap_and_aligned_rows_ignore_tie_order():
    e = np.array([[[0, 0, 10, 10, 0.9, 1], [20, 20, 30, 30, 0.8, 2], [5, 5, 9, 9, 0.1, 0]]], np.float32)
    assert box_agreement(e, e[:, ::-1]) == 1.0  # order does not matter
    moved = e.copy()
    moved[0, 0, :4] += 2  # IoU 0.47
    assert box_agreement(e, moved) == 0.5
    relabelled = e.copy()
    relabelled[0, 1, 5] = 3
    assert box_agreement(e, relabelled) == 0.5
    tied = np.array([[[1, 1, 2, 2, 0.5, 0], [3, 3, 4, 4, 0.5, 1], [7, 7, 8, 8, 0.2, 0], [9, 9, 10, 10, 0.2, 1]]],
                    np.float32)
    other = tied[:, [1, 0, 3, 2]].copy()
    other[0, 2:, :4] = 50  # cells of the lowest, shared score: which ones a runtime kept is its choice
    a, b = aligned_detections(tied, other)
    assert np.array_equal(a, b)
    other[0, 0, 0] += 1
    assert not np.array_equal(*aligned_detections(tied, other))


BAD = '''
import torch
from slimnas.data._boxes import make_boxes

class Boxes(torch.utils.data.Dataset):
    def __init__(self, shift):
        self.x, self.y = make_boxes(8, seed=1)
        self.y[0]["boxes"] = self.y[0]["boxes"] + shift
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        return torch.from_numpy(self.x[i]), {k: torch.from_numpy(v) for k, v in self.y[i].items()}

def loaders():
    return {"train": Boxes(70.0), "val": Boxes(0.0)}
'''


def test_boxes_outside_the_image_are_one_line_exit_2_nothing_written(tmp_path, cli_here):
    (tmp_path / "bad.py").write_text(BAD)
    out = tmp_path / "out"
    r = cli_here("compress", "--model", f"{PLUGIN}:build", "--data", f"{tmp_path / 'bad.py'}:loaders", "--prune", "0.5",
                "--out", str(out))
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith("error: train targets[0]: has a box outside the 64x64 image"), line
    assert "'boxes': (n, 4)" in line, line
    assert not out.exists()
