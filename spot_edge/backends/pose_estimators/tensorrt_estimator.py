"""TensorRT pose estimator: a pose engine on the engines' one runtime, maps left on the GPU.

The engine is built from the pose graph (:func:`spot_edge.engines.pose_onnx_export.export_pose_onnx`,
fp16 for Jetsons) by ``spot-edge build-engine`` (or ``spot-edge export --engines``) with
optimisation profiles over (batch, height, width) per target (e.g. 368 high, 368 to 656 wide).
Its sidecar carries :class:`~spot_edge.engines.pose_metadata.PoseGraphInfo` (weights fingerprint,
input spec, precision) plus the TensorRT version and the GPU, verified before deserialising, like
the SPOT engines (:class:`~spot_edge.engines.trt_runtime.TrtEngine`, which the TensorRT
``Embedder`` uses too). ``_run`` feeds the frames as torch tensors on the GPU and returns the maps
there, so that :mod:`spot_edge.pose.device_parse` and :func:`spot_edge.pose.crop.crop_people`
keep the post-processing on the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from spot_edge.backends.base import BackendUnavailableError
from spot_edge.backends.pose_estimators.base import PoseEstimator


class TensorRTPoseEstimator(PoseEstimator):
    """Run a pose engine (``.engine`` / ``.plan`` with its ``.json`` sidecar).

    Args:
        path: the engine.
        device: ``"cuda"``/``"cuda:N"`` (``"auto"`` = ``"cuda"``; tests use ``"cpu"`` with the
            TensorRT double).
        expected_fingerprint: refuse an engine built from other weights (e.g. a bundle's manifest).
        plugin_libraries: plugin libraries (none for the pose network).
        gpu: override GPU detection (tests).

    ``max_batch`` comes from the engine's profiles; frame sizes outside every profile are refused.
    """

    backend = "tensorrt"

    def __init__(self, path: str | Path, device: str = "auto", expected_fingerprint: str | None = None,
                 plugin_libraries: Sequence[str | Path] = (), gpu=None) -> None:
        from spot_edge.engines.trt_compat import TensorRTUnavailableError, import_tensorrt
        from spot_edge.engines.trt_pose_runner import TrtPoseRunner

        try:
            import_tensorrt()
        except TensorRTUnavailableError as exc:
            raise BackendUnavailableError(str(exc)) from exc
        self.path = Path(path)
        self.runner = TrtPoseRunner(self.path, "cuda" if device == "auto" else device, plugin_libraries, gpu)
        self.info = self.runner.info
        self.info.check(expected_fingerprint, source=str(self.path))
        self.device = self.runner.device
        self.normalized_input = self.info.normalization == "outside"
        self.config_name = self.info.config_name
        self.num_stages = self.info.num_stages
        self.stride = self.runner.stride
        self.max_batch = self.runner.max_batch

    @property
    def weights_fingerprint(self) -> str:
        return self.info.weights_fingerprint

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.runner.run(x)

    def describe(self) -> dict:
        return {**super().describe(), "precision": self.runner.metadata.precision, "model": str(self.path),
                "profiles": [p.to_list() for p in self.runner.profiles]}

    def close(self) -> None:
        self.runner.close()


__all__ = ["TensorRTPoseEstimator"]
