"""Export the pose network to ONNX (dynamic batch, height and width) and check it with onnxruntime.

The graph is :class:`~spot_edge.pose.network.PoseMapsNet`: input ``image`` ``(B, 3, H, W)``
(normalised BGR / 256 - 0.5, or raw BGR [0, 255] with ``normalize=True``), H and W multiples of 8;
output ``pose_maps`` ``(B, 56, H/8, W/8)`` (clamped to [0, 1] / [-1, 1] like ``PoseEstimator``
unless ``clamp=False``). Exported with the TorchScript-based exporter
(``dynamo=False``), which needs no ``onnxscript``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from spot_edge.pose.network import OpenPoseBody, PoseMapsNet, RandomWeightsWarning

INPUT_NAME = "image"
OUTPUT_NAME = "pose_maps"


def export_pose_onnx(model: OpenPoseBody, path: str | Path, sample_hw: tuple[int, int] = (368, 368),
                     normalize: bool = False, opset: int = 17, clamp: bool = True) -> Path:
    """Write ``model`` as ONNX with dynamic ``batch``, ``height`` and ``width``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = sample_hw
    if h % 8 or w % 8:
        raise ValueError(f"sample size must be a multiple of 8, got {sample_hw}")
    net = PoseMapsNet(model, normalize=normalize, clamp=clamp).eval()
    sample = torch.zeros(1, 3, h, w)
    if not model.weights_loaded:
        warnings.warn("exporting a pose network without pretrained weights (random maps)", RandomWeightsWarning,
                      stacklevel=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)  # said once above, not once per trace
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter announces itself
        torch.onnx.export(
            net, (sample,), str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                          OUTPUT_NAME: {0: "batch", 2: "height_8", 3: "width_8"}},
            opset_version=opset, dynamo=False)
    return path


def onnxruntime_session(path: str | Path, providers: list[str] | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers or ["CPUExecutionProvider"])


def check_onnx_parity(model: OpenPoseBody, path: str | Path, inputs: list[torch.Tensor],
                      atol: float = 1e-4, normalize: bool = False, clamp: bool = True) -> float:
    """Max abs difference between PyTorch and onnxruntime over ``inputs``; raises if above ``atol``."""
    sess = onnxruntime_session(path)
    net = PoseMapsNet(model, normalize=normalize, clamp=clamp).eval()
    worst = 0.0
    for x in inputs:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            ref = net(x).numpy()
        got = sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy().astype(np.float32)})[0]
        if got.shape != ref.shape:
            raise AssertionError(f"ONNX output shape {got.shape} != PyTorch {ref.shape} for input {tuple(x.shape)}")
        worst = max(worst, float(np.abs(got - ref).max()))
    if worst > atol:
        raise AssertionError(f"ONNX and PyTorch differ by {worst:.3g} > {atol}")
    return worst


__all__ = ["INPUT_NAME", "OUTPUT_NAME", "export_pose_onnx", "onnxruntime_session", "check_onnx_parity"]
