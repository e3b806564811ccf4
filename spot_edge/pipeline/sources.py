"""Frame sources: video files, image folders, USB/CSI cameras, RTSP streams and GStreamer pipelines.

Everything goes through OpenCV (``cv2.VideoCapture``; ``cv2.CAP_GSTREAMER`` for a pipeline string
on Jetson, e.g. ``nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv !
video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1``).

A source is *live* (camera, stream) or not (file, folder). A live source that stops delivering
frames is reconnected with exponential back-off; a file that ends is finished.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from spot_edge.imageio import IMAGE_SUFFIXES
STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


class SourceError(RuntimeError):
    """A frame source cannot be opened or read."""


@dataclass
class Frame:
    """One captured frame.

    Attributes:
        source: name of the source ("visible", "infrared", or the user's name for it).
        modality: "visible" or "infrared".
        index: frame number within the source (0-based; counts every frame read, dropped or not).
        timestamp: wall-clock capture time, seconds since the epoch.
        image: ``(H, W, 3)`` uint8 BGR (grey/infrared frames are replicated to 3 channels).
        captured: ``time.perf_counter()`` at capture (for end-to-end latency).
    """

    source: str
    modality: str
    index: int
    timestamp: float
    image: np.ndarray
    captured: float = field(default_factory=time.perf_counter)


@runtime_checkable
class FrameSource(Protocol):
    """What the pipeline reads frames from.

    ``read()`` returns a frame, or ``None`` when there is none: for a file, the end; for a live
    source, a failure (the reader then closes and reopens it with back-off). ``open()`` raises
    :class:`SourceError` (or ``FileNotFoundError``) when it cannot open.
    """

    description: str
    live: bool
    fps: float | None

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


def as_bgr_frame(image: np.ndarray) -> np.ndarray:
    """Any OpenCV frame -> ``(H, W, 3)`` uint8 BGR (grey replicated, alpha dropped)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.shape[0] == 0 or image.shape[1] == 0:
        raise SourceError(f"unsupported frame shape {image.shape}")
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:  # 16-bit thermal: scale to 8 bits by the frame's range
            lo, hi = float(image.min()), float(image.max())
            image = ((image.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1.0))).astype(np.uint8)
        else:
            image = np.clip(image, 0, 255).astype(np.uint8)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


class OpenCVSource:
    """A ``cv2.VideoCapture``: a video file, a camera index, an RTSP/HTTP URL or a GStreamer pipeline.

    Args:
        spec: file path, integer camera index (or its string), URL, or GStreamer pipeline string
            (recognised by ``!``).
        live: override the guess (cameras, URLs and pipelines are live; files are not).
    """

    def __init__(self, spec: str | int, live: bool | None = None) -> None:
        self.spec = spec
        self.kind = _kind_of(spec)
        self.live = live if live is not None else self.kind != "file"
        self.description = f"{self.kind} {spec}"
        self.fps: float | None = None
        self._cap = None
        if self.kind == "file" and not Path(str(spec)).exists():
            raise FileNotFoundError(f"video file not found: {spec}")

    def open(self) -> None:
        import cv2

        self.close()
        if self.kind == "camera":
            cap = cv2.VideoCapture(int(self.spec))
        elif self.kind == "gstreamer":
            cap = cv2.VideoCapture(str(self.spec), cv2.CAP_GSTREAMER)
        else:
            cap = cv2.VideoCapture(str(self.spec))
        if not cap.isOpened():
            cap.release()
            hint = {
                "camera": "check the index (ls /dev/video*) and that no other program holds the camera",
                "gstreamer": "check the pipeline with gst-launch-1.0 and that OpenCV was built with GStreamer "
                             "(cv2.getBuildInformation())",
                "stream": "check the URL, the network and the credentials",
                "file": "the file may be corrupt or in a codec this OpenCV cannot decode",
            }[self.kind]
            raise SourceError(f"cannot open {self.description}: {hint}")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else None
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise SourceError(f"{self.description} is not open")
        ok, image = self._cap.read()
        if not ok or image is None or image.size == 0:
            return None
        return image

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource:
    """The images of a folder, in name order, as frames (``fps`` only matters with pacing).

    Unreadable files are skipped and counted in :attr:`skipped` (with their names in
    :attr:`skipped_files`), so one corrupt image does not stop a run.
    """

    live = False

    def __init__(self, folder: str | Path, fps: float | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"image folder not found: {folder}")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
        self.fps = fps
        self.description = f"folder {folder} ({len(self.files)} images)"
        self._next = 0
        self.skipped = 0
        self.skipped_files: list[str] = []

    def open(self) -> None:
        self._next = 0

    def read(self) -> np.ndarray | None:
        import cv2

        while self._next < len(self.files):
            path = self.files[self._next]
            self._next += 1
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is not None and image.size:
                return image
            self.skipped += 1
            self.skipped_files.append(path.name)
        return None

    def close(self) -> None:
        pass


