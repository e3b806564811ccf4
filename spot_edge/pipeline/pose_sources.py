"""Where the pipeline's people and pose maps come from.

A :class:`PoseSource` turns a frame into the people in it (box, keypoints, score) and the 56 pose
maps of the whole frame (18 keypoint maps + 38 PAFs, :mod:`spot_edge.pose.skeleton`) at a stride
(frame pixels per map pixel). One full-frame pass serves every person: the crops of the maps
are taken by :func:`spot_edge.pose.crop.crop_people`.

Two implementations:

- :class:`OpenPoseSource`: the OpenPose COCO network (any pose estimator: PyTorch, ONNX Runtime,
  TensorRT), then parsing (peaks + PAF grouping) where the maps are.
- :class:`KeypointFileSource`: keypoints supplied by another detector, one JSON line per frame,
  rendered into maps with :func:`spot_edge.pose.render.render_pose_maps`. Also
  :class:`KeypointCallableSource` for a detector called in-process.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from spot_edge.errors import InputError
from spot_edge.pipeline.sources import Frame
from spot_edge.pose.skeleton import NUM_KEYPOINTS

DEFAULT_STRIDE = 8


@dataclass
class Person:
    """One person in a frame.

    Attributes:
        box: ``(4,)`` float32 ``(x0, y0, x1, y1)`` in frame pixels.
        keypoints: ``(18, 3)`` float32 (x, y, confidence) in frame pixels; absent = (0, 0, 0).
        score: detection score (OpenPose person score, or the detector's).
    """

    box: np.ndarray
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((NUM_KEYPOINTS, 3), np.float32))
    score: float = 1.0


@dataclass
class PoseResult:
    """People of one frame and the frame's pose maps.

    Attributes:
        people: the people found.
        maps: ``(56, h, w)`` float32 maps of the whole frame, covering frame pixels
            ``[stride * j, stride * (j + 1))`` with map pixel ``j``: numpy (cropped on the host), or
            a tensor (cropped on its device, e.g. the GPU the pose network ran on,
            :func:`spot_edge.pipeline.stages.crop_frame`); ``None`` if no person.
        stride: frame pixels per map pixel, one for both axes or ``(y, x)`` (a frame resized for
            the network with different factors along the two axes).
    """

    people: list[Person]
    maps: object | None
    stride: float | tuple[float, float] = float(DEFAULT_STRIDE)


@runtime_checkable
class PoseSource(Protocol):
    """``(frame) -> PoseResult``."""

    def __call__(self, frame: Frame) -> PoseResult: ...


def people_from_keypoints(keypoints, image_size: tuple[int, int], boxes=None, scores=None,
                          box_margin: float = 0.15, min_parts: int = 1) -> list[Person]:
    """People from ``(P, 18, 3)`` keypoints: boxes from the keypoints (grown by ``box_margin``) unless
    given; people with fewer than ``min_parts`` keypoints are dropped."""
    from spot_edge.pose.parse import expand_keypoint_boxes, keypoint_boxes
    from spot_edge.pose.render import as_keypoint_array

    kp = as_keypoint_array(keypoints).astype(np.float32)
    n = len(kp)
    present = (kp[..., 2] > 0).sum(axis=1)
    auto = expand_keypoint_boxes(keypoint_boxes(kp), box_margin, image_size)
    people = []
    for i in range(n):
        box = auto[i] if boxes is None or boxes[i] is None else np.asarray(boxes[i], np.float32).reshape(4)
        if present[i] < min_parts and (boxes is None or boxes[i] is None):
            continue
        if not (box[2] - box[0] >= 2 and box[3] - box[1] >= 2):
            continue  # degenerate box (e.g. a single keypoint, or outside the frame)
        score = float(scores[i]) if scores is not None and scores[i] is not None else float(
            kp[i, :, 2][kp[i, :, 2] > 0].mean() if present[i] else 1.0)
        people.append(Person(box=box.astype(np.float32), keypoints=kp[i], score=score))
    return people


def render_frame_maps(people: list[Person], image_size: tuple[int, int], stride: int = DEFAULT_STRIDE) -> np.ndarray:
    """``(56, ceil(H/stride), ceil(W/stride))`` maps of a frame rendered from its people's keypoints.

    The maps cover the frame padded to a multiple of ``stride`` (the convention of the pose
    estimators, :mod:`spot_edge.backends.pose_estimators`, and of :func:`spot_edge.pose.crop.crop_people`).
    """
    from spot_edge.pose.render import render_pose_maps

    h, w = image_size
    mh, mw = max(1, math.ceil(h / stride)), max(1, math.ceil(w / stride))
    kp = np.stack([p.keypoints for p in people]) if people else np.zeros((0, NUM_KEYPOINTS, 3))
    return render_pose_maps(kp, (mh * stride, mw * stride), (mh, mw))


POST_PROCESSING = ("auto", "device", "host")


class OpenPoseSource:
    """The OpenPose network on the full frame, then parsing into people.

    Any :class:`~spot_edge.backends.pose_estimators.PoseEstimator` runs the network (PyTorch, ONNX
    Runtime, TensorRT; :func:`~spot_edge.backends.pose_estimators.create_pose_estimator`). The maps are
    parsed with the frame's geometry (padded network input, resized frame, original frame), so
    keypoints come back in frame pixels whatever the resize, and the result says where the crops
    are made (:func:`spot_edge.pipeline.stages.crop_frame`):

    - ``post_processing="device"``: the torch parser on the maps' device
      (:func:`~spot_edge.pose.device_parse.parse_pose_maps_torch`); the maps stay there as a
      tensor and the crops are made there too, so only keypoints and crops reach the host;
    - ``"host"``: the numpy parser and OpenCV crops (maps copied to the host when needed);
    - ``"auto"`` (default): ``"device"`` for maps on a GPU (PyTorch, TensorRT), ``"host"`` for
      maps on the host (ONNX Runtime, PyTorch on the CPU). ``"device"`` on the CPU is the
      reference for the GPU path, not a faster CPU path.

    Args:
        estimator: a pose estimator (or any ``frame -> (1, 56, h, w)`` maps callable).
        max_height: frames taller than this are downscaled before the network (OpenPose's usual net
            height is 368); keypoints, boxes and the maps' ``(y, x)`` strides refer to the
            original frame.
        parse_config: :class:`spot_edge.pose.parse.ParseConfig` (thresholds).
        box_margin: fraction by which keypoint boxes are grown on each side.
        min_score: people with a lower OpenPose score are ignored.
        post_processing: where maps are parsed and cropped, see above.
    """

    def __init__(self, estimator, max_height: int | None = 368, parse_config=None, box_margin: float = 0.15,
                 min_score: float = 0.0, post_processing: str = "auto") -> None:
        if post_processing not in POST_PROCESSING:
            raise ValueError(f"post_processing must be one of {POST_PROCESSING}, got {post_processing!r}")
        self.estimator = estimator
        self.max_height = max_height
        self.parse_config = parse_config
        self.box_margin = box_margin
        self.min_score = min_score
        self.post_processing = post_processing

    @classmethod
    def from_weights(cls, path, device: str = "cpu", backend: str = "auto", config: str = "openpose_coco",
                     estimator_options: dict | None = None, **kwargs) -> "OpenPoseSource":
        """The source for a weights file, a pose graph (``.onnx``), an engine or a bundle (a folder
        from ``spot-edge export`` or a loaded ``Bundle``: its pose graph or engine), on ``backend``
        (:func:`~spot_edge.backends.pose_estimators.create_pose_estimator`, the Embedder's auto rule);
        ``config`` names the network of a weights file; ``estimator_options`` go to the estimator
        (``threads``, ``fp16``...), ``kwargs`` to the source."""
        from spot_edge.backends.pose_estimators import create_pose_estimator

        if isinstance(path, (str, Path)) and not Path(path).exists():
            raise FileNotFoundError(
                f"OpenPose weights not found: {path}; pass the CMU body model (body_pose_model.pth or "
                "pose_iter_440000.caffemodel; spot-edge pose fetch-weights downloads it), a bundle from "
                "spot-edge export, or use keypoints from another detector (--*-keypoints)")
        estimator = create_pose_estimator(path, backend=backend, device=device, config=config,
                                          **(estimator_options or {}))
        return cls(estimator, **kwargs)

    def network_size(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """``(h', w')`` the network sees for a frame of ``frame_hw``."""
        h, w = frame_hw
        if self.max_height and h > self.max_height:
            return self.max_height, max(8, round(w * self.max_height / h))
        return h, w

    def __call__(self, frame: Frame) -> PoseResult:
        import cv2
        import torch

        from spot_edge.pose.device_parse import parse_pose_maps_torch
        from spot_edge.pose.parse import parse_pose_maps

        image = frame.image
        h, w = image.shape[:2]
        hn, wn = self.network_size((h, w))
        if (hn, wn) != (h, w):
            image = cv2.resize(image, (wn, hn), interpolation=cv2.INTER_AREA)
        maps = self.estimator(image)  # (1, 56, ceil(hn / 8), ceil(wn / 8)) where the estimator runs
        stride = getattr(self.estimator, "stride", DEFAULT_STRIDE)
        geometry = dict(image_size=(maps.shape[2] * stride, maps.shape[3] * stride), valid_size=(hn, wn),
                        output_size=(h, w))
        on_device = isinstance(maps, torch.Tensor) and maps.device.type != "cpu"
        if self.post_processing == "device" or (self.post_processing == "auto" and on_device):
            maps = maps if isinstance(maps, torch.Tensor) else torch.from_numpy(np.asarray(maps, np.float32))
            (det,) = parse_pose_maps_torch(maps, config=self.parse_config, **geometry)
            maps = maps[0].float()
        else:
            maps = (maps.detach().float().cpu().numpy() if isinstance(maps, torch.Tensor)
                    else np.asarray(maps, np.float32))[0]
            det = parse_pose_maps(maps, config=self.parse_config, **geometry)
        people = [p for p in people_from_keypoints(det.keypoints, (h, w), scores=det.scores,
                                                   box_margin=self.box_margin) if p.score >= self.min_score]
        return PoseResult(people=people, maps=maps, stride=(stride * h / hn, stride * w / wn))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_person(obj, where: str) -> tuple[np.ndarray, list | None, float | None]:
    """One person of a keypoint line: spot-edge ``{"keypoints": [[x, y, c] x 18], "box", "score"}`` or
    OpenPose JSON ``{"pose_keypoints_2d": [x0, y0, c0, ...]}`` (COCO-18). Non-finite keypoint values
    mark the keypoint absent; a box or score must be finite numbers."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: each person must be an object, got {type(obj).__name__}")
    if "keypoints" in obj:
        raw = obj["keypoints"]
    elif "pose_keypoints_2d" in obj:
        raw = obj["pose_keypoints_2d"] or []
    else:
        raise InputError(f"{where}: a person needs 'keypoints' (18 x [x, y, confidence]) or OpenPose's "
                         "'pose_keypoints_2d'")
    try:
        kp = np.asarray(raw, np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: keypoints must be numbers ({exc})") from None
    if "keypoints" not in obj and kp.ndim == 1 and kp.size % 3 == 0:  # OpenPose's flat x, y, c list
        kp = kp.reshape(-1, 3)
    if kp.shape != (NUM_KEYPOINTS, 3):
        raise InputError(f"{where}: expected {NUM_KEYPOINTS} keypoints of (x, y, confidence) in COCO-18 order, "
                         f"got shape {kp.shape} (BODY_25 output: convert to COCO-18 first)")
    box = obj.get("box")
    if box is not None and (not isinstance(box, list) or len(box) != 4 or not all(map(_is_number, box))):
        raise InputError(f"{where}: 'box' must be [x0, y0, x1, y1] (finite numbers)")
    score = obj.get("score")
    if score is not None and not _is_number(score):
        raise InputError(f"{where}: 'score' must be a finite number, got {score!r}")
    return kp, box, score


class KeypointFileSource:
    """Keypoints from another detector, read from a JSON-lines file, rendered into pose maps.

    One line per frame: ``{"frame": 12, "people": [{"keypoints": [[x, y, c], ... 18], "box":
    [x0, y0, x1, y1] (optional), "score": 0.9 (optional)}]}`` in frame pixels and COCO-18 order
    (OpenPose's ``"pose_keypoints_2d"`` flat lists are accepted too). Frames without a line have
    nobody. ``"frame"`` defaults to the line number.
    """

    def __init__(self, path: str | Path, stride: int = DEFAULT_STRIDE, box_margin: float = 0.15,
                 min_parts: int = 4) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"keypoint file not found: {path}")
        if self.path.is_dir():
            raise InputError(f"keypoint file {path} is a folder; give the JSON-lines file of the source")
        self.stride = stride
        self.box_margin = box_margin
        self.min_parts = min_parts
        self.frames: dict[int, list] = {}
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f):
                line = line.strip()
                if not line:
                    continue
                where = f"{self.path}:{lineno + 1}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
                if not isinstance(obj, dict) or not isinstance(obj.get("people", []), list):
                    raise InputError(f"{where}: expected {{\"frame\": N, \"people\": [...]}}")
                index = obj.get("frame", lineno)
                if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                    raise InputError(f"{where}: 'frame' must be a frame number (0, 1, ...), got {index!r}")
                if index in self.frames:
                    raise InputError(f"{where}: a second line for frame {index}")
                self.frames[index] = [_parse_person(p, where) for p in obj.get("people", [])]

    def check_matches(self, frame_count: int | None, frame_size: tuple[int, int] | None, what: str) -> None:
        """Refuse keypoints that cannot belong to ``what`` (a video or image folder of
        ``frame_count`` frames of ``frame_size`` ``(H, W)``; ``None``: unknown): a line for a frame it
        does not have, or keypoints far outside its frames (the keypoints of another video or
        resolution). Keypoints may reach a quarter of the frame beyond its edges (people partly out
        of the picture)."""
        if not self.frames:
            return
        last = max(self.frames)
        if frame_count is not None and last >= frame_count:
            raise InputError(f"keypoint file {self.path} has a line for frame {last}, but {what} has "
                             f"{frame_count} frames (numbered from 0): are these the keypoints of another video?")
        if frame_size is None:
            return
        points = [e[0][e[0][:, 2] > 0, :2] for people in self.frames.values() for e in people]
        points = np.concatenate(points) if points else np.zeros((0, 2), np.float32)
        points = points[np.isfinite(points).all(axis=1)]
        if not len(points):
            return
        h, w = frame_size
        lo, hi = points.min(axis=0), points.max(axis=0)
        if lo[0] < -0.25 * w or lo[1] < -0.25 * h or hi[0] > 1.25 * w or hi[1] > 1.25 * h:
            raise InputError(f"keypoint file {self.path} has keypoints from ({lo[0]:.0f}, {lo[1]:.0f}) to "
                             f"({hi[0]:.0f}, {hi[1]:.0f}), far outside the {w}x{h} frames of {what}: are these "
                             "the keypoints of another video or resolution?")

    def __call__(self, frame: Frame) -> PoseResult:
        entries = self.frames.get(frame.index, [])
        h, w = frame.image.shape[:2]
        if not entries:
            return PoseResult(people=[], maps=None, stride=float(self.stride))
        kp = np.stack([e[0] for e in entries])
        people = people_from_keypoints(kp, (h, w), boxes=[e[1] for e in entries], scores=[e[2] for e in entries],
                                       box_margin=self.box_margin, min_parts=self.min_parts)
        maps = render_frame_maps(people, (h, w), self.stride) if people else None
        return PoseResult(people=people, maps=maps, stride=float(self.stride))


class KeypointCallableSource:
    """Keypoints from a detector called in-process: ``detector(image_bgr) -> (P, 18, 3)`` keypoints
    in frame pixels (COCO-18 order), rendered into maps."""

    def __init__(self, detector: Callable[[np.ndarray], np.ndarray], stride: int = DEFAULT_STRIDE,
                 box_margin: float = 0.15, min_parts: int = 4) -> None:
        self.detector = detector
        self.stride = stride
        self.box_margin = box_margin
        self.min_parts = min_parts

    def __call__(self, frame: Frame) -> PoseResult:
        h, w = frame.image.shape[:2]
        people = people_from_keypoints(self.detector(frame.image), (h, w), box_margin=self.box_margin,
                                       min_parts=self.min_parts)
        maps = render_frame_maps(people, (h, w), self.stride) if people else None
        return PoseResult(people=people, maps=maps, stride=float(self.stride))


__all__ = ["POST_PROCESSING", "Person", "PoseResult", "PoseSource", "OpenPoseSource", "KeypointFileSource",
           "KeypointCallableSource", "people_from_keypoints", "render_frame_maps"]
