"""Run a pose (OpenPose) TensorRT engine: ``(B, 3, H, W)`` frames -> ``(B, 56, H/8, W/8)`` maps.

Built from the pose graph (:func:`spot_edge.engines.pose_onnx_export.export_pose_onnx`) by
``spot-edge build-engine`` with optimisation profiles over ``(batch, height, width)`` of its
``image`` input (the target's ``pose`` section, e.g. 368 high, 368 to 656 wide). It runs on the
engines' one runtime (:class:`~spot_edge.engines.trt_runtime.TrtEngine`: the sidecar checked
against this machine's TensorRT version and GPU before deserialising, one execution context per
profile, output buffers sized from the context). A frame size outside every profile is refused
with the sizes the engine takes (never padded or resized silently: that would move keypoints);
batches larger than the profile's maximum are split, smaller than its minimum padded.
The maps stay on the engine's device, so parsing and cropping can stay there too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from spot_edge.engines.metadata import ArtifactError, GpuInfo, ShapeProfile
from spot_edge.engines.pose_metadata import POSE_INPUT, POSE_OUTPUT
from spot_edge.engines.trt_runtime import TrtEngine, pad_batch
from spot_edge.errors import InputError

__all__ = ["TrtPoseRunner", "pose_profile_for"]


def pose_profile_for(height: int, width: int, profiles: Sequence[ShapeProfile]) -> int | None:
    """Index of the profile to run ``height`` x ``width`` frames with (the tightest that holds
    them: smallest maximum area), or None when none does."""
    fitting = [i for i, p in enumerate(profiles) if p.holds(height, width)]
    if not fitting:
        return None
    return min(fitting, key=lambda i: (profiles[i].max[1] * profiles[i].max[2], i))


class TrtPoseRunner(TrtEngine):
    """A verified pose engine.

    Args:
        engine_path: serialized engine with its ``<engine>.json`` sidecar (``kind`` pose).
        device: torch device of the buffers (``"cuda"``/``"cuda:N"``; tests: ``"cpu"`` with the
            TensorRT double).
        plugin_libraries: plugin libraries (none for the pose network; kept for symmetry).
        gpu: override GPU detection (tests).
    """

    def __init__(self, engine_path: str | Path, device: str = "cuda", plugin_libraries: Sequence[str | Path] = (),
                 gpu: GpuInfo | None = None) -> None:
        super().__init__(engine_path, device, plugin_libraries, gpu, kind="pose")
        if self.inputs != [POSE_INPUT] or self.outputs != [POSE_OUTPUT]:
            raise ArtifactError(f"{self.engine_path} has tensors {self.names}; a spot-edge pose engine has the "
                                f"input {POSE_INPUT} and the output {POSE_OUTPUT}")
        self.profiles = tuple(ShapeProfile(*((s[0], s[2], s[3]) for s in shapes))
                              for shapes in self.profile_shapes(POSE_INPUT))
        self.info = self.metadata.artifact
        self.stride = int(self.info.stride)
        self.num_maps = int(self.info.num_maps)

    @property
    def max_batch(self) -> int:
        return max(p.max[0] for p in self.profiles)

    def sizes(self) -> str:
        """The frame sizes the engine takes, for messages."""
        return "; ".join(f"height {p.min[1]}..{p.max[1]} x width {p.min[2]}..{p.max[2]}" for p in self.profiles)

    def run(self, x):
        """``x`` ``(B, 3, H, W)`` float32 (H, W multiples of the stride, prepared as the graph's input
        spec says) -> maps ``(B, 56, H/8, W/8)`` float32 on the engine's device."""
        import torch

        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"pose engine {self.engine_path.name} takes (B, 3, H, W) frames, got {tuple(x.shape)}")
        batch, _, height, width = (int(d) for d in x.shape)
        index = pose_profile_for(height, width, self.profiles)
        if index is None:
            raise InputError(f"pose engine {self.engine_path.name} takes frames of {self.sizes()} pixels (after "
                             f"padding to a multiple of {self.stride}), got {height}x{width}: resize the frames "
                             f"(spot-edge run --pose-height) or rebuild the engine with a target whose pose "
                             f"section covers this size")
        profile = self.profiles[index]
        expected = (self.num_maps, height // self.stride, width // self.stride)
        outputs = []
        for start in range(0, batch, profile.max[0]):
            chunk = x[start:start + profile.max[0]]
            size = int(chunk.shape[0])
            maps = self.execute({POSE_INPUT: pad_batch(chunk, max(size, profile.min[0]))}, index)[POSE_OUTPUT]
            if tuple(maps.shape[1:]) != expected:
                raise ArtifactError(f"pose engine {self.engine_path.name} returned maps {tuple(maps.shape)}, "
                                    f"expected (B, {', '.join(map(str, expected))}); rebuild it from a current "
                                    f"spot-edge pose graph")
            outputs.append(maps[:size])
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)
