"""The task layer: every registered task passes the conformance check; regression's scaling, the
detection mAP (pycocotools), user tasks from a file and their one-line refusals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from slimnas.errors import ConfigError
from slimnas.measure import list_metrics
from slimnas.tasks import (
    TASKS,
    Regression,
    Task,
    TaskMetric,
    get_task,
    list_tasks,
    load_task,
    register_task,
    task_from_dict,
)
from slimnas.tasks._lm import LanguageModel
from slimnas.testing import check_task
from slimnas.training import evaluate


@pytest.mark.parametrize("name", list_tasks())
def test_every_registered_task_passes_the_conformance_check(name):
    result = check_task(name)
    assert result["refused"] and all("\n" not in v for v in result["refused"].values())


def test_the_built_in_tasks_are_the_ones_the_issue_names():
    assert {"classification", "regression", "multilabel", "tokens", "lm", "detection"} <= set(list_tasks())


def test_classification_scores_as_the_training_loop_always_has():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    task = get_task("classification")
    with torch.no_grad():
        scores = task.score(model(x), y)
    assert evaluate(model, x, y, batch_size=7) == pytest.approx(scores)
    with pytest.raises(ConfigError, match=r"^y: holds non-integer labels such as 0.5 \(a regression target\?\)"):
        task.check_targets(np.array([0, 1, 0.5, 1.0]))


def test_regression_standardises_from_the_training_split_and_exports_in_the_targets_units():
    y_train = np.array([100.0, 200.0, 300.0])
    task = get_task("regression")
    task.fit(task.check_targets(y_train))
    assert task.state() == {"mean": [200.0], "std": [pytest.approx(81.6497, rel=1e-4)]}
    saved = task_from_dict(json.loads(json.dumps(task.to_dict())))
    encoded = saved.encode(task.check_targets(np.array([200.0, 281.6497])))
    assert encoded[:, 0].tolist() == pytest.approx([0.0, 1.0], abs=1e-4)
    assert saved.export_head()(torch.tensor([[0.0], [-1.0]]))[:, 0].tolist() == pytest.approx([200.0, 118.3503], rel=1e-5)
    # scores are in the targets' units: every prediction 10 too high is an MAE of 10, an MSE of 100
    true = task.encode(task.check_targets(np.array([150.0, 250.0, 300.0])))
    scores = task.score(true + 10 / torch.tensor(task.std), true)
    assert scores["mae"] == pytest.approx(10, rel=1e-4) and scores["mse"] == pytest.approx(100, rel=1e-3)
    with pytest.raises(ConfigError, match=r"^y: holds 1 NaN or infinite targets; the regression task takes"):
        task.check_targets(np.array([1.0, np.nan]))


def test_detection_map_is_cocos():
    """One of two boxes found, with the other class all missed: COCO's 101-point interpolation
    gives 51/101 for the found class (precision 1 up to recall 0.5) and 0 for the other."""
    task = get_task("detection")
    target = task.encode(task.check_targets([{"boxes": [[0, 0, 10, 10], [20, 20, 40, 40]], "labels": [0, 0]},
                                             {"boxes": [[5, 5, 25, 25]], "labels": [1]}], input_shape=(3, 64, 64)))
    pred = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([0])},
            {"boxes": torch.tensor([[40.0, 40, 60, 60]]), "scores": torch.tensor([0.8]), "labels": torch.tensor([1])}]
    scores = task.score(pred, target)
    assert scores["map50"] == pytest.approx(51 / 101 / 2, abs=1e-4)
    assert scores["map50_95"] == pytest.approx(51 / 101 / 2, abs=1e-4)
    with pytest.raises(ConfigError, match=r"^y\[0\]: has a box outside the 64x64 image"):
        task.check_targets([{"boxes": [[50, 50, 70, 60]], "labels": [0]}], input_shape=(3, 64, 64))


def test_lm_perplexity_of_a_uniform_guess_is_the_vocabulary_size():
    task = LanguageModel(vocab_size=7)
    y = torch.tensor([[1, 2, 3, -100]])
    assert task.score(torch.zeros(1, 4, 7), y)["perplexity"] == pytest.approx(7.0)


USER_TASK = '''
import torch
from slimnas.tasks import Task, TaskMetric, Regression

class Huber(Regression):
    name = "huber"
    metrics = (TaskMetric({metric!r}, "minimize", "Huber", 0.0, float("inf")),)
    primary = {metric!r}

    def loss(self, output, target):
        return torch.nn.functional.huber_loss(output, target)

    def score(self, output, target):
        return {{{metric!r}: float(self.loss(output, target))}}

def build():
    return Huber()

def nothing():
    return 3
'''


def test_a_user_task_from_a_file_loads_and_passes_the_check(tmp_path):
    path = tmp_path / "mytask.py"
    path.write_text(USER_TASK.format(metric="huber"))
    task = load_task(f"{path}:build", reserved=list_metrics())
    assert task.metric_names() == ["huber"] and check_task(task)["perfect"]["huber"] == 0.0


@pytest.mark.parametrize("metric, taken", [("r2", "the regression task's"), ("macs", "measured by slimnas"),
                                           ("map50", "the detection task's")])
def test_a_user_task_whose_metric_clashes_with_a_built_in_is_one_line(tmp_path, metric, taken):
    path = tmp_path / "mytask.py"
    path.write_text(USER_TASK.format(metric=metric))
    with pytest.raises(ConfigError) as e:
        load_task(f"{path}:build", reserved=list_metrics())
    assert str(e.value) == f"task Huber.metrics: expected metric names of its own ({metric!r} is {taken}: rename it, " \
                           f"e.g. 'my_{metric}'), got {metric!r}"


@pytest.mark.parametrize("spec, message", [
    ("{path}:nothing", "task: expected a callable returning a slimnas.tasks.Task, got '{path}:nothing returned int'"),
    ("{path}:missing", "task: expected a callable named 'missing' in {path}, got '{path}:missing'"),
    ("{tmp}/absent.py:build", "task: expected an existing Python file before ':', got '{tmp}/absent.py'"),
    ("regresion", "task: expected one of " + str(sorted(TASKS.names())) + " or 'path/to/file.py:callable', "
                  "got 'regresion'"),
])
def test_a_user_task_that_cannot_be_loaded_is_one_line(tmp_path, spec, message):
    path = tmp_path / "mytask.py"
    path.write_text(USER_TASK.format(metric="huber"))
    with pytest.raises(ConfigError) as e:
        load_task(spec.format(path=path, tmp=tmp_path))
    assert str(e.value) == message.format(path=path, tmp=tmp_path)


class _Backwards(Regression):
    """R^2 declared as lower-is-better: a perfect prediction would look worse than a random one."""

    metrics = (TaskMetric("fit", "minimize", "R²", -math.inf, 1.0),)
    primary = "fit"

    def score(self, output, target):
        return {"fit": super().score(output, target)["r2"]}


class _Credulous(Regression):
    """Accepts NaN targets."""

    def check_targets(self, y, *, n=None, input_shape=None, field="y"):
        return np.asarray(y, dtype=np.float32).reshape(len(y), -1)


@pytest.mark.parametrize("cls, message", [(_Backwards, r"fit \(minimize\) scores a perfect prediction 1, a random one"),
                                          (_Credulous, "targets with NaN targets were accepted")])
def test_the_check_catches_a_broken_task(cls, message):
    register_task(f"broken_{cls.__name__.lower()}")(cls)
    try:
        with pytest.raises(AssertionError, match=message):
            check_task(f"broken_{cls.__name__.lower()}")
    finally:
        TASKS.unregister(f"broken_{cls.__name__.lower()}")
    assert issubclass(cls, Task)
