"""The real-time visible/infrared pipeline behind ``spot-edge run``.

Stages (threads, bounded queues)::

    source reader (per camera) -> pose + crop (per camera) -> embed + match (batched) -> sink
         drops frames when behind   full-frame pose pass       the SPOT backend          events, video,
         reconnects with back-off   people, crops               gallery search            gallery, stats

Modules: :mod:`.sources` (video files, image folders, cameras, RTSP / GStreamer through OpenCV),
:mod:`.pose_sources` (OpenPose network or keypoints from another detector), :mod:`.stages`
(cropping, batching, matching), :mod:`.tracking` (per-camera IoU track ids), :mod:`.events` (JSON-lines events), :mod:`.annotate` (boxes and
identities drawn on frames), :mod:`.stats` (per-stage latency percentiles and counters),
:mod:`.runner` (:class:`Pipeline`).

Example (what ``spot-edge run`` does)::

    from spot_edge.backends import create_embedder
    from spot_edge.gallery import Gallery
    from spot_edge.pipeline import Pipeline, PipelineConfig, build_inputs

    inputs = build_inputs(visible="vis.avi", visible_keypoints="vis.keypoints.jsonl",
                          infrared="ir.avi", infrared_keypoints="ir.keypoints.jsonl")
    embedder = create_embedder("exports/spot", backend="onnxruntime")
    gallery = Gallery.open("gallery", embedding_dim=embedder.embedding_dim)
    summary = Pipeline(inputs, embedder, gallery, PipelineConfig(observe=True, frames_every=5),
                       output_dir="runs/demo").run()
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
from spot_edge.pipeline.runner import CameraInput, Pipeline, PipelineConfig, RunSummary, build_inputs
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
from spot_edge.pipeline.tracking import IoUTracker

__all__ = [
    "Backoff", "CameraInput", "Frame", "FrameSource", "ImageFolderSource", "IoUTracker", "KeypointFileSource", "LatencyStats",
    "MatchEvent", "OpenCVSource", "OpenPoseSource", "Person", "Pipeline", "PipelineConfig", "PoseResult",
    "PoseSource", "RunSummary", "SourceError", "build_inputs", "open_source", "people_from_keypoints",
]
