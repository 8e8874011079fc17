"""Models with several inputs, keyword inputs (integer ids) and dict / ``ModelOutput`` outputs,
without a wrapper: a raw Hugging Face BERT pruned (the masked original's outputs) and exported
with its input names (ONNX Runtime equal to eager); a two-input model answering with a dict
pruned, distilled and calibrated to int8; example inputs the model does not take refused in
one line."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from slimnas.compress import (
    DistillationLoss,
    Retrain,
    StructuredPruner,
    list_prunable_layers,
    quantize_model,
)
from slimnas.errors import ConfigError
from slimnas.export import export_onnx
from slimnas.export._onnx import onnx_feed
from slimnas.export._session import ort_session
from slimnas.measure import count_macs
from slimnas.models._io import ExampleInputs, flatten_outputs, main_output

VOCAB, LENGTH = 50, 8


class TwoInputs(nn.Module):
    """Token ids and a padding mask in, a dict out: class scores and their probabilities."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 16)
        self.fc1, self.fc2, self.head = nn.Linear(16, 32), nn.Linear(32, 24), nn.Linear(24, 4)

    def forward(self, input_ids, attention_mask):
        h = F.relu(self.fc2(F.relu(self.fc1(self.embed(input_ids)))))
        mask = attention_mask.unsqueeze(-1).float()
        logits = self.head((h * mask).sum(1) / mask.sum(1).clamp_min(1))
        return {"logits": logits, "probs": logits.softmax(-1)}


def _ids(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n, LENGTH), generator=g)
    mask = torch.ones(n, LENGTH, dtype=torch.long)
    mask[::2, LENGTH // 2 :] = 0  # every other sequence padded
    return ids, mask


def test_flatten_and_main_output_name_every_structure():
    t = torch.ones(2, 3)
    assert list(flatten_outputs(t)) == ["logits"]
    assert list(flatten_outputs((t, {"a": t, "b": None}))) == ["output_0", "output_1.a"]
    assert main_output({"loss": torch.tensor(1.0), "scores": t}) is t  # the first floating output
    with pytest.raises(ConfigError, match=r"output_key: expected one of the model's outputs \['logits', 'probs'\]"):
        main_output({"logits": t, "probs": t}, "nope")


def test_bert_model_output_pruned_equals_masked_reference_and_exports_with_its_input_names(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                     vocab_size=VOCAB, num_labels=3, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0, max_position_embeddings=16)
    original = transformers.BertForSequenceClassification(config).eval()
    ids, mask = _ids(6)
    example = {"input_ids": ids, "attention_mask": mask}
    p = StructuredPruner(ratio=0.5).fit(original, example_inputs=example)  # no wrapper: a ModelOutput comes back
    assert list(p.report_["heads"].values()) == [1, 1]  # one head of two left in each block
    assert [w for n, w in p.layers_.items() if n.endswith("intermediate.dense")] == [[64, 32]] * 2
    with torch.no_grad():
        got, expected, unmasked = (m(**example).logits for m in (p.model_, p.reference_model(original), original))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got, unmasked, atol=1e-4)

    # the layers per-layer ratios name, and MACs, are read on the example inputs too
    layers = list_prunable_layers(original, ExampleInputs.of(example))
    assert [lay.name for lay in layers] == [f"bert.encoder.layer.{i}.{n}" for i in (0, 1)
                                            for n in ("attention.self.query", "intermediate.dense")] + ["bert.pooler.dense"]
    assert all(lay.macs > 0 for lay in layers)
    assert count_macs(p.model_, ExampleInputs.of(example)) < 0.7 * count_macs(original, ExampleInputs.of(example))

    path = export_onnx(p.model_, tmp_path / "bert.onnx", ExampleInputs.of(example))  # checked in ONNX Runtime inside
    sess = ort_session(path)
    assert [(i.name, i.type) for i in sess.get_inputs()] == [("input_ids", "tensor(int64)"),
                                                             ("attention_mask", "tensor(int64)")]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    other = ExampleInputs.of(dict(zip(("input_ids", "attention_mask"), _ids(3, seed=1), strict=True)))
    with torch.no_grad():
        eager = p.model_(**other.kwargs).logits.numpy()
    np.testing.assert_allclose(sess.run(None, onnx_feed(path, other))[0], eager, atol=1e-4, rtol=1e-4)


