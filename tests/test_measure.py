import itertools
import time

import numpy as np
import pytest
import torch

from slimnas.export import export_onnx
from slimnas.export._session import ort_session
from slimnas.measure import count_macs, count_params, interleaved_latency
from slimnas.measure._latency import OnnxRuntimeLatency, TorchLatency, time_calls
from slimnas.models import CNNSpec, ConvLayer, MLPSpec, RNNSpec, build_model, mnist1d_paper_cnn


def test_paper_cnn_counts_match_the_paper():
    model = mnist1d_paper_cnn()
    assert count_params(model) == 5210
    # conv: out_len * out_ch * in_ch * k per layer, plus the linear layer
    expected = 19 * 25 * 1 * 5 + 10 * 25 * 25 * 3 + 5 * 25 * 25 * 3 + 125 * 10
    assert count_macs(model, (1, 40)) == expected


def test_macs_of_mlp_and_recurrent_layers_are_exact():
    assert count_macs(build_model(MLPSpec(widths=(32,)), (1, 40), 10), (1, 40)) == 40 * 32 + 32 * 10
    for cell, gates in (("gru", 3), ("lstm", 4)):
        model = build_model(RNNSpec(cell=cell, hidden=16, n_layers=1), (1, 40), 10)
        assert count_macs(model, (1, 40)) == 40 * gates * (1 * 16 + 16 * 16) + 16 * 10


@pytest.mark.parametrize("spec", [
    CNNSpec(layers=(ConvLayer(8, 5, 2), ConvLayer(8, 3, 1)), residual=True),
    MLPSpec(widths=(16,), batch_norm=True),
    RNNSpec(cell="gru", hidden=8, bidirectional=True),
])
def test_onnx_export_matches_eager(tmp_path, spec):
    model = build_model(spec, (1, 40), 10).eval()
    path = export_onnx(model, tmp_path / "m.onnx", (1, 40))
    x = torch.randn(5, 1, 40)
    got = ort_session(path).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, model(x).detach().numpy(), atol=1e-4)


def test_latency_runtimes_return_positive_medians(tmp_path):
    model = mnist1d_paper_cnn().eval()
    path = export_onnx(model, tmp_path / "m.onnx", (1, 40))
    assert OnnxRuntimeLatency(repeats=5, warmup=1).measure(path, (1, 40)) > 0
    assert TorchLatency(repeats=5, warmup=1).measure(model, (1, 40)) > 0


def test_time_calls_times_a_fast_call_for_at_least_min_ms():
    """A call of ~0.2 ms timed 5 times lasts 1 ms: the floor of 10 ms adds calls; a slow call keeps its count."""
    fast = time_calls(lambda: time.sleep(0.0002), warmup=1, repeats=5, min_ms=10.0)
    assert len(fast) > 5 and sum(fast) >= 10.0
    assert len(time_calls(lambda: time.sleep(0.0002), warmup=1, repeats=5)) == 5
    assert len(time_calls(lambda: time.sleep(0.004), warmup=0, repeats=5, min_ms=10.0)) == 5
    stats = TorchLatency(repeats=3, warmup=1, min_time_ms=5.0).measure_stats(torch.nn.Linear(4, 2), (4,))
    assert stats.repeats > 3  # the figure says how many calls it is the median of


class _Recorder(torch.nn.Module):
    """Records which model ran, in order (to see how the timing rounds interleave)."""

    def __init__(self, name: str, log: list) -> None:
        super().__init__()
        self.name, self.log, self.lin = name, log, torch.nn.Linear(4, 2)

    def forward(self, x):
        self.log.append((self.name, x.shape[0]))
        return self.lin(x)


def test_interleaved_latency_alternates_the_models_calls_each_round():
    log: list = []
    models = {k: _Recorder(k, log) for k in ("a", "b", "c")}
    lat = interleaved_latency(models, (4,), batches=(1, 3), rounds=2, repeats=2, warmup=1, runtime="torch",
                              min_time_ms=0)
    assert set(lat) == {"a", "b", "c"} and all(set(v) == {1, 3} and min(v.values()) > 0 for v in lat.values())
    # per round and batch size: each model warmed up once, then the models take turns in bursts of
    # calls (a, b, c, a, b, c, ...: runs of the same model)
    turns = [(k, len(list(g))) for k, g in itertools.groupby(log)]
    assert [k for k, _ in turns] == [(k, b) for _ in range(2) for b in (1, 3) for k in "abcabc"]
    assert all(n == 1 if i % 6 < 3 else n >= 3 for i, (_, n) in enumerate(turns))  # warm-up 1; burst: 1 + 2 or more


def test_interleaved_latency_gives_a_fast_model_more_calls_for_min_time():
    log: list = []
    slow = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(8)])
    models = {"fast": _Recorder("fast", log), "slow": torch.nn.Sequential(_Recorder("slow", log), torch.nn.Linear(2, 256),
                                                                        slow)}
    interleaved_latency(models, (4,), rounds=1, repeats=3, warmup=0, runtime="torch", min_time_ms=2.0)
    assert log.count(("slow", 1)) >= 3 and log.count(("fast", 1)) > log.count(("slow", 1))


def test_interleaved_latency_keeps_each_models_fastest_round(monkeypatch):
    """A slow spell covering most rounds of one model (its figures x2 there) does not set its figure."""
    import types

    import slimnas.measure._latency as lat_mod

    # each round's median per model, in the order the rounds take them (a, then b)
    scripted = iter([2.0, 3.0, 2.0, 3.1, 1.0, 6.0, 2.0, 6.2, 1.1, 6.0])
    monkeypatch.setattr(lat_mod, "statistics", types.SimpleNamespace(median=lambda times: next(scripted)))
    log: list = []
    out = interleaved_latency({k: _Recorder(k, log) for k in "ab"}, (4,), rounds=5, repeats=2, runtime="torch")
    assert out == {"a": {1: 1.0}, "b": {1: 3.0}}  # the medians over rounds would be 2.0 and 6.0


def test_interleaved_latency_exports_each_module_once_for_onnx_runtime(monkeypatch):
    import slimnas.measure._latency as lat_mod

    calls = []
    real = lat_mod.export_onnx
    monkeypatch.setattr(lat_mod, "export_onnx", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = interleaved_latency({"m": mnist1d_paper_cnn().eval()}, (1, 40), batches=(1, 8), rounds=3, repeats=3)
    assert len(calls) == 1 and set(out["m"]) == {1, 8}
