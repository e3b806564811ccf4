"""The ``Embedder`` interface: images + pose heatmaps -> L2-normalised embeddings, any backend.

:meth:`Embedder.embed` is the one embedding call of the package and the boundary where inputs are
checked, once per call, on the host (the networks' forward passes stay free of host syncs):
shapes, dtypes (float32 arrays, as every graph takes; float16 is refused rather than guessed),
finite values, values in the range ``PreprocessSpec.normalize`` produces (a float image of raw
0..255 pixels is refused: it would embed to a silently wrong vector), and, after the backend ran,
a finite embedding. Every refusal is a :class:`spot_edge.errors.InputError` with one line.
"""

from __future__ import annotations

import abc

import numpy as np

from spot_edge.errors import InputError, SpotEdgeError
from spot_edge.modality import MODALITIES
from spot_edge.preprocessing import PreprocessSpec

__all__ = ["Embedder", "BackendUnavailableError", "InputError", "IMAGE_RANGE_FACTOR", "MAX_ABS_HEATMAP"]

#: images may reach this many times the largest value ``PreprocessSpec.normalize`` can produce
IMAGE_RANGE_FACTOR = 8.0
#: pose maps are in [0, 1] (keypoints) and [-1, 1] (PAFs); network outputs overshoot a little
MAX_ABS_HEATMAP = 8.0


class BackendUnavailableError(SpotEdgeError, RuntimeError):
    """A backend cannot run here (package or device missing); the message says what to install."""


