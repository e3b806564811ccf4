"""TensorRT pose estimator: the seam for pose engines (not built yet).

What it will be (issue 13, second part): an engine built from the pose graph
(:func:`spot_edge.pose.onnx_export.export_pose_onnx`, fp16 by default) with optimisation
profiles over (batch, height, width) per target (e.g. height 368, widths 368..656), a sidecar
carrying :class:`~spot_edge.pose.onnx_export.PoseGraphInfo` plus the TensorRT version and GPU,
verified at load like the SPOT engines; ``_run`` binds ``image`` / ``pose_maps`` as torch CUDA
tensors and returns the maps on the GPU, so that :mod:`spot_edge.pose.device_parse` and
:func:`spot_edge.pose.crop.crop_people` keep the post-processing there.

TODO(issue 13 part 2): implement ``_run`` on the shared engine runtime once
``spot_edge.engines.trt_runtime`` runs engines with dynamic spatial profiles (today its runner is
specific to SPOT's two inputs and batch-only profiles).
"""

from __future__ import annotations

from pathlib import Path

from spot_edge.backends.base import BackendUnavailableError
from spot_edge.pose.estimators.base import PoseEstimator


class TensorRTPoseEstimator(PoseEstimator):
    """Placeholder of the TensorRT pose backend: raises :class:`BackendUnavailableError`."""

    backend = "tensorrt"

    def __init__(self, path: str | Path, device: str = "auto", **options) -> None:
        raise BackendUnavailableError(
            f"TensorRT pose engines are not supported yet ({path}); run the pose graph with "
            "backend='onnxruntime' (its TensorRT or CUDA execution provider on a GPU) or the weights with "
            "backend='pytorch'")

    def _run(self, x):  # pragma: no cover - never constructed
        raise NotImplementedError


__all__ = ["TensorRTPoseEstimator"]
