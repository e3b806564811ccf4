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


ONE_STAGE_POSE = "openpose_coco"  # with --pose-stages 1 (pose_config() below): the smallest real layout


def pose_config():
    """The 1-stage COCO pose network (``openpose_coco_s1``): the first stage of the real layout."""
    from spot_edge.pose.network import with_stages

    return with_stages(ONE_STAGE_POSE, 1)


@functools.lru_cache(maxsize=None)
def small_pose_weights() -> Path:
    """Generated 1-stage OpenPose weights saved as a state dict file (output layers scaled so that
    the maps reach the parser's thresholds: tests/pose_networks.py)."""
    from pose_networks import scaled_random_network
    from spot_edge.pose.weights import save_pose_weights

    net = scaled_random_network(pose_config())
    return save_pose_weights(net.state_dict(), workdir() / "pose-weights" / "pose_1stage.safetensors")


@functools.lru_cache(maxsize=None)
def small_checkpoint() -> Path:
    """:func:`small_model` saved as a spot-edge checkpoint."""
    from spot_edge.model import save_checkpoint

    return save_checkpoint(small_model(), workdir() / "checkpoint" / "spot-small.safetensors")


@functools.lru_cache(maxsize=None)
def small_bundle(precision: str = "fp32") -> Path:
    """A bundle of :func:`small_model` and :func:`small_pose_weights` (``spot-edge export`` through
    the API; copy it before changing anything in it)."""
    from spot_edge.engines.bundle_export import export_bundle

    out = workdir() / f"bundle-{precision}"
    export_bundle(small_model(), small_pose_weights(), out, precision=precision, pose_config=pose_config(),
                  sources={"checkpoint": small_checkpoint().name})
    return out


@functools.lru_cache(maxsize=None)
def small_pose_graph(precision: str = "fp32") -> Path:
    """The pose graph of :func:`small_pose_weights` (traced at 32x32; height and width dynamic)."""
    from spot_edge.pose.network import OpenPoseBody
    from spot_edge.engines.pose_onnx_export import export_pose_onnx
    from spot_edge.pose.weights import load_pose_weights

    body = OpenPoseBody(pose_config())
    load_pose_weights(body, small_pose_weights())
    return export_pose_onnx(body, workdir() / "pose-graphs" / f"pose.{precision}.onnx", sample_hw=(32, 32),
                            precision=precision)
