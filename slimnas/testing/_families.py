"""Conformance of a registered architecture family: its declaration is complete, a sampled spec
round-trips through JSON, builds a model that runs, describes itself in one line, and a real
one-trial search on it ends in a front table and a written report."""

from __future__ import annotations

import dataclasses
import io
import json
import tempfile
from pathlib import Path

import optuna
import torch
from rich.console import Console

from slimnas.spaces import FAMILIES, BaseFamily, Key, SearchSpace, arch_from_dict, get_family
from slimnas.spaces._family import arch_to_dict

#: (data kind, built-in dataset, its options): the first kind a family takes picks its data
DATA_FOR_KIND = (("image", "digits", {}), ("tabular", "wine", {}), ("sequence", "mnist1d", {}),
                 ("text", "text", {"n": 300}))
#: task -> (built-in dataset, its options): the data of a family made for a task alone (``tasks``)
DATA_FOR_TASK = {"detection": ("boxes64", {"n": 30})}


def check_family(name: str, workdir: str | Path | None = None) -> dict:
    """Run every check on the family registered as ``name``; raises ``AssertionError`` naming
    the first that fails. Returns the sampled spec's summary and the report's files.

    1. Its declaration is complete: a frozen spec dataclass naming the family, config keys
       (:class:`~slimnas.spaces.Key`), the data kinds it takes.
    2. A spec sampled from its default keys by a real Optuna trial round-trips through JSON
       (``to_dict`` / ``from_dict``).
    3. The spec builds a model whose output is ``(batch, n_classes)`` on a built-in dataset of a
       kind the family takes (a family made for a task alone, :attr:`~slimnas.spaces.BaseFamily.tasks`:
       on that task's built-in dataset, an output the task scores), and whose training-mode
       output gives the task's loss, a finite scalar with gradients.
    4. ``summary`` describes the spec in one non-empty line, and the report's ``arch_summary``
       gives the same line from the stored dict.
    5. ``slimnas.search`` runs one trial of the family (one epoch) to a front, the terminal front
       table prints, and ``write_report`` writes the HTML, JSON and Markdown report naming the
       front member by its summary.
    """
    from slimnas.data import load_dataset
    from slimnas.models import build_model
    from slimnas.report import arch_summary
    from slimnas.report._report import write_report
    from slimnas.report._table import front_table
    from slimnas.study import search

    assert name in FAMILIES, f"{name}: not a registered family"
    family = get_family(name)
    assert isinstance(family, BaseFamily) and family.name == name, f"{name}: registered without its name"
    spec_cls = family.spec
    assert dataclasses.is_dataclass(spec_cls), f"{name}: spec {spec_cls!r} is not a dataclass"
    assert spec_cls.__dataclass_params__.frozen, f"{name}: spec {spec_cls.__name__} is not frozen (specs are hashed)"
    assert getattr(spec_cls, "family", None) == name, f"{name}: {spec_cls.__name__}.family is not {name!r}"
    assert family.keys and all(isinstance(k, Key) for k in family.keys.values()), f"{name}: keys are not Keys"
    kind, dataset, options = next(((k, d, o) for k, d, o in DATA_FOR_KIND if k in family.data_kinds), (None,) * 3)
    assert kind is not None, f"{name}: data_kinds {family.data_kinds!r} name no built-in kind of data"
    if family.tasks:
        assert family.tasks[0] in DATA_FOR_TASK, f"{name}: tasks {family.tasks!r} name no task with a built-in dataset"
        dataset, options = DATA_FOR_TASK[family.tasks[0]]

    space = SearchSpace.from_config({"family": name})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    spec = space.sample(study.ask()).arch
    assert spec.family == name, f"{name}: sampled a {spec.family!r} spec"
    stored = json.loads(json.dumps(arch_to_dict(spec)))
    assert stored["family"] == name and arch_from_dict(stored) == spec, f"{name}: the spec does not round-trip"

    splits = load_dataset(dataset, options=options)
    if kind == "text":  # token-id models take the vocabulary's size, as a search sets it
        spec = dataclasses.replace(spec, vocab_size=splits.vocab_size)
    torch.manual_seed(0)
    model = build_model(spec, splits.input_shape, splits.n_classes).eval()
    with torch.no_grad():
        out = model(splits.x_train[:2])
    task = splits.task
    if family.tasks:  # an output the task scores, whatever its shape (a detector's packed boxes)
        scores = task.score(out, splits.y_train[:2])
        assert set(scores) >= {m.name for m in task.metrics if m.name != "loss"}, f"{name}: scored {scores}"
    else:
        assert tuple(out.shape) == (2, splits.n_classes), f"{name}: output shape {tuple(out.shape)}"
    model.train()
    loss = task.loss(task.train_output(model, splits.x_train[:2], splits.y_train[:2]), splits.y_train[:2])
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(loss), f"{name}: training loss {loss}"
    model.eval()

    summary = family.summary(spec)
    assert isinstance(summary, str) and summary.strip() and "\n" not in summary, f"{name}: summary {summary!r}"
    assert arch_summary({"arch": arch_to_dict(spec)}) == summary, f"{name}: arch_summary differs from summary"

    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        config = {"data": {"dataset": dataset, "options": options}, "space": {"family": name},
                  "training": {"epochs": 1}, "n_trials": 1, "seed": 0, "out": str(Path(tmp) / "run"),
                  "measure": {"latency_repeats": 2}}
        path = Path(tmp) / "config.yaml"
        path.write_text(json.dumps(config))  # JSON is YAML
        result = search(path)
        assert result.front, f"{name}: a one-trial search ended with an empty front"
        member = result.front[0]
        assert member.candidate["arch"]["family"] == name
        console = Console(file=io.StringIO(), width=200)
        console.print(front_table(result.front, "front"))
        line = arch_summary(member.candidate)
        assert line in console.file.getvalue(), f"{name}: the front table lacks {line!r}"
        files = write_report(result.run_dir)
        assert files.html.is_file() and files.json.is_file(), f"{name}: the report was not written"
        assert line in files.markdown.read_text(), f"{name}: report.md lacks {line!r}"
    return {"summary": summary, "dataset": dataset, "front": line}