def _kind_of(spec: str | int) -> str:
    if isinstance(spec, (int, np.integer)):
        return "camera"
    s = str(spec).strip()
    if s.isdigit():
        return "camera"
    if "!" in s:
        return "gstreamer"
    if s.lower().startswith(STREAM_PREFIXES):
        return "stream"
    return "file"


def jetson_csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30,
                        flip: int = 0) -> str:
    """GStreamer pipeline for a CSI camera on a Jetson (``nvarguscamerasrc``), ending in BGR frames
    for OpenCV; ``appsink drop=1 max-buffers=1`` keeps only the newest frame (no lag)."""
    return (f"nvarguscamerasrc sensor-id={int(sensor_id)} ! video/x-raw(memory:NVMM),width={int(width)},"
            f"height={int(height)},framerate={int(fps)}/1 ! nvvidconv flip-method={int(flip)} ! "
            "video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1")


def _parse_csi(spec: str) -> str:
    """``csi://0?width=1920&height=1080&fps=30&flip=2`` -> a :func:`jetson_csi_pipeline` string."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(spec)
    try:
        sensor = int(parts.netloc or 0)
        options = {k: int(v) for k, v in parse_qsl(parts.query)}
    except ValueError as exc:
        raise ValueError(f"bad CSI camera spec {spec!r}: expected csi://<sensor-id>?width=W&height=H&fps=F") from exc
    unknown = set(options) - {"width", "height", "fps", "flip"}
    if unknown:
        raise ValueError(f"bad CSI camera spec {spec!r}: unknown options {sorted(unknown)} "
                         "(known: width, height, fps, flip)")
    return jetson_csi_pipeline(sensor, **options)


def open_source(spec: str | int, fps: float | None = None) -> FrameSource:
    """The right source for a command-line spec (not opened yet).

    ``0`` / ``"1"``: USB camera index (V4L2); ``csi://0?width=1280&height=720&fps=30``: a Jetson
    CSI camera (GStreamer ``nvarguscamerasrc``); a directory: image folder; ``rtsp://...``: stream;
    a string with ``!``: GStreamer pipeline; anything else: a video file (must exist).
    """
    if isinstance(spec, str) and not spec.strip():
        raise ValueError("empty source; give a video file, an image folder, a camera index or a URL")
    if isinstance(spec, str) and spec.strip().lower().startswith("csi://"):
        return OpenCVSource(_parse_csi(spec.strip()))
    if isinstance(spec, str) and _kind_of(spec) == "file" and Path(spec).is_dir():
        return ImageFolderSource(spec, fps=fps)
    return OpenCVSource(spec)


@dataclass
class Backoff:
    """Exponential back-off between reconnection attempts: ``initial * factor**n`` capped at ``maximum``."""

    initial: float = 0.5
    maximum: float = 10.0
    factor: float = 2.0
    attempts: int = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0


__all__ = ["Frame", "FrameSource", "SourceError", "OpenCVSource", "ImageFolderSource", "open_source", "Backoff",
           "jetson_csi_pipeline",
           "as_bgr_frame", "IMAGE_SUFFIXES"]