class Embedder(abc.ABC):
    """Images + pose heatmaps -> retrieval embeddings, whatever runs the network.

    Attributes:
        name: ``"pytorch"``, ``"onnxruntime"`` or ``"tensorrt"``.
        preprocessing: what inputs must look like (size, mean/std, channel order, heatmap stride).
        embedding_dim: D.
        modalities: the modalities it can embed (``"visible"``, ``"infrared"``).
        max_batch: largest batch run at once; :meth:`embed` splits larger ones.
        num_pose_maps: K_S, channels of the heatmaps (56).
        config_fingerprint: hash of the SpotConfig the weights belong to (or None).
    """

    name: str
    preprocessing: PreprocessSpec
    embedding_dim: int
    modalities: tuple[str, ...]
    max_batch: int = 32
    num_pose_maps: int = 56
    config_fingerprint: str | None = None

    def embed(self, images: np.ndarray, heatmaps: np.ndarray, modality: str) -> np.ndarray:
        """images ``(B, 3, H, W)`` float32 normalised per ``preprocessing``; heatmaps ``(B, 56, Hs, Ws)``
        float32 at ``preprocessing.heatmap_size``; -> ``(B, D)`` float32 L2-normalised.

        ``B`` may be 0 or any size (split internally into the backend's ``max_batch``). Bad input
        (see the module docstring) raises :class:`~spot_edge.errors.InputError`.
        """
        images, heatmaps = self.check_inputs(images, heatmaps, modality)
        batch = images.shape[0]
        if batch == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        step = max(1, int(self.max_batch))
        outputs = [self._embed_batch(images[i:i + step], heatmaps[i:i + step], modality)
                   for i in range(0, batch, step)]
        out = np.ascontiguousarray(np.concatenate(outputs, axis=0), dtype=np.float32)
        if out.shape != (batch, self.embedding_dim):
            raise RuntimeError(f"{self.name} backend returned {out.shape}, expected {(batch, self.embedding_dim)}")
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if bad.size:
            raise InputError(f"the embedding of {bad.size} of {batch} inputs (first: index {int(bad[0])}) is not finite: "
                             f"their values overflow the network; check that the images are normalised with "
                             f"PreprocessSpec.normalize and the pose maps are in [-1, 1]")
        return out

    @abc.abstractmethod
    def _embed_batch(self, images: np.ndarray, heatmaps: np.ndarray, modality: str) -> np.ndarray:
        """One validated chunk, ``1 <= B <= max_batch`` -> ``(B, D)``."""

    # ------------------------------------------------------------------ checks
    def check_inputs(self, images, heatmaps, modality: str) -> tuple[np.ndarray, np.ndarray]:
        """Validate and return C-contiguous float32 arrays; :class:`InputError` otherwise."""
        if modality not in self.modalities:
            known = "" if modality in MODALITIES else " (an unknown modality)"
            raise InputError(f"the {self.name} embedder cannot embed {modality!r} images{known}; it holds "
                             f"{list(self.modalities)} (export/build the {modality} graph too)")
        spec = self.preprocessing
        images = _as_float32("images", images)
        heatmaps = _as_float32("heatmaps", heatmaps)
        expected_img = (3, spec.height, spec.width)
        if images.ndim != 4 or images.shape[1:] != expected_img:
            raise InputError(f"images must be (B, {', '.join(map(str, expected_img))}) float32 normalised with "
                             f"PreprocessSpec.normalize; got {images.shape}")
        expected_hm = (self.num_pose_maps, *spec.heatmap_size)
        if heatmaps.ndim != 4 or heatmaps.shape[1:] != expected_hm:
            raise InputError(f"heatmaps must be (B, {', '.join(map(str, expected_hm))}) (pose maps at "
                             f"preprocessing.heatmap_size); got {heatmaps.shape}")
        if images.shape[0] != heatmaps.shape[0]:
            raise InputError(f"batch sizes differ: {images.shape[0]} images, {heatmaps.shape[0]} heatmaps")
        _check_values("images", images, image_limit(spec), "normalise them with PreprocessSpec.normalize")
        _check_values("heatmaps", heatmaps, MAX_ABS_HEATMAP, "pose maps are in [-1, 1]")
        return images, heatmaps

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release sessions, engines and device memory (idempotent)."""

    def __enter__(self) -> "Embedder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> dict:
        """A short JSON-able summary (backend, device, precision...)."""
        return {"backend": self.name, "embedding_dim": self.embedding_dim, "modalities": list(self.modalities),
                "max_batch": self.max_batch, "input_size": list(self.preprocessing.size),
                "heatmap_size": list(self.preprocessing.heatmap_size), "config_fingerprint": self.config_fingerprint}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def image_limit(spec: PreprocessSpec) -> float:
    """The largest ``|value|`` :class:`Embedder` accepts in images: :data:`IMAGE_RANGE_FACTOR` times
    the largest one ``spec.normalize`` produces from 8-bit pixels."""
    mean, std = np.asarray(spec.mean), np.asarray(spec.std)
    return float(IMAGE_RANGE_FACTOR * np.max(np.maximum(np.abs(0.0 - mean), np.abs(1.0 - mean)) / std))


def _check_values(what: str, array: np.ndarray, limit: float, hint: str) -> None:
    if not array.size:
        return
    if not np.isfinite(array).all():
        raise InputError(f"{what} contain NaN or Inf values")
    largest = float(np.abs(array).max())
    if largest > limit:
        raise InputError(f"{what} hold values up to {largest:.4g}, far outside the expected range (|value| <= "
                         f"{limit:.3g}); {hint}")


def _as_float32(what: str, array) -> np.ndarray:
    dtype = str(getattr(array, "dtype", ""))
    if dtype.endswith(("float16", "bfloat16")):  # numpy or torch half: refused, not silently widened
        raise InputError(f"{what} are {dtype.replace('torch.', '')}; spot-edge embedders take float32 arrays "
                         f"whatever the precision of the model (convert with .astype(np.float32))")
    if hasattr(array, "detach"):  # a torch tensor
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype == np.uint8:
        raise InputError(f"{what} are uint8; normalise them first (PreprocessSpec.normalize / .batch): "
                         f"the graphs take float32 normalised input")
    if not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"{what} must be float32, got {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)
