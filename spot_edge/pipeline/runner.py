"""The pipeline: threads joined by bounded queues, frame dropping, reconnection, clean shutdown.

Threads and queues::

    reader[v] --frames[v] (size q)--> pose[v] --\\
                                                 +--work (size w)--> embed --results--> sink
    reader[i] --frames[i] (size q)--> pose[i] --/

- A *reader* puts frames into its source's small queue. For live sources (and for files with
  ``realtime=True``) a full queue means the pipeline is behind: the oldest waiting frame is dropped
  (counted per source), so the pipeline processes recent frames instead of lagging further.
  Files without pacing are read as fast as the pipeline goes (nothing dropped).
- A live source that stops delivering frames is closed and reopened with exponential back-off
  (counted); a file that ends is *finished*.
- *pose* runs the pose source on the full frame and crops every person (image + pose maps).
- *embed* batches crops across frames (up to ``max_batch``; one call per modality) and matches
  them against the other modality's gallery entries.
- *sink* writes JSON-lines events, annotated video / PNG frames, adds observations to the gallery
  and flushes it periodically.
- Shutdown (end of all sources, :meth:`Pipeline.stop`, Ctrl-C / SIGTERM): readers stop, each puts an
  end marker that travels through every stage; frames still queued are discarded (counted); the
  gallery is flushed and the statistics saved. A second Ctrl-C aborts the wait (the gallery is
  still flushed).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spot_edge.pipeline.annotate import AnnotatedVideoWriter, annotate_frame
from spot_edge.pipeline.events import EventWriter
from spot_edge.pipeline.pose_sources import PoseResult, PoseSource
from spot_edge.pipeline.sources import Backoff, Frame, FrameSource, SourceError, as_bgr_frame
from spot_edge.pipeline.stages import FrameWork, crop_frame, embed_crops, match_embeddings
from spot_edge.pipeline.stats import Counters, LatencyStats, save_json
from spot_edge.pipeline.tracking import IoUTracker

log = logging.getLogger("spot_edge.pipeline")

DEFAULT_THRESHOLD = 0.5
_END = object()  # end-of-stream marker travelling through the queues


@dataclass
class PipelineConfig:
    """Knobs of :class:`Pipeline` (the ``spot-edge run`` options).

    Attributes:
        top_k: gallery entries reported per person.
        threshold: similarity needed to call a match; ``None``: the gallery's calibrated threshold,
            else ``DEFAULT_THRESHOLD``.
        max_batch: most crops per embedder call.
        frame_queue_size: frames waiting per source; beyond it the oldest is dropped (live sources).
        work_queue_size: cropped frames waiting for the embedder.
        realtime: pace file / folder sources at their frame rate and drop frames when behind, as
            a camera would; otherwise every frame of a file is processed.
        default_fps: frame rate of sources that do not tell (image folders), for pacing and video.
        observe: add what is seen to the gallery (matched people under their identity, others under
            a new ``unknown-*`` identity), so one camera's people can be found by the other.
        observe_novelty: skip an observation when an entry of its own modality is at least this
            similar (avoids one entry per frame for a person standing still).
        save_thumbnails: with ``observe`` and an output folder, save each observation's crop as
            ``thumbnails/<source>_<frame>_<person>.jpg`` and record its path in the gallery entry.
        flush_interval: seconds between gallery saves while running (also saved at the end).
        crop_expand: extra margin around each person box (fraction).
        min_pose_score, min_box_height: people below these are ignored.
        max_people: most people per frame (highest scores kept).
        write_video: write ``annotated_<source>.avi``.
        frames_every: also write every n-th annotated frame as PNG (0: never).
        only_matches: write events only for matched people.
        backoff_initial, backoff_max: reconnection delays (seconds) for live sources.
        max_reconnect_attempts: reopenings without a frame in between (failed or not) before a live
            source is given up (``None``: keep trying, the default for cameras).
        max_seconds: stop after this long (``None``: until the sources end or Ctrl-C).
        max_frames: stop each source after this many frames (``None``: no limit).
    """

    top_k: int = 5
    threshold: float | None = None
    max_batch: int = 32
    frame_queue_size: int = 2
    work_queue_size: int = 2
    realtime: bool = False
    default_fps: float = 10.0
    observe: bool = False
    observe_novelty: float = 0.9
    save_thumbnails: bool = True
    flush_interval: float = 30.0
    crop_expand: float = 0.0
    min_pose_score: float = 0.0
    min_box_height: float = 16.0
    max_people: int = 32
    write_video: bool = True
    frames_every: int = 0
    only_matches: bool = False
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    max_reconnect_attempts: int | None = None
    max_seconds: float | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.max_batch < 1 or self.frame_queue_size < 1 or self.work_queue_size < 1:
            raise ValueError("top_k, max_batch and the queue sizes must be >= 1")
        if self.threshold is not None and not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold is a cosine similarity in [-1, 1], got {self.threshold}")


@dataclass
class CameraInput:
    """One camera of the pipeline: a frame source, its modality and its pose source."""

    name: str
    modality: str
    source: FrameSource
    pose: PoseSource


@dataclass
class RunSummary:
    """What a run did (also saved as ``stats.json``)."""

    duration_s: float
    sources: dict[str, dict[str, Any]]
    latency: dict[str, dict[str, float]]
    events: int
    gallery_entries: int | None
    gallery_saved: bool
    threshold: float | None
    stop_reason: str
    errors: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return self.stop_reason in ("interrupted", "terminated")

    @property
    def failed_sources(self) -> list[str]:
        return [name for name, c in self.sources.items() if c["status"] == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Pipeline:
    """Visible/infrared cameras -> pose -> crops -> SPOT embeddings -> gallery matches -> events.

    >>> pipe = Pipeline([CameraInput("visible", "visible", src_v, pose_v),        # doctest: +SKIP
    ...                  CameraInput("infrared", "infrared", src_i, pose_i)],
    ...                 embedder, gallery, PipelineConfig(), output_dir="runs/cam")
    >>> summary = pipe.run()          # blocks; Ctrl-C stops cleanly

    Args:
        inputs: the cameras (names must differ).
        embedder: the SPOT backend (``embed``, ``preprocessing``, ``embedding_dim``).
        gallery: a :class:`spot_edge.gallery.Gallery` to match against (and to add observations to
            with ``config.observe``); ``None``: events without identities.
        config: :class:`PipelineConfig`.
        output_dir: where events, annotated videos/frames and statistics go (``None``: nowhere).
    """

    def __init__(self, inputs: list[CameraInput], embedder, gallery=None, config: PipelineConfig | None = None,
                 output_dir: str | Path | None = None) -> None:
        if not inputs:
            raise ValueError("the pipeline needs at least one source")
        names = [i.name for i in inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must differ, got {names}")
        for inp in inputs:
            from spot_edge.gallery import check_modality

            check_modality(inp.modality)
        self.inputs = list(inputs)
        self.embedder = embedder
        self.gallery = gallery
        self.config = config or PipelineConfig()
        self.output_dir = Path(output_dir) if output_dir is not None else None
        if gallery is not None and gallery.embedding_dim is not None and \
                int(gallery.embedding_dim) != int(embedder.embedding_dim):
            raise ValueError(f"the gallery holds {gallery.embedding_dim}-d embeddings but the model gives "
                             f"{embedder.embedding_dim}-d; use a gallery enrolled with this model")
        if self.config.threshold is not None:
            self.threshold: float | None = self.config.threshold
        elif gallery is not None and gallery.threshold is not None:
            self.threshold = gallery.threshold
        else:
            self.threshold = DEFAULT_THRESHOLD
        self.stats = LatencyStats()
        self.counters = Counters(names)
        self._stop = threading.Event()
        self.stop_reason = "finished"
        self._threads: list[threading.Thread] = []
        self._frame_queues = {n: queue.Queue(maxsize=self.config.frame_queue_size) for n in names}
        self._work_queue: queue.Queue = queue.Queue(maxsize=self.config.work_queue_size)
        self._sink_queue: queue.Queue = queue.Queue(maxsize=self.config.work_queue_size * 2)
        self._errors: list[str] = []
        self._fatal: BaseException | None = None
        self._started_at: float | None = None
        self._events = EventWriter(self.output_dir / "events.jsonl" if self.output_dir else None)
        self._videos: dict[str, AnnotatedVideoWriter] = {}
        self._last_flush = time.monotonic()
        self._gallery_saved = False
        self._closed: RunSummary | None = None
        self._source_fps: dict[str, float | None] = {n: None for n in names}

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        """Start all threads (returns at once)."""
        if self._threads:
            raise RuntimeError("the pipeline was already started")
        self._started_at = time.perf_counter()
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        for inp in self.inputs:
            self._spawn(self._read_loop, f"read-{inp.name}", inp)
            self._spawn(self._pose_loop, f"pose-{inp.name}", inp)
        self._spawn(self._embed_loop, "embed")
        self._spawn(self._sink_loop, "sink")

    def _spawn(self, fn, name: str, *args) -> None:
        t = threading.Thread(target=fn, args=args, name=f"spot-edge-{name}", daemon=True)
        self._threads.append(t)
        t.start()

    def stop(self, reason: str = "stopped") -> None:
        """Ask every stage to finish (returns at once; :meth:`close` waits)."""
        if not self._stop.is_set():
            self.stop_reason = reason
            self._stop.set()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end (sources finished or stopped); ``True`` when it has ended.

        Sleeps in short steps so the main thread keeps handling signals.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running:
            if self.config.max_seconds is not None and self._started_at is not None and \
                    time.perf_counter() - self._started_at > self.config.max_seconds:
                self.stop("time limit")
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def run(self, handle_signals: bool = True) -> RunSummary:
        """Start, wait until the sources end or Ctrl-C / SIGTERM, shut down cleanly, return the summary.

        With ``handle_signals`` (and in the main thread), the first SIGINT/SIGTERM stops the run
        gracefully; a second SIGINT raises ``KeyboardInterrupt`` out of the wait (the gallery is
        still flushed on the way out).
        """
        installed = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            def on_signal(signum, _frame):
                if self._stop.is_set() and signum == signal.SIGINT:
                    raise KeyboardInterrupt
                log.warning("%s: stopping (flushing the gallery); press Ctrl-C again to abort the wait",
                            signal.Signals(signum).name)
                self.stop("interrupted" if signum == signal.SIGINT else "terminated")

            for sig in (signal.SIGINT, signal.SIGTERM):
                installed[sig] = signal.signal(sig, on_signal)
        try:
            self.start()
            self.wait()
        except KeyboardInterrupt:
            self.stop("interrupted")
            return self.close(timeout=5.0)
        finally:
            for sig, old in installed.items():
                signal.signal(sig, old)
        summary = self.close()
        if self._fatal is not None:
            raise self._fatal
        return summary

    def close(self, timeout: float = 30.0) -> RunSummary:
        """Stop, join the threads, flush the gallery, close outputs, save and return the summary."""
        if self._closed is not None:
            return self._closed
        self.stop(self.stop_reason if self._stop.is_set() else "finished")
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            self._errors.append(f"threads still running at shutdown: {alive}")
        self._events.close()
        for writer in self._videos.values():
            writer.close()
        try:
            self._flush_gallery(force=True)
        except Exception as exc:  # report, do not lose the summary
            self._errors.append(f"gallery flush failed: {exc}")
            log.error("gallery flush failed: %s", exc)
        self._closed = self.summary()
        if self.output_dir is not None:
            path = save_json(self.output_dir / "stats.json", self._closed.to_dict())
            self._closed.outputs["stats"] = str(path)
        return self._closed

    def summary(self) -> RunSummary:
        duration = time.perf_counter() - self._started_at if self._started_at else 0.0
        outputs = {}
        if self.output_dir is not None:
            outputs["events"] = str(self.output_dir / "events.jsonl")
            for name, w in self._videos.items():
                outputs[f"video_{name}"] = str(w.path)
            if self.config.frames_every:
                outputs["frames"] = str(self.output_dir / "frames")
        return RunSummary(
            duration_s=round(duration, 3), sources=self.counters.to_dict(), latency=self.stats.summary(),
            events=self._events.count, gallery_entries=len(self.gallery) if self.gallery is not None else None,
            gallery_saved=self._gallery_saved, threshold=self.threshold, stop_reason=self.stop_reason,
            errors=list(self._errors), outputs=outputs)

    # ------------------------------------------------------------------ queue helpers
    def _put_wait(self, q: queue.Queue, item) -> None:
        """Blocking put that downstream always drains (every stage consumes until the end marker)."""
        while True:
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _put_latest(self, q: queue.Queue, frame: Frame) -> None:
        """Put, dropping the oldest waiting frame when the queue is full (pipeline behind)."""
        while True:
            try:
                q.put_nowait(frame)
                return
            except queue.Full:
                try:
                    old = q.get_nowait()
                except queue.Empty:
                    continue
                self.counters.add(old.source, "frames_dropped")

    def _fail(self, where: str, exc: BaseException) -> None:
        msg = f"{where}: {type(exc).__name__}: {exc}"
        log.error("%s", msg)
        self._errors.append(msg)
        if self._fatal is None:
            self._fatal = exc
        self.stop("error")

    # ------------------------------------------------------------------ stage: read
    def _read_loop(self, inp: CameraInput) -> None:
        name, src, cfg = inp.name, inp.source, self.config
        q = self._frame_queues[name]
        c = self.counters
        drop_when_behind = src.live or cfg.realtime
        backoff = Backoff(cfg.backoff_initial, cfg.backoff_max)
        opened, reconnecting, attempts, index = False, False, 0, 0  # attempts: reopenings since the last frame
        t_pace, n_pace = 0.0, 0
        try:
            while not self._stop.is_set():
                if cfg.max_frames is not None and index >= cfg.max_frames:
                    c.set(name, "status", "finished")
                    break
                if not opened:
                    if reconnecting:
                        attempts += 1
                        if cfg.max_reconnect_attempts is not None and attempts > cfg.max_reconnect_attempts:
                            msg = (f"{name}: no frames after {cfg.max_reconnect_attempts} reconnection attempts "
                                   f"({c.get(name).last_error})")
                            c.set(name, "status", "failed")
                            self._errors.append(msg)
                            log.error("%s", msg)
                            break
                        c.add(name, "reconnect_attempts")
                    try:
                        src.open()
                    except (SourceError, OSError) as exc:
                        c.set(name, "last_error", str(exc))
                        if not src.live:
                            c.set(name, "status", "failed")
                            self._errors.append(f"{name}: {exc}")
                            log.error("%s: %s", name, exc)
                            break
                        c.set(name, "status", "reconnecting")
                        reconnecting = True
                        delay = backoff.next_delay()
                        log.warning("%s: %s; retrying in %.2fs", name, exc, delay)
                        self._stop.wait(delay)
                        continue
                    opened = True
                    if reconnecting:
                        c.add(name, "reconnects")
                        log.warning("%s: reconnected", name)
                        reconnecting = False
                    c.set(name, "status", "running")
                    self._source_fps[name] = src.fps or cfg.default_fps
                    t_pace, n_pace = time.perf_counter(), 0
                t0 = time.perf_counter()
                try:
                    image = src.read()
                except Exception as exc:  # a driver error is a disconnect, not a crash
                    c.set(name, "last_error", f"read failed: {exc}")
                    image = None
                if image is None:
                    if not src.live:
                        c.set(name, "status", "finished")
                        break
                    c.add(name, "disconnects")
                    c.set(name, "status", "reconnecting")
                    src.close()
                    opened, reconnecting = False, True
                    delay = backoff.next_delay()
                    log.warning("%s: no frame (camera dropped); reconnecting in %.2fs", name, delay)
                    self._stop.wait(delay)
                    continue
                backoff.reset()
                attempts = 0
                self.stats.record(f"read/{name}", time.perf_counter() - t0)
                try:
                    image = as_bgr_frame(np.asarray(image))
                except SourceError as exc:
                    c.add(name, "errors")
                    c.set(name, "last_error", str(exc))
                    continue
                if cfg.realtime and not src.live:  # play the file at its frame rate, like a camera
                    due = t_pace + n_pace / (src.fps or cfg.default_fps)
                    n_pace += 1
                    wait = due - time.perf_counter()
                    if wait > 0 and self._stop.wait(wait):
                        break
                frame = Frame(source=name, modality=inp.modality, index=index, timestamp=time.time(), image=image)
                index += 1
                c.add(name, "frames_read")
                if drop_when_behind:
                    self._put_latest(q, frame)
                else:
                    while True:
                        if self._stop.is_set():
                            c.add(name, "frames_discarded")
                            break
                        try:
                            q.put(frame, timeout=0.1)
                            break
                        except queue.Full:
                            continue
        except BaseException as exc:  # pragma: no cover - unexpected
            self._fail(f"reader {name}", exc)
        finally:
            with contextlib.suppress(Exception):
                src.close()
            if c.get(name).status in ("running", "reconnecting", "starting"):
                c.set(name, "status", "stopped")
            self._put_wait(q, _END)

    # ------------------------------------------------------------------ stage: pose + crop
    def _select_people(self, pose: PoseResult) -> PoseResult:
        cfg = self.config
        people = [p for p in pose.people
                  if p.score >= cfg.min_pose_score and (p.box[3] - p.box[1]) >= cfg.min_box_height]
        people.sort(key=lambda p: -p.score)
        return PoseResult(people=people[:cfg.max_people], maps=pose.maps, stride=pose.stride)

    def _pose_loop(self, inp: CameraInput) -> None:
        name = inp.name
        q = self._frame_queues[name]
        prep = self.embedder.preprocessing
        tracker = IoUTracker()
        while True:
            frame = q.get()
            if frame is _END:
                break
            if self._stop.is_set():
                self.counters.add(name, "frames_discarded")
                continue
            try:
                with self.stats.time(f"pose/{name}"):
                    pose = self._select_people(inp.pose(frame))
                with self.stats.time("crop"):
                    images, heatmaps = crop_frame(frame.image, pose, prep, self.config.crop_expand)
            except Exception as exc:
                self.counters.add(name, "errors")
                self.counters.set(name, "last_error", f"frame {frame.index}: {type(exc).__name__}: {exc}")
                if self.counters.get(name).errors <= 3:
                    log.warning("%s frame %d: pose/crop failed: %s", name, frame.index, exc)
                continue
            tracks = tracker.update([p.box for p in pose.people], frame.index)
            self._put_wait(self._work_queue, FrameWork(frame=frame, people=pose.people, track_ids=tracks,
                                                       images=images, heatmaps=heatmaps))
        self._put_wait(self._work_queue, _END)

    # ------------------------------------------------------------------ stage: embed + match
    def _embed_loop(self) -> None:
        ends, total = 0, len(self.inputs)
        failed = False
        while ends < total:
            item = self._work_queue.get()
            if item is _END:
                ends += 1
                continue
            batch, crops = [item], len(item.people)
            while crops < self.config.max_batch:  # gather what is already waiting
                try:
                    nxt = self._work_queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _END:
                    ends += 1
                    continue
                batch.append(nxt)
                crops += len(nxt.people)
            if self._stop.is_set() or failed:
                for w in batch:
                    self.counters.add(w.frame.source, "frames_discarded")
                continue
            try:
                self._embed_batch(batch)
                for w in batch:
                    with self.stats.time("match"):
                        w.events = match_embeddings(w, self.gallery, self.threshold, self.config.top_k)
                    self._put_wait(self._sink_queue, w)
            except Exception as exc:
                failed = True
                self._fail("embedder", exc)
        self._put_wait(self._sink_queue, _END)

    def _embed_batch(self, batch: list[FrameWork]) -> None:
        for modality in ("visible", "infrared"):
            items = [w for w in batch if w.frame.modality == modality and len(w.people)]
            if not items:
                continue
            images = np.concatenate([w.images for w in items])
            heatmaps = np.concatenate([w.heatmaps for w in items])
            t0 = time.perf_counter()
            emb = embed_crops(self.embedder, images, heatmaps, modality, self.config.max_batch)
            dt = time.perf_counter() - t0
            self.stats.record("embed", dt)
            self.stats.record("embed_per_crop", dt / len(images))
            offset = 0
            for w in items:
                w.embeddings = emb[offset:offset + len(w.people)]
                offset += len(w.people)

    # ------------------------------------------------------------------ stage: sink
    def _sink_loop(self) -> None:
        failed = False
        while True:
            w = self._sink_queue.get()
            if w is _END:
                break
            if failed:
                continue
            try:
                with self.stats.time("sink"):
                    self._emit(w)
                self.stats.record("end_to_end", time.perf_counter() - w.frame.captured)
                if time.monotonic() - self._last_flush > self.config.flush_interval:
                    self._flush_gallery()
            except Exception as exc:
                failed = True
                self._fail("output", exc)

    def _emit(self, w: FrameWork) -> None:
        frame, cfg = w.frame, self.config
        if cfg.observe and self.gallery is not None and len(w.people):
            self._observe(w)
        name = frame.source
        for ev in w.events:
            if not cfg.only_matches or ev.matched:
                self._events.write(ev)
        self.counters.add(name, "frames_processed")
        self.counters.add(name, "people", len(w.people))
        self.counters.add(name, "events", len(w.events))
        self.counters.add(name, "matches", sum(ev.matched for ev in w.events))
        if self.output_dir is None or not (cfg.write_video or cfg.frames_every):
            return
        want_png = cfg.frames_every and frame.index % cfg.frames_every == 0
        if not (cfg.write_video or want_png):
            return
        header = (name if name == frame.modality else f"{name} ({frame.modality})") + f" #{frame.index}"
        image = annotate_frame(frame.image, w.events, header=header)
        if cfg.write_video:
            writer = self._videos.get(name)
            if writer is None:
                writer = self._videos[name] = AnnotatedVideoWriter(
                    self.output_dir / f"annotated_{name}.avi", self._source_fps.get(name) or cfg.default_fps)
            writer.write(image)
        if want_png:
            import cv2

            folder = self.output_dir / "frames" / name
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{frame.index:06d}.png"), image)

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
        if crop.shape[0] > 128:
            crop = cv2.resize(crop, (max(1, round(crop.shape[1] * 128 / crop.shape[0])), 128),
                              interpolation=cv2.INTER_AREA)
        folder = self.output_dir / "thumbnails"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{frame.source}_{frame.index:06d}_{person_index}.jpg"
        cv2.imwrite(str(path), crop)
        return str(path.resolve())

    def _flush_gallery(self, force: bool = False) -> None:
        self._last_flush = time.monotonic()
        if self.gallery is not None and self.gallery.path is not None and (self.gallery.dirty or force):
            if self.gallery.dirty:
                with self.stats.time("gallery_flush"):
                    self.gallery.save()
                self._gallery_saved = True


def build_inputs(visible=None, infrared=None, visible_keypoints=None, infrared_keypoints=None,
                 pose_weights=None, pose_height: int | None = 368, pose_device: str = "auto",
                 fps: float | None = None) -> list[CameraInput]:
    """The cameras of a run from command-line style specs.

    Args:
        visible, infrared: source specs (see :func:`spot_edge.pipeline.sources.open_source`); at
            least one.
        visible_keypoints, infrared_keypoints: JSON-lines keypoint files (another detector) for
            that source; sources without one use the OpenPose network from ``pose_weights``
            (loaded once, shared).
        pose_height: frames are downscaled to this height for the OpenPose network.
        pose_device: torch device of the OpenPose network ("auto": CUDA when available).
        fps: frame rate of image folders.
    """
    from spot_edge.pipeline.pose_sources import KeypointFileSource, OpenPoseSource
    from spot_edge.pipeline.sources import open_source

    specs = [(n, s, k) for n, s, k in (("visible", visible, visible_keypoints),
                                       ("infrared", infrared, infrared_keypoints)) if s is not None]
    if not specs:
        raise ValueError("give at least one source: --visible and/or --infrared")
    openpose = None
    inputs = []
    for name, spec, keypoints in specs:
        if keypoints is not None:
            pose = KeypointFileSource(keypoints)
        elif pose_weights is not None:
            if openpose is None:
                if pose_device == "auto":
                    import torch

                    pose_device = "cuda" if torch.cuda.is_available() else "cpu"
                openpose = OpenPoseSource.from_weights(pose_weights, max_height=pose_height, device=pose_device)
            pose = openpose
        else:
            raise ValueError(f"no pose source for --{name}: give --pose-weights (OpenPose) or "
                             f"--{name}-keypoints (keypoints from another detector)")
        inputs.append(CameraInput(name, name, open_source(spec, fps=fps), pose))
    return inputs


__all__ = ["PipelineConfig", "CameraInput", "Pipeline", "RunSummary", "DEFAULT_THRESHOLD", "build_inputs"]