def test_two_input_dict_model_pruned_distilled_and_calibrated_to_int8(tmp_path):
    original = TwoInputs().eval()
    ids, mask = _ids(32)
    example = ExampleInputs.of((ids, mask))  # positional inputs
    p = StructuredPruner(ratio=0.5).fit(original, example_inputs=(ids, mask))
    assert p.layers_ == {"fc1": [32, 16], "fc2": [24, 12], "head": [4, 4]}
    with torch.no_grad():
        got, want = p.model_(ids, mask), p.reference_model(original)(ids, mask)
    assert set(got) == {"logits", "probs"}
    for key in got:
        torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=1e-4)

    # distillation reads the logits of both dicts; the teacher is called with the student's inputs
    y = torch.arange(32) % 4
    loss = DistillationLoss(original, temperature=2.0, alpha=0.5)
    student = p.model_.train()
    value = loss(student(ids, mask), y, (ids, mask))
    with torch.no_grad():
        soft = F.kl_div(F.log_softmax(got["logits"] / 2, 1), F.log_softmax(original(ids, mask)["logits"] / 2, 1),
                        reduction="batchmean", log_target=True)
    torch.testing.assert_close(value, 0.5 * 4 * soft + 0.5 * F.cross_entropy(got["logits"], y))
    value.backward()
    assert student.fc1.weight.grad is not None and student.fc1.weight.grad.abs().sum() > 0
    by_key = DistillationLoss(original, output_key="probs")(student(ids, mask), y, {"input_ids": ids,
                                                                                    "attention_mask": mask})
    assert torch.isfinite(by_key) and not torch.isclose(by_key, value)
    with pytest.raises(ConfigError, match="distill.output_key: expected one of the model's outputs"):
        DistillationLoss(original, output_key="scores")(student(ids, mask), y, (ids, mask))
    assert Retrain(distill=True, output_key="probs").loss_fn(original).output_key == "probs"
    assert "output_key" not in Retrain().to_dict()  # reports as before unless one is chosen

    # static int8, calibrated on both inputs; the file names them and both outputs
    blob = quantize_model(p.model_.eval(), example, mode="int8")
    proto = onnx.load_from_string(blob)
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    sess = ort_session(blob)
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask"]
    assert [o.name for o in sess.get_outputs()] == ["logits", "probs"]
    logits, probs = sess.run(None, onnx_feed(blob, example))
    with torch.no_grad():
        eager = p.model_(ids, mask)
    assert np.abs(logits - eager["logits"].numpy()).max() < 0.05 * eager["logits"].abs().max().item()
    assert (logits.argmax(1) == eager["logits"].argmax(1).numpy()).mean() >= 0.9
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-3)

    # the whole-file int8 conversion (format timing) feeds both inputs too: given, or stand-ins
    from slimnas.export._int8 import quantize_onnx
    from slimnas.export._onnx import export_proto

    fp32 = export_proto(p.model_, example)
    for calibration in (onnx_feed(blob, example), None):
        converted = ort_session(quantize_onnx(fp32, fmt="qdq", calibration=calibration))
        assert converted.run(None, onnx_feed(blob, example))[0].shape == (32, 4)


@pytest.mark.parametrize("given", [{"input_idz": torch.zeros(2, LENGTH, dtype=torch.long)},
                                   torch.zeros(2, LENGTH, dtype=torch.long)])
