"""The training state without pickle: exact round trip of every kind of value a resume needs,
refusal of anything that is not such a file (a pickle is never unpickled)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from spot_edge.training.run_context import rng_state, set_rng_state
from spot_edge.training.train_state import (LEGACY_TRAIN_STATE, TRAIN_STATE, TrainStateError, load_train_state,
                                            refuse_legacy_state, save_train_state, train_state_epoch)
from training_helpers import crafted_pickle


def test_optimizer_and_values_round_trip_exactly(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1, "name": "a"},
                           {"params": model[1].parameters(), "lr": 0.01}], momentum=0.9, nesterov=True)
    model(torch.randn(5, 3)).square().sum().backward()
    opt.step()
    state = {"epoch": 3, "model": model.state_dict(), "optimizer": opt.state_dict(),
             "values": {"tuple": (1, (2.5, None)), "int_keys": {7: "x", 1: [True]}, "nan": float("nan"),
                        "third": 1 / 3, "array": np.arange(5, dtype=np.uint32)}}
    path = save_train_state(tmp_path / TRAIN_STATE, state)
    back = load_train_state(path)
    assert back["epoch"] == 3 and train_state_epoch(path) == 3
    for k, v in model.state_dict().items():
        assert torch.equal(back["model"][k], v) and back["model"][k].dtype == v.dtype
    fresh = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1, "name": "a"},
                             {"params": model[1].parameters(), "lr": 0.01}], momentum=0.9, nesterov=True)
    fresh.load_state_dict(back["optimizer"])
    for group_a, group_b in zip(fresh.state_dict()["state"].values(), opt.state_dict()["state"].values()):
        assert torch.equal(group_a["momentum_buffer"], group_b["momentum_buffer"])
    values = back["values"]
    assert values["tuple"] == (1, (2.5, None)) and values["int_keys"] == {7: "x", 1: [True]}
    assert math.isnan(values["nan"]) and values["third"] == 1 / 3
    assert values["array"].dtype == np.uint32 and values["array"].tolist() == [0, 1, 2, 3, 4]


def test_rng_states_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_train_state(tmp_path / "s.safetensors", {"epoch": 1, "rng": [rng_state()]})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(load_train_state(tmp_path / "s.safetensors")["rng"][0])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


@pytest.mark.parametrize("content", [b"", b"not a state", crafted_pickle("marker")])
def test_anything_else_is_refused_without_running_it(tmp_path, monkeypatch, content):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "state.safetensors").write_bytes(content)
    with pytest.raises(TrainStateError, match="not a readable"):
        load_train_state(tmp_path / "state.safetensors")
    assert train_state_epoch(tmp_path / "state.safetensors") is None
    assert not (tmp_path / "marker").exists()


def test_a_safetensors_file_of_another_kind_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(TrainStateError, match="not a spot-edge training state"):
        load_train_state(tmp_path / "other.safetensors")


def test_a_legacy_pickle_is_refused_unless_a_new_state_exists(tmp_path):
    legacy = tmp_path / LEGACY_TRAIN_STATE
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(crafted_pickle(tmp_path / "marker"))
    with pytest.raises(TrainStateError, match="pickle"):
        refuse_legacy_state(tmp_path)
    save_train_state(tmp_path / TRAIN_STATE, {"epoch": 1})
    refuse_legacy_state(tmp_path)  # the new state is used; the pickle is never opened
    assert not (tmp_path / "marker").exists()
