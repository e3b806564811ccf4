"""spot_edge.backends: one :class:`Embedder` interface over PyTorch, ONNX Runtime and TensorRT.

>>> from spot_edge.backends import create_embedder
>>> embedder = create_embedder("exports/spot")          # spot.visible.onnx + spot.infrared.onnx
>>> embedder.embed(images, heatmaps, "infrared")        # (B, D) float32, L2-normalised

ONNX Runtime on CPU is the embedded default: it runs wherever spot-edge installs.
"""

from spot_edge.backends.base import BackendUnavailableError, Embedder, EmbedderInputError
from spot_edge.backends.factory import BACKENDS, available_backends, create_embedder, resolve_backend

__all__ = ["Embedder", "EmbedderInputError", "BackendUnavailableError", "create_embedder", "resolve_backend", "available_backends",
           "BACKENDS"]
