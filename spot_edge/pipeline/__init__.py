"""The real-time visible/infrared pipeline behind ``spot-edge run``.

Stages (threads, bounded queues)::

    source reader (per camera) -> pose + crop (per camera) -> embed + match (batched) -> sink
         drops frames when behind   full-frame pose pass       the SPOT backend          events, video,
         reconnects with back-off   people, crops               gallery search            gallery, stats

Modules: :mod:`.sources` (video files, image folders, cameras, RTSP / GStreamer through OpenCV),
:mod:`.pose_sources` (OpenPose network or keypoints from another detector), :mod:`.stages`
(cropping, batching, matching), :mod:`.events` (JSON-lines events), :mod:`.annotate` (boxes and
identities drawn on frames), :mod:`.stats` (per-stage latency percentiles and counters),
:mod:`.runner` (:class:`Pipeline`).
"""

from spot_edge.pipeline.events import MatchEvent
from spot_edge.pipeline.pose_sources import (
    KeypointFileSource,
    OpenPoseSource,
    Person,
    PoseResult,
    PoseSource,
    people_from_keypoints,
)
from spot_edge.pipeline.runner import CameraInput, Pipeline, PipelineConfig, RunSummary
from spot_edge.pipeline.sources import (
    Backoff,
    Frame,
    FrameSource,
    ImageFolderSource,
    OpenCVSource,
    SourceError,
    open_source,
)
from spot_edge.pipeline.stats import LatencyStats

__all__ = [
    "Backoff", "CameraInput", "Frame", "FrameSource", "ImageFolderSource", "KeypointFileSource", "LatencyStats",
    "MatchEvent", "OpenCVSource", "OpenPoseSource", "Person", "Pipeline", "PipelineConfig", "PoseResult",
    "PoseSource", "RunSummary", "SourceError", "open_source", "people_from_keypoints",
]
