"""The cameras of a run from command-line style specs (what ``spot-edge run`` opens)."""

from __future__ import annotations

from spot_edge.errors import InputError
from spot_edge.pipeline.config import CameraInput
from spot_edge.pipeline.pose_sources import KeypointFileSource, OpenPoseSource
from spot_edge.pipeline.sources import DEFAULT_STREAM_TIMEOUT, open_source


def build_inputs(visible=None, infrared=None, visible_keypoints=None, infrared_keypoints=None,
                 pose_weights=None, pose_height: int | None = 368, pose_device: str = "auto",
                 fps: float | None = None, stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT,
                 pose_backend: str = "auto", pose_config: str = "openpose_coco") -> list[CameraInput]:
    """The cameras of a run, named after their modality.

    Args:
        visible, infrared: source specs (see :func:`spot_edge.pipeline.sources.open_source`); at
            least one. Paths are used as given (resolve a user's relative paths first).
        visible_keypoints, infrared_keypoints: JSON-lines keypoint files (another detector) for
            that source, checked against the video or folder (frame numbers, coordinates); sources
            without one use the OpenPose network of ``pose_weights`` (loaded once, shared).
        pose_weights: the OpenPose network: weights (``.pth`` / ``.caffemodel`` /
            ``.safetensors``), a pose graph (``.onnx``), a TensorRT engine, or a bundle (a folder
            from ``spot-edge export`` or a loaded ``Bundle``: its pose graph or engine).
        pose_height: frames are downscaled to this height for the OpenPose network.
        pose_device: device of the OpenPose network (``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        pose_backend: ``"auto"`` (the Embedder's rule: weights -> PyTorch, a graph -> ONNX Runtime,
            an engine -> TensorRT, a bundle -> its engine where TensorRT is installed, else its
            graph), ``"pytorch"``, ``"onnxruntime"`` or ``"tensorrt"``.
        pose_config: the network of a weights file (``openpose_coco``, ``openpose_coco_lite``).
        fps: frame rate of image folders.
        stream_timeout: seconds OpenCV may spend opening a stream URL or waiting for its frames.

    Raises:
        InputError, FileNotFoundError: a spec, keypoint file or weights file that cannot be used.
    """
    specs = [(n, s, k) for n, s, k in (("visible", visible, visible_keypoints),
                                       ("infrared", infrared, infrared_keypoints)) if s is not None]
    if not specs:
        raise InputError("give at least one source: --visible and/or --infrared")
    openpose = None
    inputs = []
    for name, spec, keypoints in specs:
        source = open_source(spec, fps=fps, stream_timeout=stream_timeout)
        if keypoints is not None:
            pose = KeypointFileSource(keypoints)
            probe = getattr(source, "probe", None)
            if probe is not None:
                count, size = probe()
                pose.check_matches(count, size, f"the --{name} source ({source.description})")
        elif pose_weights is not None:
            if openpose is None:
                openpose = OpenPoseSource.from_weights(pose_weights, max_height=pose_height, device=pose_device,
                                                       backend=pose_backend, config=pose_config)
            pose = openpose
        else:
            raise InputError(f"no pose source for --{name}: give --pose-weights (OpenPose), a bundle as the "
                             f"model (spot-edge export), or --{name}-keypoints (keypoints from another detector)")
        inputs.append(CameraInput(name, name, source, pose))
    return inputs


__all__ = ["build_inputs"]
