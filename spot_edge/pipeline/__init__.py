"""The real-time visible/infrared pipeline behind ``spot-edge run``.

Stages (threads, bounded queues)::

    source reader (per camera) -> pose + crop (per camera) -> embed + match (batched) -> sink
         drops frames when behind   full-frame pose pass       the SPOT backend          events, video,
         reconnects with back-off   people, crops               gallery search            gallery, stats

Modules: :mod:`.sources` (video files, image folders, cameras, RTSP / GStreamer through OpenCV),
:mod:`.reconnecting` (back-off, reconnection and the reconnect timeout of live sources),
:mod:`.pose_sources` (OpenPose network or keypoints from another detector), :mod:`.inputs`
(sources from command-line specs), :mod:`.stages` (cropping, matching), :mod:`.tracking`
(per-camera IoU track ids), :mod:`.events` (JSON-lines events, rotated by size or age), :mod:`.annotate` (boxes and
identities drawn on frames), :mod:`.output` (events, videos, thumbnails, gallery flushes,
``stats.json``), :mod:`.stats` (per-stage latency percentiles and counters), :mod:`.config`
(:class:`PipelineConfig`, :class:`RunSummary`), :mod:`.runner` (:class:`Pipeline`: the threads).

Example (what ``spot-edge run`` does)::

    from spot_edge.backends import create_embedder
    from spot_edge.gallery import Gallery
    from spot_edge.pipeline import Pipeline, PipelineConfig, build_inputs

    inputs = build_inputs(visible="vis.avi", visible_keypoints="vis.keypoints.jsonl",
                          infrared="ir.avi", infrared_keypoints="ir.keypoints.jsonl")
    embedder = create_embedder("exports/spot", backend="onnxruntime")
    gallery = Gallery.open("gallery", model=embedder)
    summary = Pipeline(inputs, embedder, gallery, PipelineConfig(observe=True, frames_every=5),
                       output_dir="runs/demo").run()
"""

from spot_edge.pipeline.config import DEFAULT_RECONNECT_TIMEOUT, CameraInput, PipelineConfig, RunSummary
from spot_edge.pipeline.events import MatchEvent
from spot_edge.pipeline.inputs import build_inputs
from spot_edge.pipeline.pose_sources import (
    KeypointFileSource,
    OpenPoseSource,
    Person,
    PoseResult,
    PoseSource,
    people_from_keypoints,
)
from spot_edge.pipeline.reconnecting import Backoff, ReconnectingSource, ReconnectPolicy
from spot_edge.pipeline.runner import Pipeline
from spot_edge.pipeline.sources import (
    Frame,
    FrameError,
    FrameSource,
    ImageFolderSource,
    OpenCVSource,
    SourceError,
    open_source,
)
from spot_edge.pipeline.stats import LatencyStats
from spot_edge.pipeline.tracking import IoUTracker

__all__ = [
    "Backoff", "CameraInput", "DEFAULT_RECONNECT_TIMEOUT", "Frame", "FrameError", "FrameSource", "ImageFolderSource",
    "IoUTracker", "KeypointFileSource", "LatencyStats", "MatchEvent", "OpenCVSource", "OpenPoseSource", "Person",
    "Pipeline", "PipelineConfig", "PoseResult", "PoseSource", "ReconnectPolicy", "ReconnectingSource", "RunSummary",
    "SourceError", "build_inputs", "open_source", "people_from_keypoints",
]
