"""Bad input to the training commands (train, evaluate, make-synthetic, build-heatmaps): one
parametrised table per family, every case refused with exit code 2 and one useful line.

Every case runs in a fresh working directory holding a tiny synthetic set at ``data/s`` (and,
for evaluate, a checkpoint at ``runs/m.safetensors``), with relative paths, as a user types them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from training_helpers import copy_set, crafted_pickle, error_line, invoke, make_tiny_set, tiny_config, write_config


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_tiny_set(tmp_path_factory.mktemp("bad") / "s")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from spot_edge.model import SPOT, save_checkpoint
    from spot_edge.training.loop import build_spot_config

    cfg = tiny_config()["model"]
    path = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    save_checkpoint(SPOT(build_spot_config(cfg, 4)), path)
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch, tiny_set):
    monkeypatch.chdir(tmp_path)
    copy_set(tiny_set, "data/s")
    write_config("cfg.yaml", tiny_config())
    return tmp_path


def _refused(args: list[str], *fragments: str) -> str:
    result = invoke(args)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    for fragment in fragments:
        assert fragment in line, line
    return line


# ----------------------------------------------------------------- train: configuration values

@pytest.mark.parametrize("override, fragments", [
    ("optim.lr=fast", ["optim.lr must be a number", "'fast'"]),
    ("optim.lr=-0.1", ["optim.lr must be positive", "-0.1"]),
    ("optim.lr=.nan", ["optim.lr must be a finite number"]),
    ("optim.epochs=0", ["optim.epochs must be at least 1"]),
    ("optim.epochs=2.5", ["optim.epochs must be an integer", "2.5"]),
    ("optim.milestones=[5, 2]", ["optim.milestones"]),
    ("sampler.num_ids=1", ["sampler.num_ids must be at least 2"]),
    ("sampler.batches_per_epoch=0", ["sampler.batches_per_epoch"]),
    ("augment.flip=1.5", ["augment.flip must be in [0, 1]"]),
    ("augment.erasing_area=[0.5, 0.1]", ["augment.erasing_area"]),
    ("data.preload=maybe", ["data.preload must be true or false", "'maybe'"]),
    ("data.dataset=market1501", ["data.dataset must be one of sysu, regdb"]),
    ("data.regdb_split=11", ["data.regdb_split"]),
    ("run.seed=-1", ["run.seed must be at least 0"]),
    ("run.device=gpu", ["run.device", "'gpu'"]),
    ("optim.learning_rate=0.1", ["optim.learning_rate", "known:", "lr"]),
    ("optimizer.lr=0.1", ["unknown training config sections", "optimizer", "known:"]),
    ("model.num_parts=many", ["model.num_parts must be an integer", "'many'"]),
    ("model.num_part=3", ["model.num_part", "known:", "num_parts"]),
    ("model.preset=spot-huge", ["unknown preset", "spot-huge"]),
    ("model.relation_channels=[8, 8]", ["model.relation_channels must be a list of 4 integers"]),
    ("model.preprocessing.height=tall", ["model.preprocessing.height must be an integer"]),
    ("optim.lr=[1", ["--set optim.lr=[1", "not valid YAML"]),
    ("epochs=3", ["section.key=value"]),
])
def test_train_refuses_bad_config_values(workdir, override, fragments):
    _refused(["train", "-c", "cfg.yaml", "--set", override, "-q"], *fragments)


# ----------------------------------------------------------------- train: configuration files

@pytest.mark.parametrize("text, fragments", [
    ("optim:\n  lr: 0.1\n  epochs: [1, 2\n", ["bad.yaml:4", "YAML syntax error"]),
    ("optim:\n\tlr: 0.1\n", ["bad.yaml:2", "YAML syntax error"]),
    ("- optim\n- data\n", ["mapping of config sections"]),
    ("optim: 3\n", ["'optim' must be a mapping"]),
    ("model: spot\n", ["model must be a mapping"]),
    ("\x00\x01binary", ["bad.yaml"]),
])
def test_train_refuses_bad_config_files(workdir, text, fragments):
    Path("bad.yaml").write_text(text)
    _refused(["train", "-c", "bad.yaml", "-q"], *fragments)


# ----------------------------------------------------------------- train: paths, datasets, states

def _remove_infrared_of_a_training_id(root: Path) -> None:
    ids = [int(x) for x in (root / "exp" / "train_id.txt").read_text().strip().split(",")]
    for cam in (3, 6):
        shutil.rmtree(root / f"cam{cam}" / f"{ids[0]:04d}", ignore_errors=True)


def _pickle_at(path: str):
    def setup(root: Path) -> None:
        target = Path("runs/t") / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(crafted_pickle("marker"))
    return setup


@pytest.mark.parametrize("args, setup, fragments", [
    (["-c", "missing.yaml"], None, ["config file not found", "missing.yaml"]),
    (["-c", "cfg.yaml", "--set", "data.root=data/nowhere"], None, ["data/nowhere", "does not exist"]),
    (["--set", "model.preset=baseline-small"], None, ["data.root is not set"]),
    (["-c", "cfg.yaml"], lambda root: shutil.rmtree(root / "exp"), ["exp/train_id.txt"]),
    (["-c", "cfg.yaml"], lambda root: shutil.rmtree(root / "cam6"), ["cam6"]),
    (["-c", "cfg.yaml"], _remove_infrared_of_a_training_id, ["no image of one modality", "infrared"]),
    (["-c", "cfg.yaml"], lambda root: (root / "exp" / "train_id.txt").write_text("1,x\n"), ["integer ids"]),
    (["-c", "cfg.yaml", "--set", "run.imagenet_weights=w/resnet18.pth"], None, ["resnet18.pth"]),
    (["-c", "cfg.yaml", "--max-epochs", "0"], None, ["--max-epochs must be at least 1"]),
    (["-c", "cfg.yaml", "--set", "model.preset=spot-small", "--set", "data.heatmap_source=cache",
      "--set", "data.heatmap_cache=caches/none"], None, ["no heatmap cache", "caches/none"]),
    (["-c", "cfg.yaml"], _pickle_at("checkpoints/last.pt"), ["last.pt", "pickle", "--no-resume"]),
    (["-c", "cfg.yaml"], _pickle_at("checkpoints/train-state.safetensors"), ["train-state.safetensors",
                                                                            "not a readable"]),
])
def test_train_refuses_bad_paths_datasets_and_states(workdir, args, setup, fragments):
    if setup is not None:
        setup(workdir / "data/s")
    _refused(["train", *args, "-q"], *fragments)
    assert not Path("marker").exists()  # a crafted pickle was never unpickled


def test_the_crafted_pickle_would_run_code_if_loaded(tmp_path, monkeypatch):
    """The payload of the table above is real: unpickling it does create the marker."""
    import pickle

    monkeypatch.chdir(tmp_path)
    pickle.loads(crafted_pickle("marker"))
    assert Path("marker").exists()


# ----------------------------------------------------------------- evaluate

def _evaluate(*extra: str) -> list[str]:
    return ["evaluate", "--checkpoint", "runs/m.safetensors", "--root", "data/s", "--trials", "1", *extra]


def _drop_visible_of_a_test_id(root: Path) -> None:
    test_id = int((root / "exp" / "test_id.txt").read_text().strip().split(",")[0])
    for cam in (1, 2, 4, 5):
        shutil.rmtree(root / f"cam{cam}" / f"{test_id:04d}", ignore_errors=True)


def _regdb_with_missing_images(root: Path) -> None:
    (root / "idx").mkdir()
    for mod in ("visible", "thermal"):
        lines = [f"{mod}/{pid}/{n}.bmp {pid}" for pid in (1, 2) for n in range(2)]
        (root / "idx" / f"test_{mod}_1.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("args, setup, fragments", [
    (["evaluate", "--checkpoint", "runs/none.safetensors", "--root", "data/s"], None,
     ["runs/none.safetensors", "does not exist"]),
    (_evaluate("--root", "data/nowhere"), None, ["data/nowhere", "does not exist"]),
    (_evaluate("--dataset", "market"), None, ["--dataset must be one of sysu, regdb"]),
    (_evaluate("--mode", "outdoor"), None, ["--mode must be one of"]),
    (_evaluate("--trials", "0"), None, ["--trials must be at least 1"]),
    (_evaluate("--device", "gpu"), None, ["'gpu'"]),
    (_evaluate(), _drop_visible_of_a_test_id, ["1 test identities", "(visible)", "drop"]),
    (_evaluate("--heatmap-cache", "caches/none"), None, ["no heatmap cache", "caches/none"]),
    (["evaluate", "--dataset", "regdb", "--checkpoint", "runs/m.safetensors", "--root", "data/s"], None,
     ["{split}"]),
    (["evaluate", "--dataset", "regdb", "--checkpoint", "runs/m.safetensors", "--root", "data/s",
      "--splits", "0-3"], None, ["--splits", "1..10"]),
    (["evaluate", "--dataset", "regdb", "--checkpoint", "runs/m{split}.safetensors", "--root", "data/s",
      "--splits", "1,2"], None, ["2 of 2 split checkpoints do not exist"]),
    (["evaluate", "--dataset", "regdb", "--checkpoint", "runs/m.safetensors", "--root", "data/s",
      "--splits", "1"], None, ["missing RegDB index file", "test_visible_1.txt"]),
    (["evaluate", "--dataset", "regdb", "--checkpoint", "runs/m.safetensors", "--root", "data/s",
      "--splits", "1"], _regdb_with_missing_images, ["8 of the 8", "do not exist"]),
])
def test_evaluate_refuses_bad_input(workdir, tiny_checkpoint, args, setup, fragments):
    Path("runs").mkdir()
    shutil.copy(tiny_checkpoint, "runs/m.safetensors")
    if setup is not None:
        setup(workdir / "data/s")
    _refused(args, *fragments)


# ----------------------------------------------------------------- make-synthetic

_SMALL = ["--train-ids", "2", "--test-ids", "1", "--val-ids", "0", "--images", "1-1", "--size", "64x32"]


@pytest.mark.parametrize("args, fragments", [
    (["data/s", *_SMALL], ["already holds a synthetic set", "--force"]),
    (["cfg.yaml", *_SMALL], ["not a folder"]),
    (["data", *_SMALL], ["not a synthetic set"]),
    (["data", *_SMALL, "--force"], ["not a synthetic set", "even with --force"]),
    (["new", "--train-ids", "0"], ["--train-ids must be at least 1"]),
    (["new", "--val-ids", "-1"], ["--val-ids must be at least 0"]),
    (["new", "--images", "3-1"], ["--images", "3-1"]),
    (["new", "--images", "few"], ["--images", "'few'"]),
    (["new", "--size", "big"], ["--size must look like HxW", "'big'"]),
    (["new", "--size", "16x8"], ["too small"]),
    (["new", "--workers", "0"], ["--workers must be at least 1"]),
    (["new", "--seed", "-3"], ["--seed must be at least 0"]),
])
def test_make_synthetic_refuses_bad_input(workdir, args, fragments):
    before = sorted(str(p) for p in Path(".").rglob("*"))
    _refused(["make-synthetic", *args], *fragments)
    assert sorted(str(p) for p in Path(".").rglob("*")) == before  # nothing written, nothing deleted


# ----------------------------------------------------------------- build-heatmaps

@pytest.mark.parametrize("args, fragments", [
    (["--root", "data/nowhere", "--out", "c"], ["data/nowhere", "does not exist"]),
    (["--root", ".", "--out", "c"], ["keypoints", "does not exist"]),
    (["--root", "data/s", "--out", "c", "--source", "detector"], ["--source must be one of"]),
    (["--root", "data/s", "--out", "c", "--source", "openpose-png"], ["--openpose-dir"]),
    (["--root", "data/s", "--out", "c", "--source", "openpose-png", "--openpose-dir", "op"], ["op", "does not exist"]),
    (["--root", "data/s", "--out", "c", "--size", "0x4"], ["--size must be positive"]),
    (["--root", "data/s", "--out", "c", "--dtype", "int8"], ["--dtype must be one of uint8, float16"]),
])
def test_build_heatmaps_refuses_bad_input(workdir, args, fragments):
    _refused(["build-heatmaps", *args], *fragments)
    assert not Path("c").exists()
