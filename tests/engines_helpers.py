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
def small_exports(precision: str = "fp32") -> dict[str, Path]:
    """``{modality: path}`` of both ``spot-small`` graphs in ``precision``, prefix
    ``<workdir>/small-<precision>/spot`` (int8: calibrated on :func:`calibration_batches`)."""
    from spot_edge.engines import export_both

    calibration = {m: calibration_batches(m) for m in ("visible", "infrared")} if precision == "int8" else None
    return export_both(small_model(), _prefix(precision), precision=precision, calibration=calibration)


def _prefix(precision: str) -> Path:
    return workdir() / f"small-{precision}" / "spot"


def small_prefix(precision: str = "fp32") -> Path:
    """The prefix of :func:`small_exports` (exporting them first)."""
    small_exports(precision)
    return _prefix(precision)


def calibration_batches(modality: str = "visible", batches: int = 2, batch: int = 4) -> list:
    """Deterministic calibration batches for ``spot-small`` (different per modality)."""
    config = small_model().config
    return [random_inputs(config, batch, seed=100 * i + (modality == "infrared")) for i in range(batches)]


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


@functools.lru_cache(maxsize=None)
def tiny_synthetic() -> Path:
    """A tiny synthetic SYSU-layout set (3 training, 4 test identities, every camera), with keypoints."""
    from spot_edge.training.synthetic_dataset import SyntheticConfig, generate_sysu_like

    root = workdir() / "tiny-synthetic"
    generate_sysu_like(root, SyntheticConfig(num_train=3, num_val=0, num_test=4, images_per_camera=(1, 2),
                                             camera_presence=1.0, supersample=1))
    return root


@functools.lru_cache(maxsize=None)
def small_plugin_exports() -> dict[str, Path]:
    """``{modality: path}`` of both ``spot-small`` graphs with TensorRT plugin nodes."""
    from spot_edge.engines import export_onnx

    return {m: export_onnx(small_model(), workdir() / "small-plugins" / f"p.{m}.onnx", m, plugins=True)
            for m in ("visible", "infrared")}
