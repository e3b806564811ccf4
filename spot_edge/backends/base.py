"""The ``Embedder`` interface: images + pose heatmaps -> L2-normalised embeddings, any backend."""

from __future__ import annotations

import abc

import numpy as np

from spot_edge.preprocessing import PreprocessSpec


class BackendUnavailableError(RuntimeError):
    """A backend cannot run here (package or device missing); the message says what to install."""


class EmbedderInputError(ValueError):
    """Inputs given to :meth:`Embedder.embed` do not have the documented form."""


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

        ``B`` may be 0 or any size (split internally into the backend's ``max_batch``).
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
        return out

    @abc.abstractmethod
    def _embed_batch(self, images: np.ndarray, heatmaps: np.ndarray, modality: str) -> np.ndarray:
        """One validated chunk, ``1 <= B <= max_batch`` -> ``(B, D)``."""

    # ------------------------------------------------------------------ checks
    def check_inputs(self, images, heatmaps, modality: str) -> tuple[np.ndarray, np.ndarray]:
        """Validate and return C-contiguous float32 arrays; :class:`EmbedderInputError` otherwise."""
        if modality not in self.modalities:
            raise EmbedderInputError(f"the {self.name} embedder cannot embed {modality!r} images; it holds "
                                     f"{list(self.modalities)} (export/build the {modality} graph too)")
        spec = self.preprocessing
        images = _as_float32("images", images)
        heatmaps = _as_float32("heatmaps", heatmaps)
        expected_img = (3, spec.height, spec.width)
        if images.ndim != 4 or images.shape[1:] != expected_img:
            raise EmbedderInputError(f"images must be (B, {', '.join(map(str, expected_img))}) float32 normalised with "
                                     f"PreprocessSpec.normalize; got {images.shape}")
        expected_hm = (self.num_pose_maps, *spec.heatmap_size)
        if heatmaps.ndim != 4 or heatmaps.shape[1:] != expected_hm:
            raise EmbedderInputError(f"heatmaps must be (B, {', '.join(map(str, expected_hm))}) (pose maps at "
                                     f"preprocessing.heatmap_size); got {heatmaps.shape}")
        if images.shape[0] != heatmaps.shape[0]:
            raise EmbedderInputError(f"batch sizes differ: {images.shape[0]} images, {heatmaps.shape[0]} heatmaps")
        if images.size and not np.isfinite(images).all():
            raise EmbedderInputError("images contain NaN or Inf values")
        if heatmaps.size and not np.isfinite(heatmaps).all():
            raise EmbedderInputError("heatmaps contain NaN or Inf values")
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


def _as_float32(what: str, array) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.dtype == np.uint8:
        raise EmbedderInputError(f"{what} are uint8; normalise them first (PreprocessSpec.normalize / .batch): "
                                 f"the graphs take float32 normalised input")
    if not np.issubdtype(array.dtype, np.floating):
        raise EmbedderInputError(f"{what} must be floating point, got {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)
