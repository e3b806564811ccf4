"""Frame sources: video files, image folders, USB/CSI cameras, RTSP streams and GStreamer pipelines.

Everything goes through OpenCV (``cv2.VideoCapture``; ``cv2.CAP_GSTREAMER`` for a pipeline string
on Jetson, e.g. ``nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv !
video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1``); image files
through :func:`spot_edge.imageio.read_image`.

A source is *live* (camera, stream) or not (file, folder). A live source that stops delivering
frames is reconnected with exponential back-off and given up after a timeout
(:mod:`spot_edge.pipeline.reconnecting`); a file that ends is finished.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from spot_edge.errors import InputError, SpotEdgeError
from spot_edge.imageio import check_image_array, list_images, read_image

STREAM_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
#: Seconds OpenCV may spend opening a stream or waiting for one of its frames (FFmpeg backend).
DEFAULT_STREAM_TIMEOUT = 10.0


class SourceError(SpotEdgeError, RuntimeError):
    """A frame source cannot be opened or read."""


class FrameError(SourceError):
    """One frame of a source cannot be used (a corrupt or 16-bit file of an image folder...); the
    source goes on with the next frame and the frame is counted as an error."""


@dataclass
class Frame:
    """One captured frame.

    Attributes:
        source: name of the source ("visible", "infrared", or the user's name for it).
        modality: "visible" or "infrared".
        index: frame number within the source (0-based; counts every frame read, dropped,
            unusable or not, so keypoint files stay aligned).
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
    source, a failure (the reader then closes and reopens it with back-off). It raises
    :class:`FrameError` for one unusable frame (skipped, counted). ``open()`` raises
    :class:`SourceError` (or ``FileNotFoundError``) when it cannot open.
    """

    description: str
    live: bool
    fps: float | None

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


def _scale_16bit(image: np.ndarray) -> np.ndarray:
    """A raw 16-bit thermal camera frame -> 8 bits by the frame's own range (what a camera's
    automatic gain does)."""
    lo, hi = float(image.min()), float(image.max())
    return ((image.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1.0))).astype(np.uint8)


def as_bgr_frame(image: np.ndarray) -> np.ndarray:
    """A camera or video frame -> ``(H, W, 3)`` uint8 BGR (grey replicated, alpha dropped).

    16-bit frames of a live thermal camera are scaled to 8 bits by the frame's range; any other
    depth (float, 32-bit) is refused with :class:`FrameError` rather than clipped.
    """
    image = np.asarray(image)
    if image.dtype == np.uint16 and image.ndim in (2, 3) and image.size:
        image = _scale_16bit(image)
    try:
        return np.ascontiguousarray(check_image_array(image, what="frame"))
    except InputError as exc:
        raise FrameError(str(exc)) from None


def source_kind(spec: str | int) -> str:
    """``"camera"`` (an index), ``"gstreamer"`` (a pipeline with ``!``), ``"stream"`` (a URL) or
    ``"file"`` (a path: a video file or an image folder)."""
    if isinstance(spec, (int, np.integer)):
        return "camera"
    s = str(spec).strip()
    if s.isdigit():
        return "camera"
    if "!" in s:
        return "gstreamer"
    if s.lower().startswith("csi://"):
        return "gstreamer"  # a Jetson CSI camera, opened through a GStreamer pipeline
    if s.lower().startswith(STREAM_PREFIXES):
        return "stream"
    return "file"


_quiet_lock = threading.Lock()
_quiet_users = 0
_quiet_saved_level: int | None = None


@contextlib.contextmanager
def _quiet_opencv(quiet: bool = True) -> Iterator[None]:
    """OpenCV's own warnings off while a live source is opened: a camera that is retried would
    print one per attempt, beside the reader's one-line report. Safe with several readers."""
    global _quiet_users, _quiet_saved_level
    if not quiet:
        yield
        return
    import cv2

    logging = cv2.utils.logging
    with _quiet_lock:
        if _quiet_users == 0:
            _quiet_saved_level = logging.getLogLevel()
            logging.setLogLevel(logging.LOG_LEVEL_ERROR)
        _quiet_users += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_users -= 1
            if _quiet_users == 0 and _quiet_saved_level is not None:
                logging.setLogLevel(_quiet_saved_level)


