"""--auto aimed at hardware: latency budgets timed on this machine or on a device profile's
runtime, int8-only devices, channel rounding under a MAC budget (a file apart from
test_joint.py, so the two test workers share the slowest --auto runs)."""

import json
import math

import pytest
import yaml

from slimnas.compress import CompressionPolicy
from slimnas.study import Listener, auto_compress


def test_auto_on_this_machine_times_its_latency_allocation(tmp_path, mnist1d_cnn):
    """With a latency budget and no profile, the target is this machine: the allocation that
    warm-starts the search is timed here as a file, and the report keeps what was timed."""
    _, model, data = mnist1d_cnn
    auto_compress(model, data, budget=["latency_ms<=60%"], n_trials=2, finetune_epochs=1, final_epochs=1,
                  hardware_aware=True, out=tmp_path / "auto", latency_repeats=5)
    alloc = json.loads((tmp_path / "auto" / "report.json").read_text())["hardware"]["allocation"]
    checks = alloc["checks"]
    assert 1 <= len(checks) <= 3 and all(c["measured_share"] > 0 for c in checks)
    assert alloc["measured_share"] in [c["measured_share"] for c in checks]
    kept = next(c for c in checks if c["measured_share"] == alloc["measured_share"])
    assert kept["widths"] == alloc["widths"]


def test_auto_times_latency_on_the_device_profiles_runtime(tmp_path, mnist1d_cnn):
    """A device profile says where the model runs: --auto times the input model, every policy
    and the final model on the profile's runtime, at its batch and threads (not ONNX Runtime at
    its defaults, where a relative latency budget would be judged on another runtime than the
    one its candidates are fitted to), and its report names that runtime."""
    from slimnas.measure import RUNTIMES
    from slimnas.measure._latency import TorchLatency

    _, model, data = mnist1d_cnn
    timed = []

    class Recorded(TorchLatency):
        # what the runtime is given is checked, not how precisely it times: a few calls each, on one
        # thread (two would contend with the other test worker for the machine's cores)
        def __init__(self, **kw):
            super().__init__(**{**kw, "warmup": 2, "repeats": 3, "min_time_ms": 0.0})

        def prepare(self, model, input_shape):
            threads, self.threads = self.threads, 1
            try:
                return super().prepare(model, input_shape)
            finally:
                self.threads = threads

        def measure_stats(self, model, input_shape):  # what the latency metric times with
            timed.append((self.batch_size, self.threads))
            return super().measure_stats(model, input_shape)

    RUNTIMES.register("torch-recorded")(Recorded)
    try:
        profile = tmp_path / "dev.yaml"
        profile.write_text(yaml.safe_dump({"name": "dev", "runtime": "torch-recorded", "threads": 2, "batch": [8],
                                           "precisions": ["fp32"]}))
        res = auto_compress(model, data, budget=["latency_ms<=70%"], device_profile=str(profile), n_trials=2,
                            finetune_epochs=1, final_epochs=1, refine_epochs=0, out=tmp_path / "auto",
                            latency_repeats=5)
    finally:
        RUNTIMES.unregister("torch-recorded")
    done = [t for t in res.study.trials if t.state.name == "COMPLETE"]
    # the input model, each policy and the final model, timed at the profile's batch and threads
    figures = [res.before, *(t.user_attrs["metrics"] for t in done), res.after]
    assert [(m["latency_ms_info"]["batch"], m["latency_ms_info"]["threads"]) for m in figures] == [(8, 2)] * len(figures)
    assert timed and set(timed) == {(8, 2)}
    report = json.loads((tmp_path / "auto" / "report.json").read_text())
    assert report["hardware"]["runtime"] == "torch-recorded"
    # the profile runs fp32 only: no layer is given int8, however fast ONNX Runtime's int8 is here
    precision = report["hardware"]["precision"]
    assert set(precision["layer_precision"].values()) == {"fp32"} and "int8 is not among" in precision["reason"]


def test_auto_on_an_int8_only_device_quantizes_every_layer(tmp_path, mnist1d_cnn):
    """The built-in microcontroller profile runs int8 only: the final model is int8 in every
    weighted layer, whatever whole-file timing here says of fp32."""
    _, model, data = mnist1d_cnn
    res = auto_compress(model, data, budget=["macs<=60%"], device_profile="mcu", n_trials=2, finetune_epochs=1,
                        final_epochs=1, refine_epochs=0, out=tmp_path / "auto", latency_repeats=5)
    precision = json.loads((tmp_path / "auto" / "report.json").read_text())["hardware"]["precision"]
    assert precision["layer_precision"] and set(precision["layer_precision"].values()) == {"int8"}
    assert precision["reason"].startswith("int8: the target runs int8 only")
    assert set(res.policy.options("quantize")["layer_precision"].values()) == {"int8"}


