"""Shared, cached artifacts for the engines/backends tests (one export per test process)."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

SMALL = "spot-small"


@functools.lru_cache(maxsize=None)
def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="spot-edge-engines-tests-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.lru_cache(maxsize=None)
def small_model():
    """A randomly initialised ``spot-small`` SPOT in eval mode (BN statistics randomised)."""
    from spot_edge.model import SPOT, preset

    torch.manual_seed(1234)
    model = SPOT(preset(SMALL))
    with torch.no_grad():  # non-trivial BN statistics, so a wrong BN handling would show
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@functools.lru_cache(maxsize=None)
def small_exports() -> dict[str, Path]:
    """``{modality: path}`` of both ``spot-small`` graphs, prefix ``<workdir>/small/spot``."""
    from spot_edge.engines import export_both

    return export_both(small_model(), workdir() / "small" / "spot")


def small_prefix() -> Path:
    small_exports()
    return workdir() / "small" / "spot"


def random_inputs(config, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(images, heatmaps)`` float32 at the config's export sizes (never zeros)."""
    rng = np.random.default_rng(seed)
    h, w = config.preprocessing.size
    hs, ws = config.preprocessing.heatmap_size
    images = rng.standard_normal((batch, 3, h, w)).astype(np.float32)
    heatmaps = rng.random((batch, config.num_pose_maps, hs, ws)).astype(np.float32)
    return images, heatmaps


def torch_reference(model, images: np.ndarray, heatmaps: np.ndarray, modality: str) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(images), torch.from_numpy(heatmaps), modality).numpy()
