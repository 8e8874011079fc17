"""Pipeline, distillation loss, and state-dict export that rebuilds the compressed structure."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from compress_models import MODELS, SHAPE

from slimnas.compress import (
    DistillationLoss,
    LowRankFactorizer,
    OnnxQuantizer,
    Pipeline,
    Retrain,
    StructuredPruner,
)
from slimnas.compress._distill import FineTuner
from slimnas.errors import ConfigError, SlimnasError
from slimnas.export._structure import load_compressed, save_compressed
from slimnas.spaces import TrainSpec


def test_distillation_loss_reduces_to_its_parts():
    teacher = torch.nn.Linear(6, 4)
    x, y = torch.randn(32, 6), torch.randint(0, 4, (32,))
    logits = torch.randn(32, 4)
    hard = DistillationLoss(teacher, temperature=3.0, alpha=0.0)(logits, y, x)
    torch.testing.assert_close(hard, F.cross_entropy(logits, y))
    with torch.no_grad():
        same = DistillationLoss(teacher, temperature=3.0, alpha=1.0)(teacher(x), y, x)
    assert abs(float(same)) < 1e-6  # the student already matches the teacher
    soft = DistillationLoss(teacher, temperature=3.0, alpha=1.0)(logits, y, x)
    assert float(soft) > 0.01
    with pytest.raises(ConfigError, match="temperature"):
        DistillationLoss(teacher, temperature=0.0)


def test_distillation_pulls_the_student_towards_the_teacher(data, trained_mlp):
    student = MODELS["mlp"]()

    def gap(model) -> float:  # KL divergence from the teacher's predictions on validation data
        with torch.no_grad():
            t = F.log_softmax(trained_mlp(data.x_val), 1)
            s = F.log_softmax(model.eval()(data.x_val), 1)
        return float(F.kl_div(s, t, reduction="batchmean", log_target=True))

    spec = TrainSpec(lr=1e-2, epochs=1)
    soft = FineTuner(Retrain(epochs=4, train=spec, distill=True, alpha=1.0)).fit(student, data, teacher=trained_mlp)
    hard = FineTuner(Retrain(epochs=4, train=spec, distill=False)).fit(student, data, teacher=trained_mlp)
    assert gap(soft.model_) < gap(student)
    assert gap(soft.model_) < gap(hard.model_)  # matching the teacher beats matching the labels


def test_pipeline_chains_steps_and_exposes_params(data):
    pipe = Pipeline([("prune", StructuredPruner(ratio=0.5)),
                     ("lowrank", LowRankFactorizer(rank_ratio=0.3)),
                     ("quantize", OnnxQuantizer(mode="int8"))])
    assert pipe.get_params()["prune__ratio"] == 0.5
    pipe.set_params(prune__ratio=0.25)
    assert pipe.named_steps["prune"].ratio == 0.25
    with pytest.raises(ConfigError):
        pipe.set_params(nothing__ratio=0.1)
    pipe.fit(MODELS["paper_cnn"](), data)
    assert pipe.model_ is pipe.named_steps["quantize"].model_
    assert pipe.onnx_ is pipe.named_steps["quantize"].onnx_ and pipe.precision_ == "int8"
    assert set(pipe.report_) == {"prune", "lowrank", "quantize"}
    assert pipe.report_["prune"]["layers"]["0"] == [25, 18]


@pytest.mark.parametrize("name", ["residual_cnn", "mlp", "gru", "paper_cnn"])
def test_state_dict_export_rebuilds_the_compressed_model(name, tmp_path):
    original = MODELS[name]()
    steps = [("prune", StructuredPruner(ratio=0.5))]
    if name != "gru":
        steps.append(("lowrank", LowRankFactorizer(rank_ratio=0.5, only_if_smaller=False)))
    compressed = Pipeline(steps).fit(original, input_shape=SHAPE).model_
    save_compressed(compressed, tmp_path / "c")
    rebuilt = load_compressed(MODELS[name](), tmp_path / "c")
    x = torch.randn(8, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), compressed(x))
    assert sum(p.numel() for p in rebuilt.parameters()) < sum(p.numel() for p in original.parameters())


def test_export_into_the_wrong_model_is_one_clear_error(tmp_path):
    save_compressed(StructuredPruner(ratio=0.5).fit(MODELS["paper_cnn"](), input_shape=SHAPE).model_, tmp_path / "c")
    with pytest.raises(SlimnasError):
        load_compressed(MODELS["mlp"](), tmp_path / "c")