class Notes(Listener):
    """Keeps what a run notes, in ``lines``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, text, *, level="info"):
        self.lines.append(text)


def test_auto_under_a_latency_budget_out_of_reach_stops_at_the_knee(tmp_path, mnist1d_cnn):
    """5% of the latency is out of reach by pruning: the allocation says so, gives the floor, and
    keeps more channels than the most pruned allocation would; of the policies (none meets the
    budget) the one kept is the best trade by the knee's rule, not the fastest."""
    _, model, data = mnist1d_cnn
    notes = Notes()
    res = auto_compress(model, data, budget=["latency_ms<=5%"], n_trials=3, finetune_epochs=1, final_epochs=1,
                        hardware_aware=True, out=tmp_path / "auto", latency_repeats=5, listener=notes)
    report = json.loads((tmp_path / "auto" / "report.json").read_text())
    hardware = report["hardware"]
    alloc = hardware["allocation"]
    assert not alloc["met"] and alloc["floor_ms"] is not None and alloc["floor_ms"] > alloc["target_ms"]
    assert hardware["fit_target_predicted_ms"] == alloc["predicted_ms"]  # candidates aim at the knee, not the floor
    most = {n: max(1, math.ceil(w * 0.1)) for n, w in alloc["original"].items()}
    assert sum(alloc["widths"].values()) > sum(most.values())
    assert any("stops at the knee" in n for n in notes.lines)
    done = [t.user_attrs["metrics"] for t in res.study.trials if t.state.name == "COMPLETE"]
    scores = [m["val_accuracy"] / res.before["val_accuracy"] - m["latency_ms"] / res.before["latency_ms"] for m in done]
    chosen = hardware["chosen_out_of_reach"]
    assert chosen["rule"] == "knee" and chosen["n_candidates"] == len(done) == 3
    assert report["trial"] == chosen["trial"] == res.trial
    assert chosen["score"] == pytest.approx(max(scores), abs=1e-4)
    assert any("best trade at the knee" in n for n in notes.lines)


def test_auto_under_a_mac_budget_on_this_machine_chooses_a_rounding_and_keeps_the_budget(tmp_path, mnist1d_cnn):
    """``--hardware-aware`` under a MAC budget: each rounding's allocation at the budget is
    predicted (and the best timed) here; every trial's channel counts use the rounding kept and
    stay within the budget."""
    from slimnas.compress import list_prunable_layers, prune_ratios, pruned_model

    _, model, data = mnist1d_cnn
    notes = Notes()
    res = auto_compress(model, data, budget=["macs<=50%"], n_trials=3, finetune_epochs=1, final_epochs=1,
                        hardware_aware=True, out=tmp_path / "auto", latency_repeats=5, listener=notes)
    hw = json.loads((tmp_path / "auto" / "report.json").read_text())["hardware"]
    chosen = hw["mac_rounding"]
    assert [t["rounding"] for t in chosen["tried"]][0] == 1 and chosen["rounding"] in [t["rounding"] for t in chosen["tried"]]
    assert all(t["macs"] <= 0.5 * res.before["macs"] for t in chosen["tried"])
    assert (chosen["measured"] is not None) == (chosen["rounding"] > 1 or "timed" in chosen["reason"])
    said = "none" if chosen["rounding"] == 1 else f"multiples of {chosen['rounding']}"
    assert any(n.startswith(f"channel rounding under the MAC budget (batch 1): {said} (") for n in notes.lines)
    original = {lay.name: lay.out_channels for lay in list_prunable_layers(model, data.input_shape)}
    r = chosen["rounding"]
    assert res.after["macs"] <= 0.5 * res.before["macs"]
    for t in res.study.get_trials(deepcopy=False):
        if t.state.name != "COMPLETE":
            continue
        ratios = prune_ratios(CompressionPolicy.from_dict(t.user_attrs["policy"]))
        kept = {lay.name: lay.out_channels
                for lay in list_prunable_layers(pruned_model(model, ratios, data.input_shape), data.input_shape)}
        assert all(w % r == 0 or w == original[n] or original[n] <= r for n, w in kept.items())


def test_cli_auto_hardware_aware_targets_this_machine_under_a_mac_budget(tmp_path, cli_here, monkeypatch):

    (tmp_path / "mynet.py").write_text(
        "import torch\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Conv1d(1, 32, 5, 2, 2), torch.nn.ReLU(), torch.nn.Conv1d(32, 32, 3, 2, 1),\n"
        "                               torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(320, 10))\n")
    monkeypatch.chdir(tmp_path)
    r = cli_here("compress", "--model", "mynet.py:build", "--train-epochs", "2", "--auto", "--hardware-aware",
                 "--budget", "macs<=50%", "--n-trials", "1", "--epochs", "1", "--final-epochs", "1",
                 "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    hw = report["hardware"]
    assert hw["batch"] == 1 and hw["profile"] is None and hw["allocation"] is None
    tried = [t["rounding"] for t in hw["mac_rounding"]["tried"]]
    assert tried[0] == 1 and len(tried) > 1 and hw["mac_rounding"]["rounding"] in tried
    assert report["after"]["macs"] <= 0.5 * report["before"]["macs"]
    assert "on the target (batch 1)" in r.stdout
