"""Device targeting: latency runtimes and their metadata, device profiles, the operator latency
table and its predictor, latency-driven channel allocation and the per-layer precision choice.

Timings on a loaded machine are noisy: no test asserts a wall-clock figure; the channel
allocation is checked with a deterministic table (its latency is a function of the operator)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from slimnas.compress import (
    CompressionPolicy,
    SensitivityResult,
    allocate_by_latency,
    fit_to_latency,
    latency_policy,
    list_prunable_layers,
    measured_share,
    prune_ratios,
    pruned_model,
    sensitivity_cost,
    widths_to_ratios,
)
from slimnas.compress._hardware import knee_index
from slimnas.config import DeviceProfile, list_builtin_profiles
from slimnas.config._profile import parse_profile, read_profile, write_profile
from slimnas.errors import ConfigError
from slimnas.measure import (
    LatencyPredictor,
    LatencyTable,
    OpConfig,
    Overhead,
    check_profile,
    onthefly_predictor,
)
from slimnas.measure._latency import (
    OnnxRuntimeInt8Latency,
    OnnxRuntimeLatency,
    TorchCudaLatency,
    TorchLatency,
    runtime_for,
)
from slimnas.measure._ops import model_ops
from slimnas.measure._predictor import spearman
from slimnas.measure._profile import load_profile
from slimnas.models import mnist1d_paper_cnn

SHAPE = (1, 40)


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(1, 8, 5, padding=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 40, 10))


def macs_table(per_mac_ms: float = 1e-6) -> LatencyPredictor:
    """A deterministic predictor: each operator costs a fixed time per MAC (plus a floor)."""
    table = LatencyTable(measure=lambda op, b, p: 1e-4 + per_mac_ms * op.macs * b)
    return LatencyPredictor(table, {"1/fp32": Overhead(null_ms=1e-4, model_ms=0.0),
                                    "64/fp32": Overhead(null_ms=1e-4, model_ms=0.0)})


# -- runtimes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls,precision", [(OnnxRuntimeLatency, "fp32"), (OnnxRuntimeInt8Latency, "int8"),
                                           (TorchLatency, "fp32")])
def test_every_latency_carries_runtime_threads_batch_and_machine(cls, precision):
    rt = cls(batch_size=3, warmup=2, repeats=7, threads=1)
    stats = rt.measure_stats(tiny(), SHAPE)
    assert stats.runtime == rt.name and stats.threads == 1 and stats.batch == 3 and stats.repeats >= 7
    assert stats.precision == precision
    assert stats.min_ms <= stats.p10_ms <= stats.median_ms <= stats.p90_ms
    assert {"cpu", "cores", "onnxruntime", "torch"} <= set(stats.machine)
    d = stats.to_dict()
    assert d["spread"] >= 0 and d["machine"] == stats.machine


def test_torch_runtime_restores_threads_and_training_mode():
    model, threads = tiny().train(), torch.get_num_threads()
    TorchLatency(batch_size=2, warmup=1, repeats=3, threads=1).measure_stats(model, SHAPE)
    assert model.training and torch.get_num_threads() == threads


def test_torch_runtime_times_a_module_without_parameters():
    """An activation alone (a latency table's null operator on the torch runtime) has no
    parameter to read the device from: it runs on the runtime's device."""
    stats = TorchLatency(batch_size=4, warmup=1, repeats=3).measure_stats(nn.ReLU(), SHAPE)
    assert stats.median_ms > 0 and stats.batch == 4
    assert onthefly_predictor([(tiny(), SHAPE)], runtime="torch", repeats=3).predict(tiny(), SHAPE).ms > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip path of machines without CUDA")
@pytest.mark.parametrize("name", ["torch-cuda", "onnxruntime-cuda"])
def test_cuda_runtimes_are_refused_cleanly_without_cuda(name):
    with pytest.raises(ConfigError, match="a runtime this machine can run"):
        runtime_for({"runtime": name})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_cuda_runtime_times_half_precision():
    stats = TorchCudaLatency(batch_size=8, warmup=2, repeats=5, precision="fp16").measure_stats(tiny(), SHAPE)
    assert stats.precision == "fp16" and stats.machine.get("gpu")


# -- profiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_builtin_profiles())
def test_builtin_profiles_check_and_round_trip(name, tmp_path):
    p = load_profile(name)
    budgets = check_profile(p)
    assert [str(b) for b in budgets] == [str(b) for b in check_profile(read_profile(name))]
    back = read_profile(write_profile(p, tmp_path / "p.yaml"))
    assert back.to_dict() == p.to_dict() and back.source.endswith("p.yaml")


def test_mcu_profile_limits_bytes_and_ram():
    limits = {b.metric for b in check_profile(load_profile("mcu"))}
    assert limits == {"int8_bytes", "ram_bytes"}
    assert load_profile("mcu").activation_bytes == 1


@pytest.mark.parametrize("raw,field", [
    ({"name": "x", "threads": 0}, "profile.threads"),
    ({"name": "x", "batch": [1, 1]}, "profile.batch"),
    ({"name": "x", "precisions": ["int3"]}, "profile.precisions"),
    ({"name": "x", "colour": "red"}, "profile.colour"),
    ({"runtime": "onnxruntime"}, "profile.name"),
])
def test_bad_profile_names_the_field(raw, field):
    with pytest.raises(ConfigError) as e:
        parse_profile(raw)
    assert e.value.field == field


def test_profile_with_unknown_runtime_or_limit_is_refused():
    with pytest.raises(ConfigError, match="runtime"):
        check_profile(DeviceProfile(name="x", runtime="tflite"))
    with pytest.raises(ConfigError):
        check_profile(DeviceProfile(name="x", limits=("banana<=3",)))


def test_device_show_of_a_bad_profile_is_one_line_and_exit_2(tmp_path, cli_here):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nthreads: -1\n")
    r = cli_here("device", "show", bad)  # the device command's own process: test_cli_options.py
    assert r.returncode == 2
    assert "profile.threads" in r.stderr + r.stdout and "Traceback" not in r.stderr


# -- operators, table and predictor ------------------------------------------------------------


def test_model_ops_lists_the_paper_cnn_operators():
    ops = model_ops(mnist1d_paper_cnn(), SHAPE)
    convs = [op for op in ops if op.op == "conv1d"]
    assert len(convs) == 3 and any(op.op == "linear" for op in ops)
    assert sum(op.macs for op in ops if op.op in ("conv1d", "linear")) > 0


def test_predictor_sums_the_table():
    pred = macs_table()
    model = mnist1d_paper_cnn()
    p = pred.predict(model, SHAPE)
    expected = sum(1e-6 * op.macs for op in model_ops(model, SHAPE))
    assert p.ms == pytest.approx(expected, rel=1e-6)
    assert p.coverage == 1.0
    with pytest.raises(KeyError):
        pred.predict(model, SHAPE, batch=7)


def test_table_written_to_a_profile_predicts_the_same(tmp_path):
    pred = macs_table()
    model = mnist1d_paper_cnn()
    want = pred.predict(model, SHAPE).ms
    from slimnas.measure import profile_predictor

    prof = DeviceProfile(name="t", table=tuple(pred.table.to_entries()),
                         overhead={k: v.to_dict() for k, v in pred.overhead.items()})
    back = profile_predictor(read_profile(write_profile(prof, tmp_path / "t.yaml")))
    assert back.predict(model, SHAPE).ms == pytest.approx(want, rel=1e-3)


def test_measured_predictor_ranks_a_wide_model_above_a_narrow_one():
    narrow = tiny()
    torch.manual_seed(0)
    wide = nn.Sequential(nn.Conv1d(1, 128, 5, padding=2), nn.ReLU(), nn.Conv1d(128, 128, 5, padding=2), nn.ReLU(),
                         nn.Flatten(), nn.Linear(128 * 40, 10))
    pred = onthefly_predictor([(narrow, SHAPE), (wide, SHAPE)], batches=(1,), repeats=10)
    a, b = pred.predict(narrow, SHAPE).ms, pred.predict(wide, SHAPE).ms
    assert 0 < a < b


def test_an_operator_is_timed_over_the_null_op_alongside_it():
    """Table entries are the null op's time (one figure per batch) plus the op's time over it,
    the two timed in alternating bursts."""
    from slimnas.measure._optime import op_model, time_over_null
    from slimnas.measure._profile import OpTimer

    timer = OpTimer(repeats=10)
    null = timer.null(1)
    assert null > 0 and timer.null(1) == null  # timed once per batch
    small = model_ops(tiny(), SHAPE)[0]
    big = OpConfig("conv1d", 64, 64, (40,), kernel=5, padding=2)
    assert timer(small, 1) >= null - 0.5 * null  # the op's time over the null can be ~0, not far below
    assert time_over_null(op_model(big), big.input_shape(), batch=1, repeats=10) > 0
    assert timer(big, 1) > timer(small, 1)  # 64x64 channels against 1x8: hundreds of times the MACs


def test_spearman_of_orders():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


# -- latency-driven channel counts ------------------------------------------------------------


@pytest.mark.parametrize("share", [0.5, 0.3])
def test_allocation_meets_the_predicted_latency_target(share):
    model, pred = mnist1d_paper_cnn().eval(), macs_table()
    base = pred.predict(model, SHAPE, batch=64).ms
    alloc = allocate_by_latency(model, SHAPE, pred, share * base, batch=64)
    assert alloc.met and alloc.predicted_ms <= share * base
    assert all(alloc.widths[n] <= alloc.original[n] for n in alloc.widths)
    assert any(alloc.widths[n] < alloc.original[n] for n in alloc.widths)
    # the allocation's figure is the pruned model's own prediction (its ratios remove exactly those channels)
    pruned = pruned_model(model, alloc.ratios, SHAPE)
    assert pred.predict(pruned, SHAPE, batch=64).ms == pytest.approx(alloc.predicted_ms, rel=1e-6)
    kept = {lay.name: lay.out_channels for lay in list_prunable_layers(pruned, SHAPE)}
    assert kept == {n: w for n, w in alloc.widths.items() if n in kept}
    if alloc.rounding > 1:
        assert all(w % alloc.rounding == 0 or w == alloc.original[n] for n, w in alloc.widths.items())
    assert prune_ratios(latency_policy(alloc)) == alloc.ratios


def test_allocation_steps_past_several_slower_channel_counts():
    """A runtime where convolutions run 4x slower per MAC unless their channels are a multiple of
    8: below 24 channels the next seven counts are all slower, and the allocation still gets
    down to the target (at rounding 1, stepping to the first count that saves)."""
    model = mnist1d_paper_cnn().eval()
    table = LatencyTable(measure=lambda op, b, p: 1e-4 + 1e-6 * op.macs * b * (
        4.0 if op.op.startswith("conv") and op.cout % 8 and op.cout != 25 else 1.0))
    pred = LatencyPredictor(table, {"64/fp32": Overhead(null_ms=1e-4, model_ms=0.0)})
    base = pred.predict(model, SHAPE, batch=64).ms
    alloc = allocate_by_latency(model, SHAPE, pred, 0.5 * base, batch=64, roundings=(1,))
    assert alloc.met and alloc.predicted_ms <= 0.5 * base
    assert all(w % 8 == 0 or w == 25 for w in alloc.widths.values())


def test_fit_to_latency_scales_a_policy_to_the_target():
    from slimnas.compress import CompressionPolicy

    model, pred = mnist1d_paper_cnn().eval(), macs_table()
    base = pred.predict(model, SHAPE).ms
    names = [lay.name for lay in list_prunable_layers(model, SHAPE)]
    policy = CompressionPolicy.of(prune={"ratio": 0.0, "layer_ratios": dict.fromkeys(names, 0.1)})
    fitted, ms = fit_to_latency(model, policy, SHAPE, pred, 0.5 * base)
    assert ms <= 0.5 * base
    pruned = pruned_model(model, prune_ratios(fitted), SHAPE)
    assert pred.predict(pruned, SHAPE).ms == pytest.approx(ms, rel=1e-6)
    same, ms0 = fit_to_latency(model, policy, SHAPE, pred, 2 * base)  # already within: left as it is
    assert same is policy and ms0 == pytest.approx(base)


def kept_widths(model: nn.Module, ratios) -> dict[str, int]:
    return {lay.name: lay.out_channels for lay in list_prunable_layers(pruned_model(model, ratios, SHAPE), SHAPE)}


def test_a_mac_budget_fitted_with_rounding_keeps_multiples_and_fills_the_budget():
    from slimnas.compress import scale_to_macs
    from slimnas.compress._allocate import fit_to_macs, next_up, pruned_macs, round_to_macs
    from slimnas.measure import Budget, count_macs

    model = mnist1d_paper_cnn().eval()
    original = {lay.name: lay.out_channels for lay in list_prunable_layers(model, SHAPE)}
    target = int(0.5 * count_macs(model, SHAPE))
    scaled, _ = scale_to_macs(model, dict.fromkeys(original, 0.3), SHAPE, target)
    rounded = round_to_macs(model, scaled, SHAPE, target, 8)
    assert rounded is not None and pruned_macs(model, rounded, SHAPE) <= target
    widths = {n: original[n] - round(r * original[n] + 0.1) for n, r in rounded.items()}
    assert kept_widths(model, rounded) == {**original, **widths}
    assert all(w % 8 == 0 for w in widths.values()) and any(w < original[n] for n, w in widths.items())
    for n, w in widths.items():  # no layer can take its next multiple back within the budget
        grown = {**rounded, n: (original[n] - next_up(w, original[n], 8) - 0.1) / original[n]}
        assert pruned_macs(model, grown, SHAPE) > target
    policy = CompressionPolicy.of(prune={"ratio": 0.0, "layer_ratios": dict.fromkeys(original, 0.3)})
    budget = [Budget.parse(f"macs<={target}", "--budget")]
    assert prune_ratios(fit_to_macs(model, policy, SHAPE, budget, use_full_budget=True, rounding=8)) == rounded
    plain = prune_ratios(fit_to_macs(model, policy, SHAPE, budget, use_full_budget=True))
    assert any(w % 8 for w in kept_widths(model, plain).values())  # unrounded: any count
    assert round_to_macs(model, scaled, SHAPE, 10, 8) is None  # multiples of 8 cannot get under 10 MACs


def test_mac_rounding_is_kept_only_where_the_runtime_rewards_it():
    """Under a MAC budget, a rounding is chosen where the table says its counts run faster per
    MAC, not merely because rounding down leaves a smaller model."""
    from slimnas.compress import scale_to_macs
    from slimnas.compress._hardware import choose_mac_rounding
    from slimnas.measure import count_macs

    model = mnist1d_paper_cnn().eval()
    names = [lay.name for lay in list_prunable_layers(model, SHAPE)]
    target = int(0.5 * count_macs(model, SHAPE))
    ratios, _ = scale_to_macs(model, dict.fromkeys(names, 0.3), SHAPE, target)
    table = LatencyTable(measure=lambda op, b, p: 1e-4 + 1e-6 * op.macs * b * (
        3.0 if op.op.startswith("conv") and op.cout % 8 and op.cout != 25 else 1.0))
    picky = LatencyPredictor(table, {"64/fp32": Overhead(null_ms=1e-4, model_ms=0.0)})
    chosen = choose_mac_rounding(model, SHAPE, picky, ratios, target, batch=64)
    assert chosen.rounding > 1 and chosen.measured is None
    tried = {t["rounding"]: t for t in chosen.tried}
    kept, plain = tried[chosen.rounding], tried[1]
    assert kept["predicted_ms"] < plain["predicted_ms"] and 0.9 * plain["macs"] <= kept["macs"] <= target
    def slow(widths) -> int:  # layers at counts the runtime runs slowly
        return sum(bool(w % 8) and w != 25 for w in widths.values())

    assert slow(kept["widths"]) < slow(plain["widths"])
    within = [t for t in chosen.tried if t["macs"] >= 0.9 * plain["macs"]]  # MAC_SLACK
    assert kept["latency_per_mac"] == min(t["latency_per_mac"] for t in within)
    assert chosen.to_dict()["rounding"] == chosen.rounding and f"multiples of {chosen.rounding}" in chosen.reason
    flat = choose_mac_rounding(model, SHAPE, macs_table(), ratios, target, batch=64)
    assert flat.rounding == 1  # time follows MACs: no rounding is faster per MAC
    # timed here and not faster: not kept, whatever the table says
    vetoed = choose_mac_rounding(model, SHAPE, picky, ratios, target, batch=64, measure=lambda widths: 0.5)
    assert vetoed.rounding == 1 and vetoed.measured == {"unrounded": 0.5, "rounded": 0.5}
    # timed faster only in proportion to the MACs it gave up: smaller, not faster per MAC, not kept
    from slimnas.compress import widths_to_ratios
    from slimnas.compress._allocate import pruned_macs

    original = {lay.name: lay.out_channels for lay in list_prunable_layers(model, SHAPE)}

    def by_macs(widths, per_mac: float = 1.0) -> float:
        return per_mac * pruned_macs(model, widths_to_ratios(widths, original), SHAPE) / count_macs(model, SHAPE)

    assert kept["macs"] < 0.97 * plain["macs"]  # so the old rule (3% faster, whatever the MACs) kept it
    smaller = choose_mac_rounding(model, SHAPE, picky, ratios, target, batch=64, measure=by_macs)
    assert smaller.rounding == 1 and "the MACs: not kept" in smaller.reason
    faster = choose_mac_rounding(model, SHAPE, picky, ratios, target, batch=64,
                                 measure=lambda w: by_macs(w, 1.0 if w == plain["widths"] else 0.9))
    assert faster.rounding == chosen.rounding


def test_sensitivity_cost_keeps_the_latency_allocation_off_layers_whose_accuracy_falls():
    net = mnist1d_paper_cnn().eval()
    # latency proportional to MACs, so every layer is worth pruning for latency alone
    table = LatencyTable(measure=lambda op, b, p: 0.001 * (1 + op.macs / 1e3))
    pred = LatencyPredictor(table, {"1/fp32": Overhead(null_ms=0.001, model_ms=0.002)})
    target = 0.6 * pred.predict(net, SHAPE).ms
    ratios = (0.1, 0.3, 0.5, 0.7, 0.9)
    flat, steep = [(r, 0.9, 0) for r in ratios], [(r, 0.9 - r, 0) for r in ratios]
    sens = SensitivityResult(baseline=0.9, baseline_macs=0, ratios=ratios, curves={"0": flat, "2": steep, "4": flat})
    plain = allocate_by_latency(net, SHAPE, pred, target, roundings=(1,))
    aware = allocate_by_latency(net, SHAPE, pred, target, roundings=(1,), cost_fn=sensitivity_cost(sens))
    assert plain.met and aware.met
    assert plain.widths["2"] < 25  # by importance share alone the costly middle layer is cut
    assert aware.widths["2"] == 25 and aware.widths["0"] < 25  # the curves move the cut to the flat layers
    cost = sensitivity_cost(sens)
    assert cost("2", 25, 10) > cost("2", 25, 20) > cost("0", 25, 5)
    assert sensitivity_cost(SensitivityResult(0.9, 0, ratios, {"0": []})) is None


def test_knee_of_a_pruning_path():
    # latency falls fast for the first share of the cost, then flattens: the knee is at the bend
    lat, cost = [1.0, 0.8, 0.7, 0.68, 0.67, 0.66], [0.0, 0.1, 0.2, 0.5, 0.8, 1.2]
    assert knee_index(lat, cost) == 2
    assert knee_index([1.0, 1.0], [0.0, 0.3]) == 0  # pruning saves nothing: stay whole
    assert knee_index([1.0, 0.5], [0.0, 0.0]) == 1  # free savings are all taken


def overhead_table() -> LatencyPredictor:
    """Operators cost a large constant plus a little per MAC: pruning can save a fifth at most."""
    table = LatencyTable(measure=lambda op, b, p: 2e-3 + 1e-7 * op.macs * b)
    return LatencyPredictor(table, {"1/fp32": Overhead(null_ms=1e-4, model_ms=0.0)})


def test_an_unreachable_target_stops_at_the_knee_not_at_the_floor():
    model, pred = mnist1d_paper_cnn().eval(), overhead_table()
    base = pred.predict(model, SHAPE).ms
    alloc = allocate_by_latency(model, SHAPE, pred, 0.5 * base, roundings=(1,))
    assert not alloc.met and alloc.floor_ms is not None and alloc.floor_ms > 0.5 * base
    assert alloc.to_dict()["floor_ms"] == round(alloc.floor_ms, 6)
    # the fastest allocation pruning reaches: what the old behaviour returned for this target
    floor = allocate_by_latency(model, SHAPE, pred, alloc.floor_ms, roundings=(1,))
    assert floor.met and floor.floor_ms is None
    assert floor.predicted_ms <= alloc.floor_ms < alloc.predicted_ms < base  # slower than the floor, still faster
    assert alloc.cost < floor.cost and sum(alloc.widths.values()) > sum(floor.widths.values())
    # a uniform policy fitted to the same target: also short of the most pruned multiple
    names = [lay.name for lay in list_prunable_layers(model, SHAPE)]
    uniform = CompressionPolicy.of(prune={"ratio": 0.0, "layer_ratios": dict.fromkeys(names, 0.3)})
    fitted, ms = fit_to_latency(model, uniform, SHAPE, pred, 0.5 * base)
    most = {n: max(1, round(w * 0.1)) for n, w in alloc.original.items()}
    assert pred.predict(pruned_model(model, widths_to_ratios(most, alloc.original), SHAPE), SHAPE).ms < ms < base
    assert max(prune_ratios(fitted).values()) < 0.9


def test_an_unreachable_target_weighs_latency_against_the_accuracy_the_sensitivity_curves_lose():
    # the middle layer's channels are the only ones saving latency here, and each 1% of latency they
    # save costs ~2.5% of the accuracy: a knee by the path's own extent cuts them anyway (the path's
    # later steps are worse still); weighed as shares of the original's, the model is kept whole
    model, pred = mnist1d_paper_cnn().eval(), overhead_table()
    base = pred.predict(model, SHAPE).ms
    ratios = (0.1, 0.3, 0.5, 0.7, 0.9)
    sens = SensitivityResult(baseline=0.9, baseline_macs=0, ratios=ratios, curves={
        "0": [(r, 0.9 - 0.8 * r, 0) for r in ratios], "2": [(r, 0.9 - 0.6 * r, 0) for r in ratios],
        "4": [(r, 0.9 - 0.5 * r, 0) for r in ratios]})
    cost = sensitivity_cost(sens)
    assert cost.accuracy_scale == 0.9
    weighed = allocate_by_latency(model, SHAPE, pred, 0.5 * base, roundings=(1,), cost_fn=cost)
    by_path = allocate_by_latency(model, SHAPE, pred, 0.5 * base, roundings=(1,), cost_fn=lambda *a: cost(*a))
    assert not weighed.met and not by_path.met and weighed.floor_ms == by_path.floor_ms
    assert by_path.widths["2"] < 10 and by_path.cost > 0.4  # most of the accuracy for the last fifth of latency
    assert weighed.widths == weighed.original and weighed.cost == 0.0
    # where the cut is cheap against the latency it saves, it is still taken
    sens.curves["2"] = [(r, 0.9 - 0.1 * r, 0) for r in ratios]
    cheap = allocate_by_latency(model, SHAPE, pred, 0.5 * base, roundings=(1,), cost_fn=sensitivity_cost(sens))
    assert cheap.widths["2"] < 10 and cheap.predicted_ms < 0.8 * base
    lat, acc = [1.0, 0.9, 0.8, 0.75], [0.0, 0.05, 0.2, 0.6]
    assert knee_index(lat, acc, scale=(1.0, 0.9)) == 1  # 10% for 5.6% of the accuracy; the next 10% costs 17%
    assert knee_index(lat, acc) == 2  # by the path's extent


def device_share(model: nn.Module, exponent: float):
    """``widths -> share`` on a "device" (a table) where a convolution with ``c`` output channels
    runs at ``(c / 25) ** -exponent`` of the speed per MAC the plain table says (exponent > 0:
    narrow layers run slower than predicted; < 0: faster)."""
    device = macs_table()
    device.table = LatencyTable(measure=lambda op, b, p: 1e-4 + 1e-6 * op.macs * b * (
        (25 / max(op.cout, 1)) ** exponent if op.op.startswith("conv") else 1.0))
    full = device.predict(model, SHAPE, batch=64).ms
    original = {lay.name: lay.out_channels for lay in list_prunable_layers(model, SHAPE)}

    def share(widths):
        return device.predict(pruned_model(model, widths_to_ratios(widths, original), SHAPE), SHAPE, batch=64).ms / full

    return share


def test_a_measured_miss_reallocates_until_the_measured_share_meets_the_target():
    """The table says latency follows MACs; on the "device" (a second table) narrow convolutions
    run less efficiently, so the table's allocation is slower there than predicted."""
    model, pred = mnist1d_paper_cnn().eval(), macs_table()
    original = {lay.name: lay.out_channels for lay in list_prunable_layers(model, SHAPE)}
    measure = device_share(model, 0.5)
    base, share = pred.predict(model, SHAPE, batch=64).ms, 0.5
    plain = allocate_by_latency(model, SHAPE, pred, share * base, batch=64)
    assert plain.measured_share is None and plain.checks == [] and plain.met
    assert measure(plain.widths) > share * 1.1  # the table's choice misses on the device
    checked = allocate_by_latency(model, SHAPE, pred, share * base, batch=64, measure=measure)
    assert len(checked.checks) >= 2 and checked.checks[0]["widths"] == plain.widths
    assert checked.checks[0]["measured_share"] == pytest.approx(measure(plain.widths), abs=1e-4)
    assert checked.measured_share == pytest.approx(measure(checked.widths), rel=1e-6)
    assert checked.met and checked.measured_share <= share * 1.03
    assert sum(checked.widths.values()) < sum(plain.widths.values())
    assert checked.to_dict()["measured_share"] == round(checked.measured_share, 4)
    # a target the device cannot reach: the fastest allocation measured is kept, and it says so
    hopeless = allocate_by_latency(model, SHAPE, pred, 0.05 * base, batch=64, measure=measure, max_checks=2)
    assert not hopeless.met and len(hopeless.checks) <= 2
    assert hopeless.measured_share == pytest.approx(min(c["measured_share"] for c in hopeless.checks), abs=1e-4)
    # a uniform policy fitted to the same target: timed and fitted again the same way
    names = list(original)
    uniform = CompressionPolicy.of(prune={"ratio": 0.0, "layer_ratios": dict.fromkeys(names, 0.3)})
    by_table, _ = fit_to_latency(model, uniform, SHAPE, pred, share * base, batch=64)
    timed, _ = fit_to_latency(model, uniform, SHAPE, pred, share * base, batch=64, measure=measure)
    kept = {n: original[n] - round(r * original[n]) for n, r in prune_ratios(timed).items()}
    assert measure(kept) <= share * 1.03 < measure(
        {n: original[n] - round(r * original[n]) for n, r in prune_ratios(by_table).items()})


def test_latency_left_unspent_on_the_device_is_given_back():
    """Where narrow layers run faster than the table says, the table's allocation lands well under
    the target share: channels are given back (the last allocation interpolated between one over
    and one under the target)."""
    model, pred = mnist1d_paper_cnn().eval(), macs_table()
    measure = device_share(model, -1.0)
    base, share = pred.predict(model, SHAPE, batch=64).ms, 0.5
    plain = allocate_by_latency(model, SHAPE, pred, share * base, batch=64)
    assert measure(plain.widths) < share * 0.9
    checked = allocate_by_latency(model, SHAPE, pred, share * base, batch=64, measure=measure)
    assert share * 0.9 <= checked.measured_share <= share * 1.03 and checked.met
    assert sum(checked.widths.values()) > sum(plain.widths.values())
    # channels are given back to the allocation that fell under: no layer loses any
    under = next(c for c in checked.checks if c["measured_share"] < share * 0.9)
    assert all(checked.widths[n] >= under["widths"][n] for n in under["widths"])
    shares = [c["measured_share"] for c in checked.checks]
    assert shares[0] < share * 0.9 and len(shares) >= 2


def test_auto_candidates_are_fitted_to_the_target_the_allocation_timing_corrected():
    """compress --auto fits every candidate to the latency budget by predicted latency. Where the
    allocation's timing found the table over-predicting (narrow layers run faster on the device),
    the allocation kept more channels than the raw predicted target allows: its own candidate,
    fitted to that raw target, would be cut further; fitted to the corrected one it keeps them."""
    from slimnas.compress import latency_policy
    from slimnas.study._hardware import HardwareTarget

    model, pred = mnist1d_paper_cnn().eval(), macs_table()
    original = {lay.name: lay.out_channels for lay in list_prunable_layers(model, SHAPE)}
    measure = device_share(model, -1.0)
    base, share = pred.predict(model, SHAPE, batch=64).ms, 0.5
    alloc = allocate_by_latency(model, SHAPE, pred, share * base, batch=64, measure=measure)
    assert alloc.met and alloc.predicted_ms > share * base  # given channels back past the raw target
    target = HardwareTarget(pred, batch=64, base_ms=base, target_ms=share * base, allocation=alloc)
    assert target.fit_target_ms == pytest.approx(share * base * (alloc.predicted_ms / base) / alloc.measured_share)
    assert target.to_dict()["fit_target_predicted_ms"] == round(target.fit_target_ms, 6)

    def widths(policy):
        return {n: original[n] - round(r * original[n]) for n, r in prune_ratios(policy).items()} | {
            n: w for n, w in original.items() if n not in prune_ratios(policy)}

    fitted, ms = target.fit(model, latency_policy(alloc), SHAPE)
    assert all(widths(fitted)[n] >= alloc.widths[n] for n in original) and ms <= target.fit_target_ms
    raw, _ = fit_to_latency(model, latency_policy(alloc), SHAPE, pred, share * base, batch=64)
    assert sum(widths(raw).values()) < sum(alloc.widths.values())  # the raw target cuts it further
    assert measure(widths(raw)) < share * 0.9 <= measure(widths(fitted))  # ... into latency left unspent
    untimed = allocate_by_latency(model, SHAPE, pred, share * base, batch=64)
    assert HardwareTarget(pred, batch=64, base_ms=base, target_ms=share * base,
                          allocation=untimed).fit_target_ms == share * base
    # out of reach (a fifth of the latency at most): candidates are fitted to the allocation's knee
    slow = overhead_table()
    base = slow.predict(model, SHAPE).ms
    slopes = {"0": 0.3, "2": 0.1, "4": 0.02}  # the knee cuts the last two layers, not the first
    sens = SensitivityResult(baseline=0.9, baseline_macs=0, ratios=(0.3, 0.6, 0.9), curves={
        n: [(r, 0.9 - slopes[n] * r, 0) for r in (0.3, 0.6, 0.9)] for n in original})
    knee = allocate_by_latency(model, SHAPE, slow, 0.5 * base, roundings=(1,), cost_fn=sensitivity_cost(sens))
    assert not knee.met and knee.floor_ms is not None and knee.floor_ms < knee.predicted_ms < base
    target = HardwareTarget(slow, base_ms=base, target_ms=0.5 * base, allocation=knee)
    assert target.fit_target_ms == knee.predicted_ms
    fitted, ms = target.fit(model, latency_policy(knee), SHAPE)
    assert widths(fitted) == knee.widths and ms == pytest.approx(knee.predicted_ms)
    # fitted to the unreachable target itself, it would go to the knee of its own multiplier path
    chased, _ = fit_to_latency(model, latency_policy(knee), SHAPE, slow, 0.5 * base)
    assert widths(chased) != knee.widths


def test_an_allocation_measured_under_the_target_is_the_start_of_the_next():
    """After an allocation timed well under the target, the next one gives channels back to it
    (a fresh allocation for the looser target may cut another layer instead)."""
    from slimnas.compress._hardware import _allocate, _Evaluator, _measured, channel_importance

    model, pred = mnist1d_paper_cnn().eval(), macs_table()
    ev = _Evaluator(model, SHAPE, pred, 64, "fp32")
    importance = channel_importance(model, list(ev.original))
    base = ev(dict(ev.original))
    first = _allocate(ev, importance, 0.3 * base, 1, 0.9, None)["widths"]
    later = _allocate(ev, importance, 0.6 * base, 1, 0.9, None, start=first)
    again = later["widths"]
    assert all(again[n] >= first[n] for n in first) and again != first and later["predicted_ms"] <= 0.6 * base
    starts, shares = [], iter([0.3, 0.5])

    def allocate(goal, start):
        starts.append(start)
        widths = first if start is None else again
        return {"widths": widths, "predicted_ms": ev(widths), "rounding": 1,
                "cost": sum(ev.original[n] - w for n, w in widths.items())}

    kept, share, checks = _measured(allocate, 0.5 * base, 0.5, lambda w: next(shares), 3, prefer=lambda c: c["cost"])
    assert starts[0] is None and starts[1]["widths"] == first  # the second starts from the first, timed under
    assert kept["widths"] == again and share == 0.5 and len(checks) == 2


def test_measured_share_times_a_pruned_copy_against_the_original_here():
    model = mnist1d_paper_cnn().eval()
    share = measured_share(model, SHAPE, batch=1, rounds=1, repeats=5)
    original = {lay.name: lay.out_channels for lay in list_prunable_layers(model, SHAPE)}
    for widths in (original, {n: w // 2 for n, w in original.items()}):
        got = share(widths)
        assert 0 < got < 10 and math.isfinite(got)  # a ratio (no claim on which is faster: timing is noisy)


def test_an_out_of_reach_latency_budget_keeps_the_best_trade_at_the_knee_not_the_fastest():
    """No policy meets a latency limit pruning cannot reach: the one kept is the best trade by
    the knee's rule (accuracy share minus latency share of the input model), among the trials
    that meet every other budget; the least violation would keep the fastest at any accuracy."""
    import optuna

    from slimnas.measure import Budget
    from slimnas.study import pareto_front
    from slimnas.study._hardware import knee_choice

    before = {"val_accuracy": 0.9, "latency_ms": 1.0, "macs": 1000}
    budgets = (Budget.parse("latency_ms<=0.5"), Budget.parse("macs<=800"))

    def trial(number, acc, ms, macs=700, state=optuna.trial.TrialState.COMPLETE):
        done = state == optuna.trial.TrialState.COMPLETE
        t = optuna.trial.create_trial(value=acc if done else None, state=state, user_attrs={
            "metrics": {"val_accuracy": acc, "latency_ms": ms, "macs": macs}})
        t.number = number
        return t

    trials = [trial(0, 0.45, 0.80),  # fastest: 0.50 - 0.80 = -0.30
              trial(1, 0.88, 0.90),  # 0.978 - 0.90 = 0.078: the best trade
              trial(2, 0.90, 0.95),  # 1.0 - 0.95 = 0.05
              trial(3, 0.99, 0.85, macs=900),  # the best score, but over the MAC budget: not a candidate
              trial(4, 0.99, 0.60, state=optuna.trial.TrialState.FAIL)]
    front, closest = pareto_front(trials, ("accuracy",), budgets, n_closest=1)
    assert not front and closest[0].number == 0  # least violation: the fastest, at half the accuracy
    best, figures = knee_choice(trials, budgets, before)
    assert best.number == 1 and figures["n_candidates"] == 3
    assert figures["latency_share"] == 0.9 and figures["val_share"] == pytest.approx(0.9778, abs=1e-4)
    # a trial with the same score later keeps the earlier; nothing within the other budgets: none
    assert knee_choice([*trials, trial(5, 0.88, 0.90)], budgets, before)[0].number == 1
    assert knee_choice([trials[3]], budgets, before) == (None, {})


# -- calibration from few models ------------------------------------------------------------------


def test_calibration_never_fits_a_negative_cost():
    """Four calibration models whose op counts run against their times: unconstrained least
    squares fitted per_op_ms -83.7 (scale 154478) on the report's profile and predicted
    nonsense for the next model; every fitted term is non-negative."""
    from slimnas.measure._predictor import calibrate

    rows = [(1.0, 0.5, 10), (2.0, 1.5, 5), (3.0, 2.8, 2), (4.0, 3.9, 1)]  # (measured ms, sum of ops, n_ops)
    terms = calibrate(rows, null_ms=0.01)
    assert terms.per_op_ms >= 0 and terms.model_ms >= 0 and terms.scale > 0
    for s, n in [(2.0, 40), (0.1, 30)]:  # models with more ops than any calibration one
        assert terms.model_ms + terms.scale * s + terms.per_op_ms * n > 0


def test_a_profile_whose_predictor_is_far_off_is_refused_by_search_and_flagged_by_show(tmp_path):
    from rich.console import Console

    pred = macs_table()
    pred.predict(mnist1d_paper_cnn(), SHAPE)  # fills its table
    far_off = {"1/fp32": {"spearman": 0.2, "within_10pct": 0.0, "within_15pct": 0.0, "mape": 20539.2, "n_models": 4}}
    prof = write_profile(DeviceProfile(name="few", table=tuple(pred.table.to_entries()), accuracy=far_off,
                                       overhead={k: v.to_dict() for k, v in pred.overhead.items()}),
                         tmp_path / "few.yaml")
    import slimnas
    from slimnas.cli._device import _print_accuracy

    with pytest.raises(ConfigError) as refused:  # the command line prints it as one line, exit 2
        slimnas.search(dataset="digits", device_profile=str(prof), objectives="accuracy,latency_ms", n_trials=2,
                       out=str(tmp_path / "run"))
    line = str(refused.value)
    assert len(line.splitlines()) == 1 and "2,053,920%" in line and "--n-calibration" in line, line
    assert not (tmp_path / "run").exists()
    console = Console(record=True, width=200)
    _print_accuracy(console, read_profile(prof))  # what `device profile` and `device show` print
    assert "too far off" in " ".join(console.export_text().split())