def test_example_inputs_the_model_does_not_take_are_one_config_error_line(given):
    with pytest.raises(ConfigError) as e:
        StructuredPruner(ratio=0.5).fit(TwoInputs(), example_inputs=given)
    assert "\n" not in str(e.value)
    assert str(e.value).startswith("example_inputs: expected inputs TwoInputs.forward takes "
                                   "(input_ids, attention_mask)")
    for bad, got in (("ids", "'str'"), ({"labels": torch.zeros(2)}, "'an empty dict'")):
        with pytest.raises(ConfigError, match=f"example_inputs: expected a tensor, a tuple of tensors.*got {got}"):
            StructuredPruner(ratio=0.5).fit(TwoInputs(), example_inputs=ExampleInputs.from_batch(bad) if isinstance(
                bad, dict) else bad)


def _token_bert_and_data():
    transformers = pytest.importorskip("transformers")
    from slimnas.data._base import make_splits

    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                     vocab_size=VOCAB, num_labels=3, max_position_embeddings=16)
    rng = np.random.default_rng(0)
    data = make_splits("tokens", rng.integers(0, VOCAB, (40, LENGTH)).astype(np.float32), np.arange(40) % 3, None,
                       None, val_fraction=0.25, test_fraction=0.2, seed=0, standardize=False)
    return transformers.BertForSequenceClassification(config).eval(), data


def test_library_compress_takes_a_raw_hugging_face_token_classifier():
    """``slimnas.compress.compress`` on ``BertForSequenceClassification`` itself and token-id data,
    as ``--model`` takes it: halved MLP and heads, the file checked against eager."""
    from slimnas.compress import CompressionPolicy, compress

    bert, data = _token_bert_and_data()
    res = compress(bert, data, CompressionPolicy.of(prune={"ratio": 0.5}), epochs=0, latency_repeats=2)
    assert type(res.model.model) is type(bert)
    assert res.model.model.bert.encoder.layer[0].intermediate.dense.out_features == 32
    assert res.after["macs"] < 0.7 * res.before["macs"]
    assert res.checks["onnx_max_abs_diff"] < 1e-4 and res.checks["onnx_top1_agreement"] == 1.0


def test_library_auto_compress_takes_a_raw_hugging_face_token_classifier():
    import slimnas

    bert, data = _token_bert_and_data()
    res = slimnas.auto_compress(bert, data, budget=["macs<=80%"], n_trials=1, finetune_epochs=0, final_epochs=0,
                                refine_epochs=0, hardware_aware=False, precisions=("fp32",), importances=("l1",))
    assert type(res.artifact.model.model) is type(bert)
    assert res.feasible and res.after["macs"] <= 0.8 * res.before["macs"]


class FeaturesOut(TwoInputs):
    """Also answers with the pooled features: ``fc2``'s width is an output's."""

    def forward(self, input_ids, attention_mask):
        h = F.relu(self.fc2(F.relu(self.fc1(self.embed(input_ids)))))
        return {"logits": self.head(h.mean(1)), "features": h.mean(1)}


def test_pruning_that_would_change_an_output_shape_is_refused_naming_it():
    from slimnas.errors import SlimnasError

    with pytest.raises(SlimnasError, match=r"changed the model's output 'features' from \(6, 24\) to \(6, 12\)"):
        StructuredPruner(ratio=0.5).fit(FeaturesOut(), example_inputs=_ids(6))
    p = StructuredPruner(ratio=0.5, ignored=["fc2"]).fit(FeaturesOut(), example_inputs=_ids(6))
    assert p.layers_["fc1"] == [32, 16] and p.layers_["fc2"] == [24, 24]


def test_example_inputs_inferred_from_a_data_loader_batch():
    """A ``DataLoader`` stands for its first batch: a dict batch less its ``labels`` (a Hugging Face
    collator's), or positional tensors the model takes."""
    from torch.utils.data import DataLoader, TensorDataset

    ids, mask = _ids(8)
    rows = [{"input_ids": i, "attention_mask": m, "labels": torch.tensor(0)} for i, m in zip(ids, mask, strict=True)]
    for loader in (DataLoader(rows, batch_size=4), DataLoader(TensorDataset(ids, mask), batch_size=4)):
        p = StructuredPruner(ratio=0.5).fit(TwoInputs(), example_inputs=loader)
        assert p.layers_["fc1"] == [32, 16]
    with pytest.raises(ConfigError, match=r"forward takes \(input_ids, attention_mask\)"):
        StructuredPruner(ratio=0.5).fit(TwoInputs(), example_inputs=DataLoader(TensorDataset(ids, mask, ids[:, 0]),
                                                                                batch_size=4))


