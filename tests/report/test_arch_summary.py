"""The one-line architecture description every front table and report shows, for every family."""

from __future__ import annotations

from slimnas.report import arch_summary
from slimnas.spaces import SearchSpace, arch_to_dict, get_family, list_families


def test_every_family_has_a_one_line_summary():
    """A search over transformers, ResNets or MobileNets ended, after all its trials, in a
    KeyError from the front table (it read every non-CNN, non-MLP architecture as a recurrent one)."""
    space = SearchSpace.from_config({"family": list_families()})
    for family in space.families:
        params = space.params[family]
        arch = arch_to_dict(get_family(family).sample(lambda key, i=None, p=params: p[key].max()))
        text = arch_summary({"arch": arch})
        assert text.split()[0] in (family, "gru", "lstm") and "\n" not in text, text
    assert arch_summary({"arch": {"family": "transformer", "depth": 2, "heads": 4, "dim": 64, "mlp_ratio": 2.0,
                                  "vocab_size": 0, "patch": 1, "dropout": 0.0}}) == \
        "transformer depth 2 heads 4 dim 64 mlp_ratio 2.0 vocab_size 0 patch 1 dropout 0.0"
