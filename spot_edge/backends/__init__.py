"""spot_edge.backends: one :class:`Embedder` interface over PyTorch, ONNX Runtime and TensorRT.

>>> from spot_edge.backends import create_embedder
>>> embedder = create_embedder("exports/spot")          # spot.visible.onnx + spot.infrared.onnx
>>> embedder.embed(images, heatmaps, "infrared")        # (B, D) float32, L2-normalised

The pose network has the same three runtimes behind one ``PoseEstimator`` interface:
:mod:`spot_edge.backends.pose_estimators` (``create_pose_estimator(source, backend="auto")``).

ONNX Runtime on CPU is the embedded default: it runs wherever spot-edge installs. Bad input to
``embed`` raises :class:`spot_edge.errors.InputError`.
"""

from spot_edge.backends.base import BackendUnavailableError, Embedder
from spot_edge.backends.factory import EMBEDDER_BACKENDS, available_backends, create_embedder, resolve_backend
from spot_edge.errors import InputError

__all__ = ["Embedder", "InputError", "BackendUnavailableError", "create_embedder", "resolve_backend",
           "available_backends", "EMBEDDER_BACKENDS"]