def test_a_pipeline_passes_the_example_inputs_to_every_step():
    """Prune, cluster, then int4 weights into a file that takes both inputs by name."""
    from slimnas.compress import Pipeline, WeightClusterer, WeightOnlyQuantizer

    ids, mask = _ids(8)
    pipe = Pipeline([("prune", StructuredPruner(ratio=0.5)), ("cluster", WeightClusterer(n_clusters=8)),
                     ("int4", WeightOnlyQuantizer(bits=4, group_size=16))])
    pipe.fit(TwoInputs().eval(), example_inputs={"input_ids": ids, "attention_mask": mask})
    assert pipe.named_steps["prune"].layers_["fc1"] == [32, 16]
    sess = ort_session(pipe.onnx_)
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask"]
    with torch.no_grad():
        eager = pipe.model_(ids, mask)["logits"].numpy()
    logits = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    np.testing.assert_allclose(logits, eager, atol=1e-4, rtol=1e-3)


def test_a_raw_gpt2_language_model_with_its_key_value_cache_pruned_and_exported(tmp_path):
    """GPT-2 answers with a ``ModelOutput`` holding a key/value cache object: the cache is no
    tensor output, the logits are; heads pruned, the tied output layer whole, the file equal to eager."""
    pytest.importorskip("transformers")
    from hf_models import VOCAB as GPT_VOCAB
    from hf_models import gpt2

    original = gpt2().model  # GPT2LMHeadModel itself
    ids = torch.randint(0, GPT_VOCAB, (3, 10), generator=torch.Generator().manual_seed(0))
    example = ExampleInputs.of({"input_ids": ids})
    with torch.no_grad():
        assert list(flatten_outputs(original(input_ids=ids))) == ["logits"]
    p = StructuredPruner(ratio=0.5).fit(original, example_inputs=example)
    assert list(p.report_["heads"].values()) == [2, 2] and p.model_.lm_head.out_features == GPT_VOCAB
    with torch.no_grad():
        got, want, unmasked = (m(input_ids=ids).logits for m in (p.model_, p.reference_model(original), original))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got, unmasked, atol=1e-4)
    sess = ort_session(export_onnx(p.model_, tmp_path / "gpt2.onnx", example))
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    np.testing.assert_allclose(sess.run(None, {"input_ids": ids.numpy()})[0], got.numpy(), atol=1e-4, rtol=1e-4)


class DictOut(nn.Module):
    """The data's one float tensor in, a dict out (scores and the features behind them)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body, self.head = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU()), nn.Linear(16, 3)

    def forward(self, x):
        features = self.body(x.flatten(1))
        return {"features": features.detach(), "logits": self.head(features)}


def test_library_compress_of_a_dict_output_model_distils_and_calibrates_int8_on_its_logits():
    from slimnas.compress import CompressionPolicy, compress
    from slimnas.data._base import make_splits
    from slimnas.models._hf import MainOutputModel

    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 12)).astype(np.float32)
    data = make_splits("dict", x, (x[:, 0] > 0).astype(int) + (x[:, 1] > 0), None, None, val_fraction=0.25,
                       test_fraction=0.2, seed=0, standardize=False)
    policy = CompressionPolicy.of(prune={"ratio": 0.25}, quantize={"mode": "int8"}, distill=True)
    res = compress(DictOut(), data, policy, epochs=1, latency_repeats=2)
    assert isinstance(res.model, MainOutputModel) and res.model.model.body[0].out_features == 24
    assert res.steps["prune"]["epochs_run"] == 1 and res.policy.distill  # fine-tuned, distilling its logits
    assert res.steps["quantize"]["mode"] == "int8"
    assert res.checks["onnx_top1_agreement"] >= 0.9 and res.after["macs"] < res.before["macs"]
