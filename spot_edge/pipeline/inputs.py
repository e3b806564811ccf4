"""The cameras of a run from command-line style specs (what ``spot-edge run`` opens)."""

from __future__ import annotations

from spot_edge.errors import InputError
from spot_edge.pipeline.config import CameraInput
from spot_edge.pipeline.pose_sources import KeypointFileSource, OpenPoseSource
from spot_edge.pipeline.sources import DEFAULT_STREAM_TIMEOUT, open_source


def build_inputs(visible=None, infrared=None, visible_keypoints=None, infrared_keypoints=None,
                 pose_weights=None, pose_height: int | None = 368, pose_device: str = "auto",
                 fps: float | None = None, stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT
                 ) -> list[CameraInput]:
    """The cameras of a run, named after their modality.

    Args:
        visible, infrared: source specs (see :func:`spot_edge.pipeline.sources.open_source`); at
            least one. Paths are used as given (resolve a user's relative paths first).
        visible_keypoints, infrared_keypoints: JSON-lines keypoint files (another detector) for
            that source, checked against the video or folder (frame numbers, coordinates); sources
            without one use the OpenPose network from ``pose_weights`` (loaded once, shared).
        pose_height: frames are downscaled to this height for the OpenPose network.
        pose_device: torch device of the OpenPose network (:func:`spot_edge.device.resolve_device`).
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
                from spot_edge.device import resolve_device

                openpose = OpenPoseSource.from_weights(pose_weights, max_height=pose_height,
                                                       device=resolve_device(pose_device))
            pose = openpose
        else:
            raise InputError(f"no pose source for --{name}: give --pose-weights (OpenPose) or "
                             f"--{name}-keypoints (keypoints from another detector)")
        inputs.append(CameraInput(name, name, source, pose))
    return inputs


__all__ = ["build_inputs"]
