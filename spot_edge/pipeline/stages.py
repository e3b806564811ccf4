"""The work of each stage, as plain functions (the threads live in :mod:`.runner`).

- :func:`crop_frame`: people + full-frame pose maps -> normalised image crops ``(N, 3, H, W)`` and
  pose-map crops ``(N, 56, Hs, Ws)`` at the embedder's :class:`~spot_edge.preprocessing.PreprocessSpec`.
- embedding: the backend's :meth:`spot_edge.backends.base.Embedder.embed`, called by the runner.
- :func:`match_embeddings`: embeddings -> :class:`~spot_edge.pipeline.events.MatchEvent` per person
  (search of the *other* modality's gallery entries).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spot_edge.pipeline.events import MatchEvent
from spot_edge.pipeline.pose_sources import Person, PoseResult
from spot_edge.pipeline.sources import Frame


@dataclass
class FrameWork:
    """A frame travelling from the pose stage to the embed stage, then to the sink."""

    frame: Frame
    people: list[Person] = field(default_factory=list)
    track_ids: list[int] = field(default_factory=list)  # per person, from the camera's IoU tracker
    images: np.ndarray | None = None  # (N, 3, H, W) float32
    heatmaps: np.ndarray | None = None  # (N, 56, Hs, Ws) float32
    embeddings: np.ndarray | None = None  # (N, D)
    events: list[MatchEvent] = field(default_factory=list)


def crop_frame(image: np.ndarray, pose: PoseResult, preprocessing, expand: float = 0.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Crops of every person of a frame, ready for the embedder (on the host).

    Made where the maps are (:func:`spot_edge.pose.crop.crop_people`): with the maps as a tensor
    (on the GPU the pose network ran on) the frame goes to its device as uint8 and the crops are
    sampled and normalised there, so only the crops come back; with numpy maps (or none) on the
    host with OpenCV, straight into the normalised input.

    Args:
        image: ``(H, W, 3)`` uint8 BGR frame.
        pose: the frame's people and full-frame maps.
        preprocessing: the embedder's :class:`~spot_edge.preprocessing.PreprocessSpec`.
        expand: extra margin of the crop region (fraction), see :class:`spot_edge.pose.crop.CropSpec`.

    Returns:
        ``images (N, 3, H, W)`` float32 normalised and ``heatmaps (N, 56, Hs, Ws)`` float32.
    """
    from spot_edge.pose.crop import CropSpec, crop_people

    hs, ws = preprocessing.heatmap_size
    n = len(pose.people)
    if n == 0:
        return (np.zeros((0, 3, preprocessing.height, preprocessing.width), np.float32),
                np.zeros((0, 56, hs, ws), np.float32))
    spec = CropSpec(height=preprocessing.height, width=preprocessing.width, map_height=hs, map_width=ws,
                    expand=expand)
    boxes = np.stack([p.box for p in pose.people])
    maps = pose.maps
    if hasattr(maps, "detach"):  # a torch tensor: crop on its device
        import torch

        frame = torch.from_numpy(np.ascontiguousarray(image)).to(maps.device).permute(2, 0, 1)  # uint8 there
        crops = crop_people(frame, boxes, maps=maps, stride=pose.stride, spec=spec, preprocessing=preprocessing)
        return crops.images.cpu().numpy(), crops.maps.cpu().numpy()
    crops = crop_people(image, boxes, maps=maps, stride=pose.stride, spec=spec, preprocessing=preprocessing)
    heatmaps = crops.maps if crops.maps is not None else np.zeros((n, 56, hs, ws), np.float32)
    return crops.images, heatmaps


def match_embeddings(work: FrameWork, gallery, threshold: float | None, top_k: int = 5) -> list[MatchEvent]:
    """One event per person of ``work``: its best entries of the other modality in ``gallery``."""
    frame = work.frame
    n = len(work.people)
    if n == 0:
        return []
    if gallery is not None and len(gallery):
        results = gallery.search(work.embeddings, modality=frame.modality, k=top_k)
    else:
        results = [[] for _ in range(n)]
    events = []
    for i, (person, matches) in enumerate(zip(work.people, results)):
        best = matches[0] if matches else None
        matched = best is not None and (threshold is None or best.similarity >= threshold)
        events.append(MatchEvent(
            timestamp=frame.timestamp, source=frame.source, modality=frame.modality, frame_index=frame.index,
            person_index=i, track_id=work.track_ids[i] if i < len(work.track_ids) else None,
            box=[round(float(v), 1) for v in person.box], pose_score=round(float(person.score), 4),
            matched=bool(matched), identity=best.identity if matched else None,
            similarity=round(best.similarity, 6) if best is not None else None, threshold=threshold,
            entry=best.entry.to_dict() if best is not None else None,
            top_k=[{"identity": m.identity, "similarity": round(m.similarity, 6), "entry_id": m.entry.entry_id}
                   for m in matches]))
    return events


__all__ = ["FrameWork", "crop_frame", "match_embeddings"]
