"""The training loop end to end on a tiny synthetic set: steps, exact resume, evaluation, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from spot_edge.training.config import TrainConfig, apply_overrides
from spot_edge.training.loop import MODEL_FILE, TRAIN_STATE, train
from spot_edge.training.synthetic_dataset import SyntheticConfig, generate_sysu_like
from spot_edge.training.train_state import load_train_state


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop") / "sysu"
    generate_sysu_like(root, SyntheticConfig(num_train=6, num_val=0, num_test=3, images_per_camera=(2, 3),
                                             height=64, width=32, seed=11))
    return root


def _config(root, out_dir, preset="spot-small", **extra):
    data = {
        "model": {"preset": preset, "preprocessing": {"height": 64, "width": 32},
                  "relation_channels": [8, 8, 16, 16], "asr_key_dim": 8, "transformer_ffn_dim": 32},
        "data": {"dataset": "sysu", "root": str(root), "heatmap_size": [16, 8]},
        "sampler": {"num_ids": 3, "num_instances": 2, "batches_per_epoch": 1},
        "augment": {"pad": 2},
        "optim": {"lr": 0.01, "warmup_epochs": 1, "milestones": [1], "epochs": 2, "backbone_lr_factor": 0.1},
        "run": {"out_dir": str(out_dir), "seed": 5, "device": "cpu", "log_every": 1, "threads": 1},
    }
    return TrainConfig.from_dict(apply_overrides(data, [f"{k}={v}" for k, v in extra.items()]))


def _weights(out_dir):
    from safetensors.torch import load_file

    return load_file(str(out_dir / MODEL_FILE))


def test_interrupted_run_resumes_exactly(tiny_root, tmp_path):
    straight = tmp_path / "straight"
    summary = train(_config(tiny_root, straight), show_progress=False, evaluate_at_end=False)
    assert summary["epochs_done"] == 2
    split = tmp_path / "split"
    first = train(_config(tiny_root, split), max_epochs=1, show_progress=False)
    assert first["epochs_done"] == 1 and "results" not in first
    state = load_train_state(split / TRAIN_STATE)
    assert state["epoch"] == 1 and {"optimizer", "schedule", "sampler", "rng"} <= set(state)
    assert not list(split.rglob("*.pt"))  # no pickle anywhere in the run folder
    second = train(_config(tiny_root, split), show_progress=False, evaluate_at_end=False)
    assert second["epochs_done"] == 2
    a, b = _weights(straight), _weights(split)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    records = [json.loads(line) for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [0, 1]
    assert (split / "metrics.png").stat().st_size > 1000
    assert [h["total"] for h in first["history"]] == [h["total"] for h in summary["history"][:1]]


def test_baseline_trains_and_evaluates_with_the_protocol(tiny_root, tmp_path):
    out = tmp_path / "base"
    summary = train(_config(tiny_root, out, preset="baseline-small", **{"optim.epochs": 1}), show_progress=False)
    results = summary["results"]
    assert set(results) == {"SYSU-MM01 all-search", "SYSU-MM01 indoor-search"}
    r = results["SYSU-MM01 all-search"]
    assert len(r["trials"]) == 10 and 0 <= r["mAP"] <= 1 and len(r["cmc"]) == 20
    saved = json.loads((out / "results.json").read_text())
    assert saved["SYSU-MM01 all-search"]["R-1"] == pytest.approx(r["R-1"])


def test_evaluation_refuses_a_missing_checkpoint(tmp_path):
    from spot_edge.training.evaluation import checkpoint_embedder, evaluate_regdb

    with pytest.raises(FileNotFoundError, match="untrained"):
        checkpoint_embedder(tmp_path / "nope.safetensors")
    (tmp_path / "idx").mkdir()
    for mod in ("visible", "thermal"):  # a complete RegDB test list for split 3, images present
        (tmp_path / f"{mod}.bmp").write_bytes(b"x")
        (tmp_path / "idx" / f"test_{mod}_3.txt").write_text(f"{mod}.bmp 1\n")
    with pytest.raises(FileNotFoundError, match="split3"):
        evaluate_regdb(lambda s: checkpoint_embedder(tmp_path / f"split{s}" / "model.safetensors"), tmp_path, [3])


def test_resume_refuses_a_changed_model(tiny_root, tmp_path):
    out = tmp_path / "changed"
    train(_config(tiny_root, out), max_epochs=1, show_progress=False)
    with pytest.raises(ValueError, match="model config changed"):
        train(_config(tiny_root, out, **{"model.num_parts": 3}), show_progress=False)


@pytest.mark.slow
def test_ddp_two_processes_gloo(tiny_root, tmp_path):
    out = tmp_path / "ddp"
    cfg = _config(tiny_root, out, **{"optim.epochs": 1, "sampler.batches_per_epoch": 2})
    path = tmp_path / "ddp.yaml"
    cfg.save(path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "spot_edge.cli.train", "train", "-c", str(path), "--quiet", "--no-evaluate"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = load_train_state(out / TRAIN_STATE)
    assert state["epoch"] == 1 and len(state["rng"]) == 2
    assert (out / MODEL_FILE).is_file()
