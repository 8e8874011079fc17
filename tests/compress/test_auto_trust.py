"""compress and --auto tell the truth: the same prunable layers on both paths, latency changes
stated and slower results flagged, options that do nothing refused (issue 46)."""

from __future__ import annotations

import torch
from torch import nn

from slimnas.compress import StructuredPruner, list_prunable_layers
from slimnas.data import DataSplits


class BiGRU(nn.Module):
    """The issue's bidirectional one-layer GRU classifier, input (N, 40, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(1, 12, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


def gru_data() -> DataSplits:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 40, 1, generator=g), torch.randint(0, 10, (96,), generator=g)
    return DataSplits("gru", x[:64], y[:64], x[64:80], y[64:80], x[80:], y[80:], 10)


def test_per_layer_ratios_prune_every_layer_the_uniform_ratio_prunes():
    """One list of prunable layers, and each of them prunes by its own ratio as by the model's:
    --auto (per-layer ratios) reaches what --prune (one ratio) reaches."""
    torch.manual_seed(0)
    model = BiGRU().eval()
    names = [lay.name for lay in list_prunable_layers(model, (40, 1))]
    assert names == ["rnn"]
    uniform = StructuredPruner(ratio=0.5).fit(model, input_shape=(40, 1))
    per_layer = StructuredPruner(ratio=0.0, layer_ratios=dict.fromkeys(names, 0.5)).fit(model, input_shape=(40, 1))
    assert uniform.layers_ == per_layer.layers_ == {"rnn": [12, 6], "fc": [10, 10]}
    assert sum(p.numel() for p in per_layer.model_.parameters()) == 454


def test_auto_prunes_a_bidirectional_gru_under_a_mac_budget():
    from slimnas.study import auto_compress

    torch.manual_seed(0)
    res = auto_compress(BiGRU().eval(), gru_data(), budget=["macs<=60%"], n_trials=1, finetune_epochs=0,
                        final_epochs=0, refine_epochs=0, latency_repeats=2, early_stopping="none")
    assert res.after["macs"] <= 0.6 * res.before["macs"] and res.after["params"] < res.before["params"]
    assert res.feasible
