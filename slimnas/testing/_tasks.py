"""Conformance of a registered task: its declaration, loss, metrics, head sizing, state and target
checks, on the small examples the task itself provides."""

from __future__ import annotations

import json
import math

import torch

from slimnas.errors import ConfigError
from slimnas.tasks import TASKS, Task, get_task, task_from_dict
from slimnas.tasks._base import validate_task

N = 24


def check_task(name: str | Task, seed: int = 0) -> dict:
    """Run every check on the task registered as ``name`` (or a task object); raises
    ``AssertionError`` naming the first that fails. Returns the scores of a perfect and of a
    random prediction and the bad targets refused.

    1. Its declaration is complete (:func:`slimnas.tasks.validate_task`): metric names, directions,
       ranges, a primary metric.
    2. Its example targets pass its own checks; :meth:`~Task.fit` then :meth:`~Task.state` is
       JSON and rebuilds an equal task (same encoded targets, same scores).
    3. Head sizing is consistent: a perfect output per sample has :meth:`~Task.output_shape`.
    4. The loss of a tiny batch is a finite scalar, differentiable (gradients reach the output);
       so is the distillation term (:meth:`~Task.distill`) towards a perfect teacher, which costs
       no more for the teacher's own output than for a random one.
    5. Every metric lies in its declared range, and a perfect prediction scores strictly better
       than a random one on each, in the metric's direction.
    6. A meter fed the same data in two batches gives the one-batch scores.
    7. Each of its :meth:`~Task.bad_targets` is refused with one line (:class:`ConfigError`).
    """
    task = name if isinstance(name, Task) else get_task(name)
    label = task.name or type(task).__name__
    try:
        validate_task(task)
    except ConfigError as e:
        raise AssertionError(f"{label}: declaration: {e}") from None
    shape = tuple(task.example_input_shape)
    raw = task.example_targets(N, seed)
    y = task.check_targets(raw, n=N, input_shape=shape)
    task.fit(y)
    state = task.state()
    assert json.loads(json.dumps(state)) == state, f"{label}: state {state!r} is not plain JSON"
    again = task_from_dict(json.loads(json.dumps(task.to_dict()))) if task.name in TASKS else type(task)(**state)
    target = task.encode(y)
    head = task.head_size(y)
    assert isinstance(head, int) and head >= 1, f"{label}: head_size {head!r}"
    assert again.head_size(y) == head, f"{label}: the rebuilt task sizes the head {again.head_size(y)}, not {head}"

    perfect = task.perfect_output(target, head)
    out_shape = task.output_shape(head, shape)
    if out_shape is not None:
        assert isinstance(perfect, torch.Tensor) and tuple(perfect.shape) == (N, *out_shape), (
            f"{label}: output_shape says {out_shape} per sample for a head of {head}, a perfect output is "
            f"{tuple(getattr(perfect, 'shape', ()))}")

    train_out = task.training_output(target, head, seed)
    loss = task.loss(train_out, target)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, f"{label}: the loss is not a scalar tensor"
    assert math.isfinite(float(loss.detach())), f"{label}: the loss of a tiny batch is {float(loss.detach())}"
    leaves = [train_out] if isinstance(train_out, torch.Tensor) else [
        v for v in (train_out.values() if isinstance(train_out, dict) else train_out) if isinstance(v, torch.Tensor)]
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    assert any(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads), (
        f"{label}: the loss gives no gradient to the model's output")

    if isinstance(train_out, torch.Tensor) and isinstance(perfect, torch.Tensor):  # what compress distils by
        soft = task.distill(train_out, perfect.detach(), 4.0)
        assert isinstance(soft, torch.Tensor) and soft.dim() == 0 and math.isfinite(float(soft.detach())), (
            f"{label}: the distillation term is not a finite scalar")
        (grad,) = torch.autograd.grad(soft, [train_out])
        assert grad is not None and torch.isfinite(grad).all(), f"{label}: the distillation term gives no gradient"
        assert float(task.distill(perfect, perfect, 4.0)) <= float(soft.detach()) + 1e-6, (
            f"{label}: distilling a teacher's own output costs more than a random one's")

    good = task.score(perfect, target)
    bad = task.score(task.random_output(target, head, seed), target)
    rebuilt = again.score(perfect, again.encode(y))
    for m in task.metrics:
        for which, scores in (("perfect", good), ("random", bad)):
            assert m.name in scores, f"{label}: the scores lack {m.name!r} ({sorted(scores)})"
            v = scores[m.name]
            assert isinstance(v, float) and math.isfinite(v), f"{label}: {m.name} of a {which} prediction is {v!r}"
            assert m.low <= v <= m.high, f"{label}: {m.name} = {v} outside its range [{m.low}, {m.high}]"
        assert m.better(good[m.name], bad[m.name]), (
            f"{label}: {m.name} ({m.direction}) scores a perfect prediction {good[m.name]:.4g}, a random one "
            f"{bad[m.name]:.4g}: not better in its direction")
        assert math.isclose(rebuilt[m.name], good[m.name], rel_tol=1e-5, abs_tol=1e-6), (
            f"{label}: the task rebuilt from its state scores {m.name} {rebuilt[m.name]}, not {good[m.name]}")

    meter = task.meter()
    half = N // 2
    for part in (slice(0, half), slice(half, N)):
        meter.update(perfect[part], target[part])
    batched = meter.compute()
    for m in task.metrics:
        assert math.isclose(batched[m.name], good[m.name], rel_tol=1e-5, abs_tol=1e-6), (
            f"{label}: {m.name} over two batches is {batched[m.name]}, over one {good[m.name]}")

    refused = {}
    for what, value in task.bad_targets(N).items():
        try:
            task.check_targets(value, n=N, input_shape=shape)
        except ConfigError as e:
            assert "\n" not in str(e), f"{label}: refusing {what} takes more than one line: {e}"
            refused[what] = str(e)
        else:
            raise AssertionError(f"{label}: targets with {what} were accepted")
    assert refused, f"{label}: no bad targets to check its refusals on"
    return {"perfect": good, "random": bad, "refused": refused, "head": head}
