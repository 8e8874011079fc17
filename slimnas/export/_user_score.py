"""The user's score function on an exported file: the ONNX file run in ONNX Runtime, called as
the user's model is, scored by the active score function (:mod:`slimnas.training._user`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from slimnas.training._user import active


class _Outputs(dict):
    """A dict of outputs read like a Hugging Face ``ModelOutput``: ``out.logits``, ``out[0]``."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key):
        return list(self.values())[key] if isinstance(key, int) else super().__getitem__(key)


class OnnxModule(nn.Module):
    """An exported ONNX file run in ONNX Runtime, called as the user's model is (the user's batch
    inputs in; its main output out, as ``.logits`` where the user's model answers with a dict):
    what a score function gets to score the file itself."""

    def __init__(self, onnx, form=None) -> None:
        super().__init__()
        from slimnas.export._session import ort_session

        self.session, self.form = ort_session(onnx), form
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.dtype = np.int64 if first.type == "tensor(int64)" else np.float32

    def forward(self, *args, **kwargs):
        from slimnas.models._io import ExampleInputs

        x = self.form.pack(ExampleInputs(tuple(args), kwargs)) if self.form is not None else args[0]
        out = torch.from_numpy(self.session.run(None, {self.input_name: x.detach().cpu().numpy().astype(self.dtype)})[0])
        return _Outputs(logits=out) if self.form is not None and self.form.dict_output else out


def onnx_score(onnx, x: torch.Tensor, y: torch.Tensor) -> float | None:
    """The active score function's primary score (higher is better) of the ONNX file on
    ``(x, y)``, or ``None`` without one."""
    user = active()
    if user is None or user.score_fn is None:
        return None
    return user.score(OnnxModule(onnx, user.form), x, y)["accuracy"]
