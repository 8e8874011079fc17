"""--auto on a model with attention: its uniform warm start prunes whole heads, the same share of
every attention's heads, with one ratio for the MLP neurons solved to the MAC budget (one ratio
for every layer, rescaled to the budget, removes 3 of 4 heads and never tries uniform's shape);
a model without attention keeps one ratio for every layer."""

from __future__ import annotations

import pytest

from slimnas.compress import CompressionPolicy
from slimnas.compress._allocate import prune_ratios, pruned_macs, uniform_at_macs
from slimnas.compress._prune_layers import attention_heads
from slimnas.data import load_dataset
from slimnas.measure import Budget, count_macs


def decoder():
    from slimnas.models._transformer import TransformerNet, TransformerSpec

    return TransformerNet(TransformerSpec(depth=2, heads=4, dim=16, mlp_ratio=2.0, vocab_size=12, per_token="causal"),
                          (8,), 12).eval()


def heads_removed(ratio: float, heads: int) -> int:
    """What pruning removes for a head ratio: ratio x heads rounded up, one head kept."""
    return min(heads - 1, heads - int(heads * (1 - ratio))) if ratio > 0 else 0


def test_uniform_at_most_a_mac_target_keeps_whole_heads_and_one_mlp_ratio():
    model = decoder()
    full = count_macs(model, (8,))
    step = 2 * 2 * 16 * 8  # one MLP neuron in each of 2 blocks: its fc1 and fc2 MACs over 8 positions
    for share in (0.5, 0.3):
        target = int(share * full)
        u = uniform_at_macs(model, (8,), target)
        assert target - step <= u["macs"] <= target and u["macs"] == pruned_macs(model, u["ratios"], (8,))
        assert set(u["heads_removed"].values()) == {round(u["q"] * 4)}
        assert u["ratios"]["blocks.0.fc1"] == u["ratios"]["blocks.1.fc1"] == pytest.approx(u["q"], abs=1e-4)
    assert uniform_at_macs(model, (8,), full // 100) is None  # out of reach with a head kept in each


def test_autos_uniform_warm_start_on_a_decoder_is_whole_heads_at_the_budget():
    from slimnas.study import auto_compress

    data = load_dataset("pysource", options={"n": 40, "seq_len": 16})
    model = decoder_for(data)
    res = auto_compress(model, data, budget=["macs<=50%"], precisions=("fp32",), n_trials=5, finetune_epochs=0,
                        final_epochs=0, refine_epochs=0, seed=0, latency_repeats=1)
    full = count_macs(model, data.input_shape)
    heads = attention_heads(model)
    shapes = []
    for t in res.study.trials:
        ratios = prune_ratios(CompressionPolicy.from_dict(t.user_attrs["policy"])) if "policy" in t.user_attrs else {}
        removed = {heads_removed(ratios.get(n, 0.0), h) for n, h in heads.items()}
        mlp = [r for n, r in ratios.items() if n not in heads]
        shapes.append((removed, mlp, t.user_attrs.get("metrics", {}).get("macs")))
    # a trial removes 2 of 4 heads in each attention and about 0.59 of the MLP neurons of each block,
    # within the budget (one ratio for every layer, rescaled to it: 3 of 4 heads and 0.44)
    assert any(removed == {2} and len(mlp) == 2 and max(mlp) - min(mlp) < 0.01 and macs <= 0.5 * full
               for removed, mlp, macs in shapes), shapes


def decoder_for(data):
    from slimnas.models._transformer import TransformerNet, TransformerSpec

    vocab = data.n_classes
    return TransformerNet(TransformerSpec(depth=2, heads=4, dim=32, mlp_ratio=4.0, vocab_size=vocab,
                                          per_token="causal"), data.input_shape, vocab).eval()


def test_a_model_without_attention_keeps_one_ratio_for_every_layer_as_its_uniform_start():
    import torch.nn as nn

    from slimnas.study._auto import uniform_start, warm_starts

    cnn = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 3))
    full = count_macs(cnn, (1, 8, 8))
    assert uniform_start(cnn, (1, 8, 8), (Budget.parse("macs<=50%", "--budget").resolve({"macs": full}),)) is None

    class Flat:  # a sensitivity result that tolerates no pruning anywhere
        def max_ratio(self, name, drop):
            return 0.0

    starts = warm_starts(Flat(), ["0", "2"], [], ["fp32"], ["l1"], uniform=None)
    assert starts[-1] == {"prune:0": 0.5, "prune:2": 0.5, "importance": "l1"}


def test_uniform_at_macs_bisects_the_head_counts_and_finds_the_most_uniform(monkeypatch):
    """An 8-head model: ``q`` is solved for about log2(8) + 2 head counts, not all 8, and the
    one kept is the head count whose ``q`` is nearest its share of the heads over every count."""
    from slimnas.compress import _allocate
    from slimnas.models._transformer import TransformerNet, TransformerSpec

    model = TransformerNet(TransformerSpec(depth=1, heads=8, dim=16, mlp_ratio=4.0, vocab_size=12, per_token="causal"),
                           (8,), 12).eval()
    full, real = count_macs(model, (8,)), _allocate.pruned_macs
    target, heads_tried = int(0.5 * full), set()

    def spy(parent, ratios, shape):
        heads_tried.add(round(ratios.get("blocks.0.attn.query", 0.0) * 8 + 0.5))
        return real(parent, ratios, shape)

    with monkeypatch.context() as m:
        m.setattr(_allocate, "pruned_macs", spy)
        u = uniform_at_macs(model, (8,), target)
    assert len(heads_tried) <= 5, heads_tried
    every = {}  # every head count's q at the target, solved alone
    for k in range(8):
        ratios = {"blocks.0.attn.query": (k - 0.5) / 8} if k else {}
        if real(model, {**ratios, "blocks.0.fc1": 0.95}, (8,)) > target:
            continue
        lo, hi = 0.0, 0.95
        for _ in range(14):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if real(model, {**ratios, "blocks.0.fc1": mid}, (8,)) <= target else (mid, hi)
        every[k] = hi if real(model, {**ratios, "blocks.0.fc1": 0.0}, (8,)) > target else 0.0
    most_uniform = min(every, key=lambda k: abs(every[k] - k / 8))
    assert u["heads_removed"] == {"blocks.0.attn.query": most_uniform} and u["macs"] <= target
