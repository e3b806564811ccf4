"""OpenPose heatmaps for SPOT: skeleton layout, rendering, parsing, network, cropping, file interop.

Modules (each owns one idea):

- ``skeleton``      COCO-18 layout: keypoints, limbs, PAF channels, flip, clamp (numpy only)
- ``render``        keypoints -> 56 maps at any resolution (numpy only)
- ``parse``         56 maps -> people, as the original post-processing (numpy); built from
  ``resample`` (upsampling/blur as per-axis operators), ``peaks``, ``limbs``, ``grouping``
- ``device_parse``  the same parsing in torch on the maps' device (GPU path)
- ``network``       the OpenPose COCO body network and its input preprocessing
- ``weights``       loading ``body_pose_model.pth`` / ``.caffemodel`` / ``.safetensors``;
  ``fetch`` downloading the CMU body model
- ``caffe``         ``.caffemodel`` reader/writer without Caffe
- ``crop``          person crops of a frame and of its maps (one pose pass per frame); made on
  the host by ``crop_host`` (OpenCV, numpy) or on the tensors' device by ``crop_device``
- ``openpose_png``  ``*_pose_heatmaps.png`` read/write; ``openpose_json`` ``*_keypoints.json``
- ``info``          parameter/MAC counts (the ONNX export lives with the other exporters:
  :mod:`spot_edge.engines.pose_onnx_export`)

Running the network on PyTorch, ONNX Runtime or TensorRT is a runtime's job:
:mod:`spot_edge.backends.pose_estimators` (beside SPOT's embedders). Details of the maps and the
parsing: ``docs/pose-maps.md``.

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
    clamp_pose_maps,
    flip_pose_maps,
)

_LAZY = {
    "parse_pose_maps": "spot_edge.pose.parse",
    "PoseDetections": "spot_edge.pose.parse",
    "ParseConfig": "spot_edge.pose.parse",
    "expand_keypoint_boxes": "spot_edge.pose.parse",
    "parse_pose_maps_torch": "spot_edge.pose.device_parse",
    "parse_pose_batch": "spot_edge.pose.device_parse",
    "OpenPoseBody": "spot_edge.pose.network",
    "fetch_pose_weights": "spot_edge.pose.fetch",
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
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "KEYPOINT_NAMES", "LIMBS", "NUM_KEYPOINTS", "NUM_MAPS", "NUM_PAF_CHANNELS", "PAF_CHANNELS",
    "flip_permutation", "flip_pose_maps", "clamp_pose_maps", "render_pose_maps", *_LAZY,
]
