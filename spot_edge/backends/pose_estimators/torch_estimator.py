"""PyTorch pose estimator: the reference, on the CPU or a CUDA GPU (optionally FP16)."""

from __future__ import annotations

import torch

from spot_edge.backends.base import BackendUnavailableError
from spot_edge.device import resolve_device
from spot_edge.backends.pose_estimators.base import PoseEstimator
from spot_edge.pose.network import OpenPoseBody, PoseNetConfig, select_pose_maps


class TorchPoseEstimator(PoseEstimator):
    """Run :class:`~spot_edge.pose.network.OpenPoseBody` in PyTorch.

    Args:
        model: the network (default: a new ``config`` network, without weights: use
            :meth:`from_weights`).
        config: network configuration when ``model`` is None.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        fp16: half-precision weights and compute (CUDA only); maps are returned as float32.
        clamp: return maps clamped to OpenPose's output ranges instead of the raw maps.
        max_batch: frames run at once.
        threads: ``torch.set_num_threads`` for CPU inference (None: leave as is).
    """

    backend = "pytorch"

    def __init__(self, model: OpenPoseBody | None = None, config: str | PoseNetConfig = "openpose_coco",
                 device: str | torch.device = "auto", fp16: bool = False, clamp: bool = False, max_batch: int = 8,
                 threads: int | None = None) -> None:
        self.model = model if model is not None else OpenPoseBody(config)
        if not isinstance(self.model, OpenPoseBody):
            raise TypeError(f"TorchPoseEstimator needs an OpenPoseBody, got {type(self.model).__name__}")
        self.device = resolve_device(device)
        if fp16 and self.device.type != "cuda":
            raise BackendUnavailableError("fp16 needs a CUDA device; on the CPU use fp32 (or the onnxruntime "
                                          "backend, faster on the CPU)")
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.fp16 = bool(fp16)
        self.clamp = bool(clamp)
        self.max_batch = int(max_batch)
        self.model.to(self.device).eval()
        if fp16:
            self.model.half()
        self.config_name = self.model.config.name
        self.num_stages = self.model.config.num_stages
        self._fingerprint: str | None = None

    @classmethod
    def from_weights(cls, path, config: str | PoseNetConfig = "openpose_coco", device: str | torch.device = "auto",
                     **options) -> "TorchPoseEstimator":
        """Load ``body_pose_model.pth`` / ``.caffemodel`` / ``.safetensors`` into a ``config`` network."""
        from spot_edge.pose.weights import load_pose_weights

        model = OpenPoseBody(config)
        load_pose_weights(model, path)
        return cls(model, device=device, **options)

    @property
    def weights_fingerprint(self) -> str:
        if self._fingerprint is None:
            from spot_edge.engines.pose_metadata import RANDOM_WEIGHTS
            from spot_edge.pose.weights import pose_weights_fingerprint

            self._fingerprint = (pose_weights_fingerprint({k: v.float() for k, v in self.model.state_dict().items()})
                                 if self.model.weights_loaded else RANDOM_WEIGHTS)
        return self._fingerprint

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp16:
            x = x.half()
        paf, heat = self.model(x)
        return select_pose_maps(paf, heat, clamp=self.clamp).float()

    def describe(self) -> dict:
        return {**super().describe(), "precision": "fp16" if self.fp16 else "fp32", "clamp": self.clamp}


__all__ = ["TorchPoseEstimator"]
