"""The ``PoseEstimator`` interface: frames -> the 56 OpenPose maps, whatever runs the network.

It mirrors the :class:`~spot_edge.backends.base.Embedder`: one abstract class, one implementation
per backend (PyTorch, ONNX Runtime, TensorRT), :func:`~spot_edge.backends.pose_estimators.create_pose_estimator`
with ``backend="auto"``.
"""

from __future__ import annotations

import abc

import numpy as np
import torch

from spot_edge.errors import InputError
from spot_edge.pose.network import PAD_VALUE, STRIDE, preprocess_bgr
from spot_edge.pose.skeleton import NUM_MAPS


class PoseInputError(InputError):
    """Frames given to a pose estimator do not have the documented form."""


class PoseEstimator(abc.ABC):
    """BGR frames in, the raw 56 pose maps at stride 8 out.

    >>> est = create_pose_estimator("body_pose_model.pth")      # doctest: +SKIP
    >>> maps = est(frame_bgr)      # (1, 56, ceil(H/8), ceil(W/8)) float32 tensor on est.device
    >>> people = est.detect(frame_bgr)   # PoseDetections in frame pixels

    The maps are the network's raw output (keypoint maps may exceed 1 and PAFs unit length), as
    the original post-processing reads them; :func:`~spot_edge.pose.skeleton.clamp_pose_maps`
    gives OpenPose's output ranges. They cover the frame padded right/bottom to a multiple of 8:
    map pixel ``(i, j)`` is centred on frame pixel ``(8 i + 3.5, 8 j + 3.5)``.

    Attributes:
        backend: ``"pytorch"``, ``"onnxruntime"`` or ``"tensorrt"``.
        device: where the maps are returned (a GPU for the PyTorch/TensorRT paths on one, so
            that parsing and cropping can stay there, see :mod:`spot_edge.pose.device_parse`).
        stride: frame pixels per map pixel (8).
        num_maps: 56.
        config_name, num_stages: which OpenPose network (``openpose_coco``: 6 stages,
            ``openpose_coco_lite``: 3).
        weights_fingerprint: :func:`~spot_edge.pose.weights.pose_weights_fingerprint` of the
            weights (``"random"`` for a network without weights).
        max_batch: frames run at once; larger batches are split.
    """

    backend: str
    device: torch.device
    stride: int = STRIDE
    num_maps: int = NUM_MAPS
    config_name: str
    num_stages: int
    max_batch: int = 8

    @property
    def weights_fingerprint(self) -> str:
        raise NotImplementedError

    @property
    def input_device(self) -> torch.device:
        """Where :meth:`_run` wants its input (the frames are moved there as uint8)."""
        return self.device

    #: ``False`` when the network takes raw BGR [0, 255] (normalisation inside the graph)
    normalized_input: bool = True

    @torch.inference_mode()
    def __call__(self, frames) -> torch.Tensor:
        """``frames``: uint8 BGR ``(H, W, 3)`` / ``(B, H, W, 3)``, a list of same-size frames, or a
        ``(B, 3, H, W)`` tensor of BGR values in [0, 255] (on any device). Returns the raw maps
        ``(B, 56, ceil(H/8), ceil(W/8))`` float32 on :attr:`device`."""
        try:
            x, _ = preprocess_bgr(frames, self.stride, PAD_VALUE, device=self.input_device,
                                  normalize=self.normalized_input)
        except (ValueError, TypeError) as exc:
            raise PoseInputError(str(exc)) from exc
        step = max(1, int(self.max_batch))
        outs = [self._run(x[i:i + step]) for i in range(0, x.shape[0], step)]
        maps = outs[0] if len(outs) == 1 else torch.cat(outs)
        expected = (x.shape[0], self.num_maps, x.shape[2] // self.stride, x.shape[3] // self.stride)
        if tuple(maps.shape) != expected:
            raise RuntimeError(f"the {self.backend} pose estimator returned maps {tuple(maps.shape)}, "
                               f"expected {expected}")
        return maps

    @abc.abstractmethod
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """One chunk ``(b, 3, H, W)`` float32 (padded, normalised unless ``normalized_input`` is
        False), ``1 <= b <= max_batch`` -> maps ``(b, 56, H/8, W/8)`` float32 on :attr:`device`."""

    def detect(self, frame, config=None):
        """People in one frame (keypoints in frame pixels), parsed where the maps are."""
        return self.detect_batch([frame] if isinstance(frame, np.ndarray) and frame.ndim == 3 else frame,
                                 config)[0]

    def detect_batch(self, frames, config=None) -> list:
        """:meth:`detect` for a batch of same-size frames."""
        from spot_edge.pose.device_parse import parse_pose_batch

        maps = self(frames)
        h, w = _frame_size(frames)
        return parse_pose_batch(maps, image_size=(maps.shape[2] * self.stride, maps.shape[3] * self.stride),
                                config=config, valid_size=(h, w))

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release sessions, engines and device memory (idempotent)."""

    def __enter__(self) -> "PoseEstimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> dict:
        """A short JSON-able summary."""
        return {"backend": self.backend, "device": str(self.device), "config": self.config_name,
                "num_stages": self.num_stages, "stride": self.stride, "max_batch": self.max_batch,
                "weights_fingerprint": self.weights_fingerprint}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def _frame_size(frames) -> tuple[int, int]:
    """``(H, W)`` of the frames as :func:`~spot_edge.pose.network.preprocess_bgr` reads them."""
    first = frames[0] if isinstance(frames, (list, tuple)) else frames
    if isinstance(first, torch.Tensor):
        return int(first.shape[-2]), int(first.shape[-1])
    arr = np.asarray(first)
    return (int(arr.shape[-3]), int(arr.shape[-2])) if arr.ndim >= 3 else (int(arr.shape[0]), int(arr.shape[1]))


__all__ = ["PoseEstimator", "PoseInputError"]
