"""A detection search from the command line on the built-in boxes64: a search that names no
family searches CenterNet-style detectors (heads sized from the task: its classes, the
configured top-K), scored by mAP; the front, the report, ``slimnas runs`` and ``export --best``
speak mAP; the exported file answers with boxes, scores and labels equal to the eager model's;
``compress --run --trial`` prunes a searched detector with its heads whole; another family on
detection (and the detector family elsewhere) is refused in one line, nothing written."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml
from test_search_tasks import keys_of  # every key and string of a JSON document
from typer.testing import CliRunner

import slimnas
from slimnas.cli import build_app, main
from slimnas.data import load_dataset
from slimnas.models._detector import DetectorModel, aligned_detections

DATA = {"dataset": "boxes64", "options": {"n": 40}}
#: a small space: one or two stages, narrow layers
SPACE = {"centernet": {"n_stages": [1, 2], "width": [8], "blocks": 1, "stem": [8], "head": [8], "kernel": [3, 5],
                       "k": 10}}



def reported_and_exported_by_map(run, root, onnx) -> ort.InferenceSession:
    """``slimnas report``, ``runs`` and ``export --best`` on a detection search's ``run`` (in
    this process: the same commands, without a Python start each): the report and the runs
    table speak mAP, and the exported file answers with boxes, scores and labels (its session)."""
    cli = CliRunner()
    r = cli.invoke(build_app(), ["report", str(run)])
    assert r.exit_code == 0, r.output
    assert "mAP@0.5" in (run / "report.md").read_text() and "accuracy" not in (run / "report.md").read_text()
    r = cli.invoke(build_app(), ["runs", "--root", str(root)])
    assert r.exit_code == 0 and "test mAP@0.5" in " ".join(r.output.split()), r.output
    r = cli.invoke(build_app(), ["export", str(run), "--best", "", "--out", str(onnx)])
    assert r.exit_code == 0, r.output
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["boxes", "scores", "labels"]
    return sess

def test_a_detection_search_reports_map_exports_boxes_and_its_trials_compress(tmp_path, cli_here):
    (tmp_path / "det.yaml").write_text(yaml.safe_dump({
        "data": DATA, "seed": 0, "space": SPACE,
        "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam", "batch_size": [16]}}))
    run = tmp_path / "runs" / "det"
    r = cli_here("search", str(tmp_path / "det.yaml"), "--n-trials", "2", "--out", str(run), "--quiet")
    assert r.returncode == 0, r.stderr
    pareto = json.loads((run / "pareto.json").read_text())
    assert pareto["objectives"] == ["map50", "macs"]
    archs = [json.loads(p.read_text())["arch"] for p in sorted((run / "trials").glob("*/arch.json"))]
    assert len(archs) == 2 and {a["family"] for a in archs} == {"centernet"} and all(a["k"] == 10 for a in archs)
    member = pareto["front"][0]
    for key in ("val_map50", "test_map50", "val_map50_95", "test_map50_95"):
        assert 0.0 <= member["metrics"][key] <= 1.0, key
    assert not [k for k in keys_of(pareto) if "accuracy" in k or k == "val_loss"]

    sess = reported_and_exported_by_map(run, tmp_path / "runs", tmp_path / "best.onnx")
    x = load_dataset("boxes64", options=DATA["options"]).x_val.numpy()
    boxes, scores, labels = sess.run(None, {"input": x})
    assert boxes.shape == (len(x), 10, 4) and scores.shape == labels.shape == (len(x), 10) and labels.dtype == np.int64
    model = slimnas.load(run, best="")
    assert isinstance(model, DetectorModel)
    with torch.no_grad():
        eager = model.eval()(torch.from_numpy(x)).numpy()  # packed (N, K, 6), what the search measured
    got = np.concatenate([boxes, scores[..., None], labels[..., None].astype(np.float32)], -1)
    expected, got = aligned_detections(eager, got)
    assert (expected[..., 4] > 0).any() and np.abs(expected - got).max() < 1e-3

    out = tmp_path / "pruned"
    r = CliRunner().invoke(build_app(), ["compress", "--run", str(run), "--trial", str(member["trial"]), "--prune", "0.5",
                                 "--finetune-epochs", "1", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert report["after"]["macs"] < report["before"]["macs"] and 0.0 <= report["after"]["val_map50"] <= 1.0
    layers = report["steps"]["prune"]["layers"]
    assert layers["model.heat.1"] == [4, 4] and layers["model.sides.1"] == [4, 4]  # the task's classes, box sides


@pytest.mark.parametrize("space, dataset, expected", [
    ({"family": ["cnn", "centernet"]}, "boxes64", "space.family: expected centernet for the detection task"),
    ({"family": "centernet"}, "digits", "space.family: expected a family for the classification task (centernet is "
                                        "made for the detection task)")])
def test_another_family_on_detection_and_the_detector_family_elsewhere_are_refused(tmp_path, space, dataset, expected):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"data": {"dataset": dataset, "options": {"n": 30}
                                                              if dataset == "boxes64" else {}}, "space": space}))
    err = io.StringIO()  # the command line's own entry point, in this process
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e:
        main(["search", str(tmp_path / "c.yaml"), "--n-trials", "1", "--out", str(tmp_path / "run")])
    line = err.getvalue().strip()
    assert e.value.code == 2 and "\n" not in line and line.startswith(f"error: {expected}"), line
    assert not (tmp_path / "run").exists()


def test_a_search_on_the_users_detection_loaders_takes_the_task_and_refuses_without_it(tmp_path):
    """Datasets of (image, {'boxes', 'labels'}) search the detector family with task='detection'
    (it was a TypeError); without the task, one line says to name it (it was an IndexError)."""
    from slimnas.data._boxes import make_boxes
    from slimnas.errors import ConfigError

    class Boxes(torch.utils.data.Dataset):
        def __init__(self, seed):
            self.x, self.y = make_boxes(12, seed=seed)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return torch.from_numpy(self.x[i]), {k: torch.from_numpy(v) for k, v in self.y[i].items()}

    (tmp_path / "space.yaml").write_text(yaml.safe_dump({"space": {"centernet": {"n_stages": 1, "width": 8,
                                                                                  "stem": 8, "head": 8, "kernel": 3}}}))
    res = slimnas.search(tmp_path / "space.yaml", train=Boxes(1), val=Boxes(2), task="detection", n_trials=1,
                         epochs=1, out=str(tmp_path / "run"))
    assert res.front[0].candidate["arch"]["family"] == "centernet" and "test_map50" in res.front[0].metrics
    with pytest.raises(ConfigError, match=r"^task: expected --task detection .* got 'no task, for detection targets'$"):
        slimnas.search(tmp_path / "space.yaml", train=Boxes(1), val=Boxes(2), n_trials=1, epochs=1,
                       out=str(tmp_path / "other"))
    assert not (tmp_path / "other").exists()
