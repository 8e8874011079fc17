"""Conformance of a registered pruning importance: it builds a torch-pruning importance, declares
whether it reads loss gradients, and prunes tiny models of every family as it declares (one that
needs no gradients prunes without data; one that does is refused without data and prunes with it)."""

from __future__ import annotations

from slimnas.compress._prune import IMPORTANCES, StructuredPruner, needs_gradients
from slimnas.errors import ConfigError
from slimnas.testing._fixtures import SHAPE, TINY_MODELS, tiny_data


def check_importance(name: str) -> dict:
    """Run every check on the importance registered as ``name``; raises ``AssertionError``
    naming the first that fails. Returns ``{"needs_gradients": ..., "pruned": {model: widths}}``.

    1. Its factory builds a fresh, callable torch-pruning importance each time.
    2. It declares whether it needs gradients (``register_importance(needs_gradients=...)``,
       ``False`` when registered without).
    3. On tiny models of every family it prunes (``ratio=0.5``) given the data where it needs
       gradients, and removes channels from at least one; without data, one that declares no gradient need prunes just the same, and
       one that declares one is refused with :class:`ConfigError`.
    """
    factory = IMPORTANCES.get(name)
    first, second = factory(), factory()
    assert callable(first) and first is not second, f"{name}: the factory must build a new importance each call"
    grads = needs_gradients(name)
    assert isinstance(getattr(factory, "needs_gradients", False), bool), f"{name}: needs_gradients is not a bool"
    data, pruned, removed = tiny_data(), {}, False
    for model_name, build in TINY_MODELS.items():
        step = StructuredPruner(ratio=0.5, importance=name)
        try:
            step.fit(build(), data if grads else None, input_shape=SHAPE)
        except (AttributeError, TypeError) as e:
            if grads:
                raise
            raise AssertionError(f"{name}: failed without loss gradients ({type(e).__name__}: {e}); if it reads "
                                 "them, register it with needs_gradients=True") from None
        pruned[model_name] = {k: v[1] for k, v in step.layers_.items()}
        removed = removed or any(after < before for before, after in step.layers_.values())
    assert removed, f"{name}: pruned no channel of any tiny model"
    if grads:
        try:
            StructuredPruner(ratio=0.5, importance=name).fit(TINY_MODELS["mlp"](), input_shape=SHAPE)
        except ConfigError:
            pass
        else:
            raise AssertionError(f"{name}: declares it needs gradients, yet pruned without data")
    return {"needs_gradients": grads, "pruned": pruned}
