"""One pose-estimator interface over PyTorch, ONNX Runtime and TensorRT (like the ``Embedder``).

>>> from spot_edge.pose.estimators import create_pose_estimator
>>> est = create_pose_estimator("body_pose_model.pth")             # PyTorch (auto)
>>> est = create_pose_estimator("pose.onnx")                       # ONNX Runtime (auto)
>>> maps = est(frame_bgr)                                          # (1, 56, h, w) raw maps
"""

from spot_edge._lazy import lazy_attributes

_LAZY = {
    "PoseEstimator": "spot_edge.pose.estimators.base",
    "PoseInputError": "spot_edge.pose.estimators.base",
    "TorchPoseEstimator": "spot_edge.pose.estimators.torch_estimator",
    "OnnxRuntimePoseEstimator": "spot_edge.pose.estimators.onnxruntime_estimator",
    "TensorRTPoseEstimator": "spot_edge.pose.estimators.tensorrt_estimator",
    "create_pose_estimator": "spot_edge.pose.estimators.factory",
    "resolve_pose_backend": "spot_edge.pose.estimators.factory",
    "classify_pose_source": "spot_edge.pose.estimators.factory",
    "POSE_BACKENDS": "spot_edge.pose.estimators.factory",
}

__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = list(_LAZY)
