"""Image preprocessing: the one definition of size, mean/std and channel order.

A ReID model silently breaks when the preprocessing at deployment differs from the one it
was trained with. spot-edge defines it once (:class:`PreprocessSpec`), stores it in every
checkpoint (inside :class:`spot_edge.model.SpotConfig`), in ONNX metadata and in engine
metadata, and checks it at load time (:meth:`PreprocessSpec.check_matches`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PreprocessMismatchError(ValueError):
    """Two preprocessing specifications that must agree do not."""


@dataclass(frozen=True)
class PreprocessSpec:
    """How a person crop becomes a network input.

    Attributes:
        height, width: network input size (the paper: 288 x 144).
        mean, std: per-channel normalisation in the network's channel order, on [0, 1] values.
        channel_order: channel order the network expects ("RGB").
        interpolation: resize filter ("linear" or "area"), as OpenCV names it.
        heatmap_stride: the pose maps that go with a crop are ``(height / stride, width / stride)``
            (OpenPose's output stride, 8). The network accepts any size; exported graphs, engines
            and the pipeline use this one.
    """

    height: int = 288
    width: int = 144
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    interpolation: str = "linear"
    heatmap_stride: int = 8

    def __post_init__(self) -> None:
        if self.height < 16 or self.width < 16 or self.height > 4096 or self.width > 4096:
            raise ValueError(f"input size {self.height}x{self.width} is outside 16..4096 pixels")
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if self.interpolation not in ("linear", "area"):
            raise ValueError(f"interpolation must be 'linear' or 'area', got {self.interpolation!r}")
        if self.heatmap_stride < 1:
            raise ValueError(f"heatmap_stride must be >= 1, got {self.heatmap_stride}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need 3 values each, std > 0")
        object.__setattr__(self, "mean", tuple(float(x) for x in self.mean))
        object.__setattr__(self, "std", tuple(float(x) for x in self.std))

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``."""
        return (self.height, self.width)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """``(Hs, Ws)`` of the pose maps that go with one crop."""
        return (max(1, round(self.height / self.heatmap_stride)), max(1, round(self.width / self.heatmap_stride)))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PreprocessSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown preprocessing fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def check_matches(self, other: "PreprocessSpec", what: str = "artifact") -> None:
        """Raise :class:`PreprocessMismatchError` naming every field that differs."""
        diffs = [f"{f.name}: expected {getattr(self, f.name)!r}, {what} has {getattr(other, f.name)!r}"
                 for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]
        if diffs:
            raise PreprocessMismatchError(f"preprocessing of the {what} does not match: " + "; ".join(diffs))

    # ------------------------------------------------------------------ images
    def as_three_channels_bgr(self, image: np.ndarray) -> np.ndarray:
        """Validate an OpenCV image and return it as ``(H, W, 3)`` uint8 BGR.

        Grayscale ``(H, W)`` or ``(H, W, 1)`` images (typical infrared) are replicated to three
        channels; ``(H, W, 4)`` BGRA drops alpha. Anything else is a clear error.
        """
        if not isinstance(image, np.ndarray):
            raise TypeError(f"expected a numpy image, got {type(image).__name__}")
        if image.size == 0:
            raise ValueError("empty image")
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise ValueError(f"expected an image of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {image.shape}")
        if image.dtype != np.uint8:
            if np.issubdtype(image.dtype, np.floating) and image.size and float(np.nanmax(image)) <= 1.0:
                image = image * 255.0
            image = np.clip(np.nan_to_num(image), 0, 255).astype(np.uint8)
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        elif image.shape[2] == 4:
            image = image[:, :, :3]
        return np.ascontiguousarray(image)

    def resize_bgr(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, C)`` uint8 BGR -> ``(height, width, 3)`` uint8 BGR."""
        import cv2

        image = self.as_three_channels_bgr(image)
        flag = cv2.INTER_AREA if self.interpolation == "area" else cv2.INTER_LINEAR
        if image.shape[:2] != (self.height, self.width):
            image = cv2.resize(image, (self.width, self.height), interpolation=flag)
        return image

    def normalize(self, images_bgr_uint8: np.ndarray) -> np.ndarray:
        """``(B, H, W, 3)`` or ``(H, W, 3)`` uint8 BGR at network size -> float32 ``(B, 3, H, W)`` / ``(3, H, W)``."""
        x = np.asarray(images_bgr_uint8)
        if x.shape[-3:] != (self.height, self.width, 3):
            raise ValueError(f"expected images of shape (..., {self.height}, {self.width}, 3); got {x.shape}")
        if self.channel_order == "RGB":
            x = x[..., ::-1]
        x = x.astype(np.float32) / 255.0
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(np.moveaxis(x, -1, -3))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """One OpenCV image (any size, BGR or gray) -> float32 ``(3, height, width)``."""
        return self.normalize(self.resize_bgr(image))

    def batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """A list of OpenCV images -> float32 ``(B, 3, height, width)``."""
        if len(images) == 0:
            return np.zeros((0, 3, self.height, self.width), np.float32)
        return self.normalize(np.stack([self.resize_bgr(im) for im in images]))

    def denormalize(self, tensor_chw: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalize` for one image: ``(3, H, W)`` float -> ``(H, W, 3)`` uint8 BGR."""
        x = np.moveaxis(np.asarray(tensor_chw, np.float32), 0, -1)
        x = x * np.asarray(self.std, np.float32) + np.asarray(self.mean, np.float32)
        if self.channel_order == "RGB":
            x = x[..., ::-1]
        return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
