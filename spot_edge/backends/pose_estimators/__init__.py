"""One pose-estimator interface over PyTorch, ONNX Runtime and TensorRT (like the ``Embedder``).

>>> from spot_edge.backends.pose_estimators import create_pose_estimator
>>> est = create_pose_estimator("body_pose_model.pth")             # PyTorch (auto)
>>> est = create_pose_estimator("pose.onnx")                       # ONNX Runtime (auto)
>>> maps = est(frame_bgr)                                          # (1, 56, h, w) raw maps
"""

from spot_edge._lazy import lazy_attributes

_LAZY = {
    "PoseEstimator": "spot_edge.backends.pose_estimators.base",
    "PoseInputError": "spot_edge.backends.pose_estimators.base",
    "TorchPoseEstimator": "spot_edge.backends.pose_estimators.torch_estimator",
    "OnnxRuntimePoseEstimator": "spot_edge.backends.pose_estimators.onnxruntime_estimator",
    "TensorRTPoseEstimator": "spot_edge.backends.pose_estimators.tensorrt_estimator",
    "create_pose_estimator": "spot_edge.backends.pose_estimators.factory",
    "resolve_pose_backend": "spot_edge.backends.pose_estimators.factory",
    "classify_pose_source": "spot_edge.backends.pose_estimators.factory",
    "POSE_BACKENDS": "spot_edge.backends.pose_estimators.factory",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = list(_LAZY)
