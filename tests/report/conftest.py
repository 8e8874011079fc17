"""Tiny finished runs the report, export and load tests read: a plain search and a joint
architecture x compression search (pruned, factorised and clustered members), each made once."""

from __future__ import annotations

import pytest
import yaml

import slimnas

PLAIN_BUDGET = "macs<=5000"
JOINT = {
    "data": {"dataset": "digits"},
    "objectives": ["accuracy", "macs"],
    "budget": ["macs<=1500"],
    "space": {
        "family": "cnn",
        "cnn": {"n_layers": 2, "channels": [12], "kernel": [3], "stride": [2], "head": ["gap"], "residual": [False]},
        # fp32 files: the measured model.onnx is then an exact oracle for the loaded model
        "compression": {"prune": {"low": 0.1, "high": 0.6}, "lowrank": [0.5], "cluster": [4], "precision": ["fp32"],
                        "finetune_epochs": 1, "final_epochs": 2},
    },
    "training": {"epochs": 2, "lr": 0.01, "optimizer": "adam"},
}


@pytest.fixture(scope="session")
def plain_run(tmp_path_factory, tiny_space):
    """Five trials on digits under a MAC budget some candidates miss (they are skipped)."""
    d = tmp_path_factory.mktemp("plain")
    cfg = {"data": {"dataset": "digits"}, "space": tiny_space, "budget": [PLAIN_BUDGET],
           "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"}}
    (d / "c.yaml").write_text(yaml.safe_dump(cfg))
    # seed 5: three front members and one candidate over the budget (skipped)
    return slimnas.search(d / "c.yaml", n_trials=5, seed=5, out=str(d / "plain"), name="plain")


@pytest.fixture(scope="session")
def joint_run(tmp_path_factory):
    """Three compressed candidates of one parent; front members get the final fine-tune and a
    sensitivity analysis."""
    d = tmp_path_factory.mktemp("joint")
    (d / "c.yaml").write_text(yaml.safe_dump(JOINT))
    return slimnas.search(d / "c.yaml", n_trials=3, seed=0, out=str(d / "joint"), name="joint")


@pytest.fixture(scope="session")
def infeasible_run(tmp_path_factory, tiny_space):
    """Two trained trials, neither within the budget: no front, only the closest."""
    d = tmp_path_factory.mktemp("infeasible")
    cfg = {"data": {"dataset": "digits"}, "space": tiny_space, "budget": ["macs<=10"], "skip_infeasible": False,
           "training": {"epochs": 1, "lr": 0.01, "optimizer": "adam"}}
    (d / "c.yaml").write_text(yaml.safe_dump(cfg))
    return slimnas.search(d / "c.yaml", n_trials=2, seed=0, out=str(d / "infeasible"), name="infeasible")


@pytest.fixture(scope="session")
def compress_outputs(tmp_path_factory, conv_net_file):
    """``{"policy": folder, "auto": folder}``: the outputs of ``slimnas compress --prune 0.5`` and
    of ``compress --auto`` (policy.json with per-layer decisions and their sensitivity), through
    the real command line on MNIST-1D."""
    import torch

    from slimnas.cli import main
    from slimnas.models._user import import_model

    d = tmp_path_factory.mktemp("compress")
    torch.manual_seed(0)
    net, _ = import_model(f"{conv_net_file}:build")
    torch.save(net.state_dict(), d / "net.pt")
    common = ["compress", "--model", f"{conv_net_file}:build", "--weights", str(d / "net.pt"), "--epochs", "1", "--quiet"]
    runs = {"policy": [*common, "--prune", "0.5", "--out", str(d / "policy")],
            "auto": [*common, "--auto", "--budget", "macs<=60%", "--n-trials", "2", "--final-epochs", "1",
                     "--out", str(d / "auto")]}
    for args in runs.values():
        try:
            main(args)
        except SystemExit as e:
            assert e.code in (0, None), args
    return {name: d / name for name in runs}
