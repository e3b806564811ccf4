"""The output side of the pipeline: events, annotated video and frames, gallery observations with
their thumbnails, the gallery flush and ``stats.json``.

:class:`PipelineOutput` is driven by the pipeline's sink thread (:meth:`PipelineOutput.emit` per
processed frame, which also flushes the gallery every ``flush_interval`` seconds) and closed once
the threads have ended (:meth:`PipelineOutput.close`: files closed, the gallery flushed a last
time). :meth:`PipelineOutput.flush_gallery` is the one place the pipeline saves the gallery,
through the gallery's public :meth:`~spot_edge.gallery.Gallery.save` (a transaction that keeps
what other processes saved meanwhile).

Files in the output folder: ``events.jsonl`` (one JSON line per person seen, appended; rotated
by size or age into ``events.1.jsonl``... when the configuration asks),
``annotated_<source>.avi``, ``frames/<source>/<frame>.png`` (every ``frames_every``-th frame),
``thumbnails/<source>_<frame>_<person>.jpg`` (observed people; written atomically, as the gallery
entries refer to them) and ``stats.json`` (the :class:`~spot_edge.pipeline.config.RunSummary`,
written atomically).
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from spot_edge.atomic import atomic_path, atomic_write_json
from spot_edge.pipeline.annotate import AnnotatedVideoWriter, annotate_frame
from spot_edge.pipeline.config import PipelineConfig, RunSummary
from spot_edge.pipeline.events import EventWriter, MatchEvent
from spot_edge.pipeline.sources import Frame
from spot_edge.pipeline.stages import FrameWork
from spot_edge.pipeline.stats import Counters, LatencyStats

log = logging.getLogger("spot_edge.pipeline")

THUMBNAIL_HEIGHT = 128


class PipelineOutput:
    """Everything the pipeline writes (see the module docstring).

    Args:
        output_dir: the output folder (``None``: no files; the gallery is still updated and flushed).
        config: the run's :class:`PipelineConfig`.
        gallery: the :class:`~spot_edge.gallery.Gallery` observations go to (``None``: none).
        counters: per-source counters (frames processed, people, events, matches).
        stats: latency statistics (``sink``, ``gallery_flush``).
        fps_of: a source's frame rate by name (``None`` when unknown), for the annotated videos.
        event_sinks: also called with each event written and its JSON line, ``sink(event, line)``
            (an MQTT publisher); a sink must return at once and never raise.
    """

    def __init__(self, output_dir: Path | None, config: PipelineConfig, gallery, counters: Counters,
                 stats: LatencyStats, fps_of: Callable[[str], float | None],
                 event_sinks: Sequence[Callable[[MatchEvent, str], None]] = ()) -> None:
        self.output_dir = output_dir
        self.config = config
        self.gallery = gallery
        self.counters = counters
        self.stats = stats
        self.fps_of = fps_of
        self.event_sinks = list(event_sinks)
        self.events = EventWriter(output_dir / "events.jsonl" if output_dir is not None else None,
                                  max_bytes=config.events_max_bytes, rotate_seconds=config.events_rotate_seconds,
                                  keep=config.events_keep)
        self.videos: dict[str, AnnotatedVideoWriter] = {}
        self.gallery_saved = False
        self._last_flush = time.monotonic()

    # ------------------------------------------------------------------ per frame (sink thread)
    def emit(self, w: FrameWork) -> None:
        """Observe, write the events, count, draw; flush the gallery when the interval has passed."""
        frame, cfg = w.frame, self.config
        if cfg.observe and self.gallery is not None and len(w.people):
            self._observe(w)
        name = frame.source
        for ev in w.events:
            if not cfg.only_matches or ev.matched:
                line = self.events.write(ev)
                for sink in self.event_sinks:
                    sink(ev, line)
        self.counters.add(name, "frames_processed")
        self.counters.add(name, "people", len(w.people))
        self.counters.add(name, "events", len(w.events))
        self.counters.add(name, "matches", sum(ev.matched for ev in w.events))
        self._draw(w)
        if time.monotonic() - self._last_flush > cfg.flush_interval:
            self.flush_gallery()

    def _draw(self, w: FrameWork) -> None:
        frame, cfg = w.frame, self.config
        want_png = bool(cfg.frames_every) and frame.index % cfg.frames_every == 0
        if self.output_dir is None or not (cfg.write_video or want_png):
            return
        name = frame.source
        header = (name if name == frame.modality else f"{name} ({frame.modality})") + f" #{frame.index}"
        image = annotate_frame(frame.image, w.events, header=header)
        if cfg.write_video:
            writer = self.videos.get(name)
            if writer is None:
                writer = self.videos[name] = AnnotatedVideoWriter(
                    self.output_dir / f"annotated_{name}.avi", self.fps_of(name) or cfg.default_fps)
            writer.write(image)
        if want_png:
            _write_image(self.output_dir / "frames" / name / f"{frame.index:06d}.png", image)

    def _observe(self, w: FrameWork) -> None:
        """Add this frame's people to the gallery (unless an almost identical entry exists)."""
        g, frame = self.gallery, w.frame
        same = g.search(w.embeddings, modality=frame.modality, k=1, target=frame.modality) if len(g) else \
            [[] for _ in w.people]
        for i, ev in enumerate(w.events):
            if same[i] and same[i][0].similarity >= self.config.observe_novelty:
                continue
            identity = ev.identity if ev.matched else f"unknown-{uuid.uuid4().hex[:8]}"
            thumbnail = self._save_thumbnail(frame, w.people[i].box, i) if self.config.save_thumbnails else None
            (entry_id,) = g.add(w.embeddings[i:i + 1], identities=identity, modality=frame.modality,
                                camera=frame.source, timestamps=frame.timestamp, thumbnails=thumbnail,
                                track_ids=ev.track_id)
            ev.observed_entry_id, ev.observed_identity = entry_id, identity

    def _save_thumbnail(self, frame: Frame, box, person_index: int) -> str | None:
        """The person's box (clipped to the frame) as a JPEG at most 128 pixels tall; its path."""
        if self.output_dir is None:
            return None
        import cv2

        h, w = frame.image.shape[:2]
        x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
        x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        crop = frame.image[y0:y1, x0:x1]
        if crop.shape[0] > THUMBNAIL_HEIGHT:
            width = max(1, round(crop.shape[1] * THUMBNAIL_HEIGHT / crop.shape[0]))
            crop = cv2.resize(crop, (width, THUMBNAIL_HEIGHT), interpolation=cv2.INTER_AREA)
        path = self.output_dir / "thumbnails" / f"{frame.source}_{frame.index:06d}_{person_index}.jpg"
        with atomic_path(path) as tmp:  # the gallery entry refers to it: never a partial file
            _write_image(tmp, crop)
        return str(path.resolve())

    # ------------------------------------------------------------------ gallery
    def flush_gallery(self) -> bool:
        """Flush the gallery (the one save of the pipeline): a merge transaction when this run has
        unsaved changes, else a refresh that picks up what other processes enrolled meanwhile;
        returns whether it wrote."""
        self._last_flush = time.monotonic()
        g = self.gallery
        if g is None or g.path is None:
            return False
        with self.stats.time("gallery_flush"):
            wrote = g.flush()
        self.gallery_saved |= wrote
        return wrote

    # ------------------------------------------------------------------ end of the run
    def close(self) -> list[str]:
        """Close the events file and videos and flush the gallery a last time; what failed."""
        errors = []
        for what, action in [("events", self.events.close)] + \
                [(f"video {name}", writer.close) for name, writer in self.videos.items()] + \
                [("gallery flush", self.flush_gallery)]:
            try:
                action()
            except Exception as exc:  # report it, keep closing the rest and the summary
                errors.append(f"{what} failed: {type(exc).__name__}: {exc}")
                log.error("%s", errors[-1])
        return errors

    def paths(self) -> dict[str, str]:
        """The files written (``events``, ``video_<source>``, ``frames``)."""
        if self.output_dir is None:
            return {}
        out = {"events": str(self.output_dir / "events.jsonl")}
        out.update({f"video_{name}": str(w.path) for name, w in self.videos.items()})
        if self.config.frames_every:
            out["frames"] = str(self.output_dir / "frames")
        return out

    def save_summary(self, summary: RunSummary) -> Path | None:
        """``stats.json`` (atomically), recorded in ``summary.outputs``; ``None`` without a folder."""
        if self.output_dir is None:
            return None
        path = self.output_dir / "stats.json"
        summary.outputs["stats"] = str(path)
        atomic_write_json(path, summary.to_dict())
        return path


def _write_image(path: Path, image: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")


__all__ = ["PipelineOutput", "THUMBNAIL_HEIGHT"]
