"""OpenPose heatmaps for SPOT: skeleton layout, rendering, parsing, network, cropping, file interop.

Modules (each owns one idea):

- ``skeleton``      COCO-18 layout: keypoints, limbs, PAF channels, flip (numpy only)
- ``render``        keypoints -> 56 maps at any resolution (numpy only)
- ``parse``         56 maps -> people (peaks, PAF grouping, scores, boxes)
- ``network``       the OpenPose COCO body network, preprocessing, ``PoseEstimator``
- ``weights``       loading ``body_pose_model.pth`` / ``.caffemodel`` / ``.safetensors``
- ``caffe``         ``.caffemodel`` reader/writer without Caffe
- ``crop``          person crops of a frame and of its maps (one pose pass per frame)
- ``openpose_png``  ``*_pose_heatmaps.png`` read/write; ``openpose_json`` ``*_keypoints.json``
- ``onnx_export``   ONNX export with onnxruntime parity; ``info`` parameter/MAC counts

The light names below are imported eagerly; the torch-based ones on first use.
"""

from spot_edge._lazy import lazy_attributes
from spot_edge.pose.render import render_pose_maps
from spot_edge.pose.skeleton import (
    KEYPOINT_NAMES,
    LIMBS,
    NUM_KEYPOINTS,
    NUM_MAPS,
    NUM_PAF_CHANNELS,
    PAF_CHANNELS,
    flip_permutation,
    flip_pose_maps,
)

_LAZY = {
    "parse_pose_maps": "spot_edge.pose.parse",
    "PoseDetections": "spot_edge.pose.parse",
    "ParseConfig": "spot_edge.pose.parse",
    "OpenPoseBody": "spot_edge.pose.network",
    "PoseEstimator": "spot_edge.pose.network",
    "PoseNetConfig": "spot_edge.pose.network",
    "POSE_CONFIGS": "spot_edge.pose.network",
    "preprocess_bgr": "spot_edge.pose.network",
    "select_pose_maps": "spot_edge.pose.network",
    "load_pose_weights": "spot_edge.pose.weights",
    "caffemodel_to_state_dict": "spot_edge.pose.caffe",
    "CropSpec": "spot_edge.pose.crop",
    "crop_people": "spot_edge.pose.crop",
    "read_pose_heatmaps_png": "spot_edge.pose.openpose_png",
    "write_pose_heatmaps_png": "spot_edge.pose.openpose_png",
    "export_pose_onnx": "spot_edge.pose.onnx_export",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "KEYPOINT_NAMES", "LIMBS", "NUM_KEYPOINTS", "NUM_MAPS", "NUM_PAF_CHANNELS", "PAF_CHANNELS",
    "flip_permutation", "flip_pose_maps", "render_pose_maps", *_LAZY,
]
