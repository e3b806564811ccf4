"""Helpers for the training tests: a tiny synthetic set made once, copied into a test's working
directory; a tiny model configuration; a crafted pickle; running a command and reading its error."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from spot_edge.cli.train import app

runner = CliRunner()

#: A SPOT-small too small to take time (64x32 inputs, narrow heads), for command tests.
TINY_MODEL = {"preset": "spot-small", "preprocessing": {"height": 64, "width": 32},
              "relation_channels": [8, 8, 16, 16], "asr_key_dim": 8, "transformer_ffn_dim": 32}


def tiny_config(root: str = "data/s", out_dir: str = "runs/t", preset: str = "baseline-small", epochs: int = 1,
                **sections) -> dict:
    """A training configuration (a mapping) for the tiny set, with relative paths."""
    cfg = {
        "model": {**TINY_MODEL, "preset": preset},
        "data": {"dataset": "sysu", "root": root, "heatmap_size": [16, 8]},
        "sampler": {"num_ids": 2, "num_instances": 1, "batches_per_epoch": 1},
        "augment": {"pad": 2},
        "optim": {"lr": 0.01, "warmup_epochs": 1, "milestones": [1], "epochs": epochs},
        "run": {"out_dir": out_dir, "seed": 1, "device": "cpu", "threads": 1, "eval_trials": 1},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    return cfg


def write_config(path: str | Path, cfg: dict) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def make_tiny_set(folder: Path) -> Path:
    """A 4 + 2 identity synthetic set (64x32, 1-2 images per camera) at ``folder``."""
    from spot_edge.training.synthetic_dataset import SyntheticConfig, generate_sysu_like

    generate_sysu_like(folder, SyntheticConfig(num_train=4, num_val=0, num_test=2, images_per_camera=(1, 2),
                                               height=64, width=32, seed=7))
    return folder


def copy_set(source: Path, target: str | Path = "data/s") -> Path:
    """Copy a set made by :func:`make_tiny_set` to ``target`` (relative to the working directory)."""
    shutil.copytree(source, target)
    return Path(target)


class MarkerPayload:
    """Unpickling this creates the file ``marker`` (what a malicious pickle could do)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_pickle(marker: str | Path) -> bytes:
    """A pickle whose loading creates ``marker`` (absolute path)."""
    return pickle.dumps(MarkerPayload(str(Path(marker).resolve())), protocol=2)


def invoke(args: list[str]):
    """Run a training command in-process (in the current working directory)."""
    return runner.invoke(app, args)


def error_line(result) -> str:
    """The one ``error: ...`` line a refused command printed (asserts there is exactly one line
    on stderr and no traceback)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]
