"""Hugging Face models beyond BERT, built from configs: attention is recognised by its
structure (three projections and a head count), whatever the family calls its layers, so
whole heads and MLP neurons are pruned, the embedding width is kept, the modules' own head
counts follow, and the pruned model saves, reloads and exports computing what the original
does with the removed channels zeroed."""

from __future__ import annotations

import pytest

transformers = pytest.importorskip("transformers")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from hf_models import IMAGE_SHAPE, TEXT_SHAPE, VOCAB, bert, distilbert, gpt2, vit  # noqa: E402
from torch import nn  # noqa: E402

from slimnas.compress import StructuredPruner, list_prunable_layers  # noqa: E402
from slimnas.export import export_onnx, predict  # noqa: E402
from slimnas.export._structure import load_compressed, save_compressed  # noqa: E402
from slimnas.measure import count_macs, count_params  # noqa: E402
from slimnas.models._heads import HEAD_COUNTS, attention_blocks, head_attributes  # noqa: E402

#: family -> (builder, input shape, the attention modules' head count attribute)
FAMILIES = {
    "bert": (bert, TEXT_SHAPE, "num_attention_heads"),
    "distilbert": (distilbert, TEXT_SHAPE, "n_heads"),
    "vit": (vit, IMAGE_SHAPE, "num_attention_heads"),
    "gpt2": (gpt2, TEXT_SHAPE, "num_heads"),
}


def _inputs(shape) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if shape == TEXT_SHAPE:
        return torch.randint(0, VOCAB, (6, *shape), generator=g).float()
    return torch.randn(6, *shape, generator=g)


def _check_heads(model: nn.Module, count: str) -> None:
    """Both attention modules state 2 heads of 8 (16 wide) in every head count and width
    attribute they hold (which ones varies with the transformers version: ViT's
    ``all_head_size`` is gone in 5, DistilBERT reshapes by ``dim`` in 4)."""
    found = [head_attributes(b.module) for b in attention_blocks(model)]
    assert len(found) == 2 and all(attrs[count] == 2 for attrs in found), found
    for attrs in found:
        assert all(v == (2 if k in HEAD_COUNTS else 16) for k, v in attrs.items()), attrs