class OpenCVSource:
    """A ``cv2.VideoCapture``: a video file, a camera index, an RTSP/HTTP URL or a GStreamer pipeline.

    Args:
        spec: file path, integer camera index (or its string), URL, or GStreamer pipeline string
            (recognised by ``!``).
        live: override the guess (cameras, URLs and pipelines are live; files are not).
        stream_timeout: seconds OpenCV may spend opening a URL or waiting for one of its frames
            (``None``: OpenCV's own defaults, which can block for minutes on an unreachable host).
    """

    def __init__(self, spec: str | int, live: bool | None = None,
                 stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT) -> None:
        self.spec = spec
        self.kind = source_kind(spec)
        self.live = live if live is not None else self.kind != "file"
        self.description = f"{self.kind} {spec}"
        self.stream_timeout = stream_timeout
        self.fps: float | None = None
        self._cap = None
        if self.kind == "file" and not Path(str(spec)).exists():
            raise FileNotFoundError(f"video file or image folder not found: {spec} (a camera is an index "
                                    "such as 0, a stream a URL such as rtsp://host/path)")

    def _capture(self):
        import cv2

        if self.kind == "camera":
            return cv2.VideoCapture(int(self.spec))
        if self.kind == "gstreamer":
            return cv2.VideoCapture(str(self.spec), cv2.CAP_GSTREAMER)
        if self.kind == "stream" and self.stream_timeout:
            ms = max(1, int(self.stream_timeout * 1000))
            return cv2.VideoCapture(str(self.spec), cv2.CAP_ANY,
                                    [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        return cv2.VideoCapture(str(self.spec))

    def open(self) -> None:
        import cv2

        self.close()
        with _quiet_opencv(self.live):
            cap = self._capture()
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

    def probe(self) -> tuple[int | None, tuple[int, int] | None]:
        """A video file's frame count and ``(height, width)`` as its container states them
        (``(None, None)`` for live sources or when unknown)."""
        if self.kind != "file":
            return None, None
        import cv2

        cap = cv2.VideoCapture(str(self.spec))
        try:
            if not cap.isOpened():
                return None, None
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            h, w = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        finally:
            cap.release()
        return (count if count > 0 else None), ((h, w) if h > 0 and w > 0 else None)


class ImageFolderSource:
    """The images of a folder, in name order, as frames (``fps`` only matters with pacing).

    The first image is read when the source is created: a folder whose first image cannot be used
    (16-bit, corrupt) is refused at once. A later image that cannot be used raises
    :class:`FrameError` from :meth:`read` (the pipeline counts it as an error and goes on) and is
    listed in :attr:`skipped_files`.
    """

    live = False

    def __init__(self, folder: str | Path, fps: float | None = None) -> None:
        self.folder = Path(folder)
        self.files = list_images(self.folder)
        self.frame_size: tuple[int, int] = read_image(self.files[0]).shape[:2]
        self.fps = fps
        self.description = f"folder {folder} ({len(self.files)} images)"
        self._next = 0
        self.skipped_files: list[str] = []

    @property
    def skipped(self) -> int:
        return len(self.skipped_files)

    def open(self) -> None:
        self._next = 0

    def read(self) -> np.ndarray | None:
        if self._next >= len(self.files):
            return None
        path = self.files[self._next]
        self._next += 1
        try:
            return read_image(path)
        except (InputError, OSError) as exc:
            self.skipped_files.append(path.name)
            raise FrameError(str(exc)) from None

    def close(self) -> None:
        pass

    def probe(self) -> tuple[int | None, tuple[int, int] | None]:
        """Number of images and the first image's ``(height, width)``."""
        return len(self.files), self.frame_size


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
    except ValueError:
        raise InputError(f"bad CSI camera spec {spec!r}: expected csi://<sensor-id>?width=W&height=H&fps=F") from None
    unknown = set(options) - {"width", "height", "fps", "flip"}
    if unknown:
        raise InputError(f"bad CSI camera spec {spec!r}: unknown options {sorted(unknown)} "
                         "(known: width, height, fps, flip)")
    return jetson_csi_pipeline(sensor, **options)


def open_source(spec: str | int, fps: float | None = None,
                stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT) -> FrameSource:
    """The right source for a command-line spec (not opened yet).

    ``0`` / ``"1"``: USB camera index (V4L2); ``csi://0?width=1280&height=720&fps=30``: a Jetson
    CSI camera (GStreamer ``nvarguscamerasrc``); a directory: image folder; ``rtsp://...``: stream;
    a string with ``!``: GStreamer pipeline; anything else: a video file (must exist). An unknown
    URL scheme (``foo://``) is an :class:`~spot_edge.errors.InputError`.
    """
    if isinstance(spec, str) and not spec.strip():
        raise InputError("empty source; give a video file, an image folder, a camera index or a URL")
    if isinstance(spec, str) and spec.strip().lower().startswith("csi://"):
        return OpenCVSource(_parse_csi(spec.strip()))
    kind = source_kind(spec)
    if kind == "file" and "://" in str(spec) and not Path(str(spec)).exists():
        scheme = str(spec).split("://", 1)[0]
        raise InputError(f"unknown source {spec!r}: no {scheme}:// sources; use a camera index (0), "
                         f"csi://, {', '.join(STREAM_PREFIXES)}, a video file or an image folder")
    if kind == "file" and Path(str(spec)).is_dir():
        return ImageFolderSource(spec, fps=fps)
    return OpenCVSource(spec, stream_timeout=stream_timeout)


__all__ = ["Frame", "FrameSource", "SourceError", "FrameError", "OpenCVSource", "ImageFolderSource", "open_source",
           "source_kind", "jetson_csi_pipeline", "as_bgr_frame", "DEFAULT_STREAM_TIMEOUT"]
