"""The training commands as users type them: relative paths from a fresh working directory, the
README's flow (make-synthetic -> build-heatmaps -> train -> evaluate), interruption, --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spot_edge.training.loop import MODEL_FILE, TRAIN_STATE, Trainer
from training_helpers import error_line, invoke, make_tiny_set, tiny_config, write_config


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_tiny_set(tmp_path_factory.mktemp("cli") / "s")


def test_readme_flow_with_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(["make-synthetic", "data/s", "--train-ids", "4", "--val-ids", "0", "--test-ids", "2",
                "--images", "1-2", "--size", "64x32", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "data/s/exp/test_id.txt").is_file() and (tmp_path / "data/s/synthetic.json").is_file()
    r = invoke(["build-heatmaps", "--root", "data/s", "--out", "caches/s16x8", "--size", "16x8"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["map_size"] == [16, 8] and info["entries"] > 0 and (tmp_path / "caches/s16x8/manifest.json").is_file()
    # the YAML's paths and the --set paths are relative to the working directory
    write_config("cfg.yaml", tiny_config(root="data/s", out_dir="runs/yaml", preset="spot-small"))
    r = invoke(["train", "-c", "cfg.yaml", "--set", "run.out_dir=runs/set", "-q"])
    assert r.exit_code == 0, r.output
    run = tmp_path / "runs/set"
    assert (run / MODEL_FILE).is_file() and (run / TRAIN_STATE).is_file() and (run / "results.json").is_file()
    assert not (tmp_path / "runs/yaml").exists()
    assert (tmp_path / "data/s/heatmap_cache_16x8_uint8/manifest.json").is_file()
    r = invoke(["evaluate", "--checkpoint", "runs/set/model.safetensors", "--root", "data/s",
                "--heatmap-cache", "caches/s16x8", "--mode", "all", "--trials", "2", "--output", "out/r.json"])
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "out/r.json").read_text())
    assert len(saved["SYSU-MM01 all-search"]["trials"]) == 2
    # without --heatmap-cache: the one cache training built under the root, same figures
    r = invoke(["evaluate", "--checkpoint", "runs/set/model.safetensors", "--root", "data/s", "--mode", "all",
                "--trials", "2", "--output", "out/default.json"])
    assert r.exit_code == 0, r.output
    again = json.loads((tmp_path / "out/default.json").read_text())["SYSU-MM01 all-search"]
    assert again["mAP"] == saved["SYSU-MM01 all-search"]["mAP"]
    # two caches under the root: which one is the user's to say
    (tmp_path / "data/s/heatmap_cache_other").mkdir()
    r = invoke(["evaluate", "--checkpoint", "runs/set/model.safetensors", "--root", "data/s", "--mode", "all"])
    assert r.exit_code == 2 and "--heatmap-cache" in error_line(r)


def test_a_run_folder_given_relative_resumes(tmp_path, monkeypatch, tiny_set):
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_set, "data/s")
    write_config("cfg.yaml", tiny_config(epochs=2))
    r = invoke(["train", "-c", "cfg.yaml", "--max-epochs", "1", "-q", "--no-evaluate"])
    assert r.exit_code == 0, r.output
    assert "1 epochs done" in r.stdout
    r = invoke(["train", "-c", "cfg.yaml", "-q", "--no-evaluate"])
    assert r.exit_code == 0, r.output
    assert "2 epochs done" in r.stdout and "resumed" not in r.stderr  # -q: no progress lines


def test_interrupted_quiet_train_says_where_the_checkpoint_is(tmp_path, monkeypatch, tiny_set):
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_set, "data/s")
    write_config("cfg.yaml", tiny_config(epochs=3))
    original = Trainer.run_epoch

    def interrupted_in_epoch_two(self, epoch, progress):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch, progress)

    monkeypatch.setattr(Trainer, "run_epoch", interrupted_in_epoch_two)
    r = invoke(["train", "-c", "cfg.yaml", "-q"])
    assert r.exit_code == 130
    line = error_line(r)
    assert "interrupted" in line and "epoch 1/3" in line and str(tmp_path / "runs/t" / TRAIN_STATE) in line
    monkeypatch.setattr(Trainer, "run_epoch", original)
    r = invoke(["train", "-c", "cfg.yaml", "-q", "--no-evaluate"])
    assert r.exit_code == 0 and "3 epochs done" in r.stdout, r.output


def test_make_synthetic_force_replaces_the_whole_tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--val-ids", "0", "--images", "1-1", "--size", "64x32", "--workers", "1"]
    assert invoke(["make-synthetic", "s", "--train-ids", "6", "--test-ids", "3", *args]).exit_code == 0
    old_ids = {p.name for p in Path("s").glob("cam*/*")}
    (tmp_path / "s" / "heatmap_cache_x").mkdir()  # something a training run added
    r = invoke(["make-synthetic", "s", "--train-ids", "2", "--test-ids", "1", *args])
    assert r.exit_code == 2 and "--force" in error_line(r)
    assert {p.name for p in Path("s").glob("cam*/*")} == old_ids  # refused: untouched
    r = invoke(["make-synthetic", "s", "--train-ids", "2", "--test-ids", "1", *args, "--force"])
    assert r.exit_code == 0, r.output
    ids = {p.name for p in Path("s").glob("cam*/*")}
    assert ids == {"0001", "0002", "0003"} and not (tmp_path / "s" / "heatmap_cache_x").exists()
    assert json.loads(Path("s/synthetic.json").read_text())["num_ids"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temporary folder left behind


def test_make_synthetic_never_deletes_a_folder_that_is_not_a_synthetic_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("photos").mkdir()
    Path("photos/holiday.jpg").write_bytes(b"precious")
    for force in ([], ["--force"]):
        r = invoke(["make-synthetic", "photos", "--train-ids", "2", "--test-ids", "1", *force])
        assert r.exit_code == 2 and "not a synthetic set" in error_line(r)
    assert Path("photos/holiday.jpg").read_bytes() == b"precious" and len(list(Path("photos").iterdir())) == 1


def test_help_has_examples():
    for command in ("train", "evaluate", "make-synthetic", "build-heatmaps"):
        r = invoke([command, "--help"])
        assert r.exit_code == 0 and "xample" in r.output


def test_build_heatmaps_from_openpose_files_with_relative_paths(tmp_path, monkeypatch, tiny_set):
    import shutil

    import numpy as np

    from spot_edge.pose.openpose_png import write_pose_heatmaps_png
    from spot_edge.training.heatmap_cache import HeatmapCache
    from spot_edge.training.synthetic_dataset import load_keypoints

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_set, "data/s")
    images = sorted(load_keypoints("data/s"))
    for i, rel in enumerate(images):
        maps = np.zeros((56, 8, 4), np.float32)
        maps[i % 18, 2, 1] = 1.0
        write_pose_heatmaps_png(Path("openpose") / (rel[:-4] + "_pose_heatmaps.png"), maps)
    r = invoke(["build-heatmaps", "--root", "data/s", "--out", "data/s/op_cache", "--source", "openpose-png",
                "--openpose-dir", "openpose", "--size", "8x4"])
    assert r.exit_code == 0, r.output
    cache = HeatmapCache("data/s/op_cache", "data/s")
    assert len(cache) == len(images)  # the cache folder inside the root is not listed as images
    assert cache.get(images[5])[5, 2, 1] > 0.9