@pytest.mark.parametrize("family", list(FAMILIES))
def test_heads_pruned_saved_reloaded_and_exported_equal_to_masked_reference(family, tmp_path):
    build, shape, count = FAMILIES[family]
    original = build()
    p = StructuredPruner(ratio=0.5).fit(original, input_shape=shape)
    pruned = p.model_
    _check_heads(pruned, count)  # the modules state the heads they have left
    assert list(p.report_["heads"].values()) == [2, 2]
    for norm in (m for m in pruned.modules() if isinstance(m, nn.LayerNorm)):
        assert norm.normalized_shape == (32,)  # the embedding width is kept
    mlp = [widths for widths in p.layers_.values() if widths[0] in (64, 128)]  # GPT-2's MLP is 4 x 32 wide
    assert mlp == [[mlp[0][0], mlp[0][0] // 2]] * 2  # MLP neurons halved in both blocks
    assert count_params(pruned) < count_params(original)
    assert count_macs(pruned, shape) < 0.7 * count_macs(original, shape)

    x = _inputs(shape)
    reference = p.reference_model(original)
    with torch.no_grad():
        got, expected, unmasked = pruned(x), reference(x), original(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got, unmasked, atol=1e-4)

    save_compressed(pruned, tmp_path)
    again = load_compressed(build(), tmp_path)  # a fresh original, reshaped by structure.json
    _check_heads(again, count)
    with torch.no_grad():
        torch.testing.assert_close(again(x), expected, atol=1e-5, rtol=1e-4)
    path = export_onnx(again, tmp_path / "model.onnx", shape)  # checked against eager inside
    torch.testing.assert_close(torch.from_numpy(predict(path, x)), expected, atol=1e-4, rtol=1e-4)


class LanguageModelFeatures(nn.Module):
    """A classifier on a GPT-2 language model's mean token scores: its output layer, tied to
    the token embedding, is not the model's last layer."""

    def __init__(self) -> None:
        super().__init__()
        self.lm = gpt2().model
        self.classifier = nn.Linear(VOCAB, 10)

    def forward(self, x):
        return self.classifier(self.lm(input_ids=x.flatten(1).round().clamp(0, VOCAB - 1).long()).logits.mean(1))


def test_an_output_layer_tied_to_the_token_embedding_is_left_whole():
    original = LanguageModelFeatures().eval()
    p = StructuredPruner(ratio=0.5).fit(original, input_shape=TEXT_SHAPE)
    lm = p.model_.lm
    assert lm.lm_head.weight is lm.transformer.wte.weight and lm.lm_head.out_features == VOCAB
    assert p.left_alone_["lm.lm_head"] == "shares its weights with an embedding table (tied weights)"
    assert [b.heads for b in attention_blocks(p.model_)] == [2, 2]
    x = _inputs(TEXT_SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(p.model_(x), p.reference_model(original)(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", ["distilbert", "vit"])
def test_per_layer_ratios_prune_each_attention_by_its_own_heads(family):
    """What ``--auto`` does: a ratio per prunable layer, one entry per attention module."""
    build, shape, _ = FAMILIES[family]
    original = build()
    names = [layer.name for layer in list_prunable_layers(original, shape)]
    attention = [n for n in names if n.split(".")[-1] in ("q_lin", "q_proj", "query")]
    assert len(attention) == 2 and not any(n.split(".")[-1] in ("k_lin", "v_lin", "k_proj", "v_proj")
                                           for n in names)
    ratios = {attention[0]: 0.5, attention[1]: 0.25, names[-1]: 0.5}
    p = StructuredPruner(ratio=0.0, layer_ratios=ratios).fit(original, input_shape=shape)
    assert [b.heads for b in attention_blocks(p.model_)] == [2, 3]
    x = _inputs(shape)
    with torch.no_grad():
        torch.testing.assert_close(p.model_(x), p.reference_model(original)(x), atol=1e-5, rtol=1e-4)


def test_compress_command_prunes_gpt2_and_load_and_export_give_the_masked_reference(tmp_path):
    """``slimnas compress --prune 0.5`` on GPT-2 (fused Conv1D projections, a key/value cache),
    then ``slimnas.load`` and ``slimnas export``: heads stated, outputs of the masked original."""
    import numpy as np
    from typer.testing import CliRunner

    import slimnas
    from slimnas.cli import build_app

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tokens.npz", x=rng.integers(0, VOCAB, (60, *TEXT_SHAPE)).astype(np.float32),
             y=np.arange(60) % 10)
    torch.save(gpt2().state_dict(), tmp_path / "gpt2.pt")
    out = tmp_path / "out"
    result = CliRunner().invoke(build_app(), [
        "compress", "--model", f"{Path(__file__).with_name('hf_models.py')}:gpt2", "--weights",
        str(tmp_path / "gpt2.pt"), "--dataset", str(tmp_path / "tokens.npz"), "--prune", "0.5", "--epochs", "0",
        "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    loaded = slimnas.load(out)
    _check_heads(loaded, "num_heads")
    x = _inputs(TEXT_SHAPE)
    reference = StructuredPruner(ratio=0.5).fit(gpt2(), input_shape=TEXT_SHAPE).reference_model(gpt2())
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(loaded(x), expected, atol=1e-5, rtol=1e-4)
    result = CliRunner().invoke(build_app(), ["export", str(out), "--out", str(tmp_path / "gpt2.onnx")])
    assert result.exit_code == 0, result.output
    torch.testing.assert_close(torch.from_numpy(predict(tmp_path / "gpt2.onnx", x)), expected, atol=1e-4, rtol=1e-4)


def test_a_damaged_head_record_in_structure_json_is_refused_in_one_line(tmp_path):
    from slimnas.errors import SlimnasError

    p = StructuredPruner(ratio=0.5).fit(distilbert(), input_shape=TEXT_SHAPE)
    save_compressed(p.model_, tmp_path)
    path = tmp_path / "structure.json"
    saved = json.loads(path.read_text())
    name = next(iter(saved["heads"]))
    for record in ({name: {"n_heads": "2"}}, {name: {"forward": 2}}, {"model.nowhere": {"n_heads": 2}}):
        path.write_text(json.dumps({**saved, "heads": record}))
        with pytest.raises(SlimnasError, match="structure.json") as e:
            load_compressed(distilbert(), tmp_path)
        assert "\n" not in str(e.value)


def test_auto_searches_pruning_and_precision_over_the_layers_pruning_names():
    """``--auto`` on GPT-2: one pruning gene per attention and MLP (not per projection, not the
    embedding-width layers) and a precision gene for every layer, its Conv1D layers included."""
    import numpy as np

    from slimnas.config import MeasureSettings
    from slimnas.data._base import make_splits
    from slimnas.study._auto import AutoObjective, AutoSettings

    rng = np.random.default_rng(0)
    data = make_splits("tokens", rng.integers(0, VOCAB, (40, *TEXT_SHAPE)).astype(np.float32), np.arange(40) % 10,
                       None, None, val_fraction=0.25, test_fraction=0.2, seed=0, standardize=False)
    objective = AutoObjective(gpt2(), data, AutoSettings(budget=["macs<=60%"]), (), "none", measure=MeasureSettings())
    blocks = [f"model.transformer.h.{i}" for i in (0, 1)]
    assert objective.prunable == [n for b in blocks for n in (f"{b}.attn.c_attn.query", f"{b}.mlp.c_fc")]
    assert objective.layers == [*(f"{b}.{n}" for b in blocks for n in (
        "attn.c_attn.query", "attn.c_attn.key", "attn.c_attn.value", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")),
        "model.lm_head"]
