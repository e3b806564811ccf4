"""The pipeline: threads joined by bounded queues, frame dropping, clean shutdown.

Threads and queues::

    reader[v] --frames[v] (size q)--> pose[v] --\\
                                                 +--work (size w)--> embed --results--> sink
    reader[i] --frames[i] (size q)--> pose[i] --/

- A *reader* takes frames from its source through a
  :class:`~spot_edge.pipeline.reconnecting.ReconnectingSource` (a live source that stops
  delivering is reopened with back-off and given up after ``reconnect_timeout``; a file that ends
  is *finished*) and puts them into the source's small queue. For live sources (and for files
  with ``realtime=True``) a full queue means the pipeline is behind: the oldest waiting frame is
  dropped (counted per source), so the pipeline processes recent frames instead of lagging
  further. Files without pacing are read as fast as the pipeline goes (nothing dropped).
- *pose* runs the pose source on the full frame and crops every person (image + pose maps).
- *embed* gathers crops across frames (up to ``max_batch``; one call of the backend's
  :meth:`~spot_edge.backends.base.Embedder.embed` per modality) and matches them against the other
  modality's gallery entries.
- *sink* hands each frame to :class:`~spot_edge.pipeline.output.PipelineOutput` (events, annotated
  video, gallery observations and flushes).
- Shutdown (end of all sources, :meth:`Pipeline.stop`, Ctrl-C / SIGTERM): readers stop, each puts an
  end marker that travels through every stage; frames still queued are discarded (counted); the
  gallery is flushed and the statistics saved. A second Ctrl-C aborts the wait (the gallery is
  still flushed).

A source that fails (a file that cannot be read, a camera that never came or stayed down past the
reconnect timeout) ends on its own; the others go on. The run ends when every source has ended.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from pathlib import Path

import numpy as np

from spot_edge.errors import InputError
from spot_edge.modality import MODALITIES, check_modality
from spot_edge.pipeline.config import DEFAULT_THRESHOLD, CameraInput, PipelineConfig, RunSummary
from spot_edge.pipeline.output import PipelineOutput
from spot_edge.pipeline.pose_sources import PoseResult
from spot_edge.pipeline.reconnecting import ReconnectingSource
from spot_edge.pipeline.sources import Frame, FrameError, as_bgr_frame
from spot_edge.pipeline.stages import FrameWork, crop_frame, match_embeddings
from spot_edge.pipeline.stats import Counters, LatencyStats
from spot_edge.pipeline.tracking import IoUTracker

log = logging.getLogger("spot_edge.pipeline")

_END = object()  # end-of-stream marker travelling through the queues


class Pipeline:
    """Visible/infrared cameras -> pose -> crops -> SPOT embeddings -> gallery matches -> events.

    >>> pipe = Pipeline([CameraInput("visible", "visible", src_v, pose_v),        # doctest: +SKIP
    ...                  CameraInput("infrared", "infrared", src_i, pose_i)],
    ...                 embedder, gallery, PipelineConfig(), output_dir="runs/cam")
    >>> summary = pipe.run()          # blocks; Ctrl-C stops cleanly

    Args:
        inputs: the cameras (names must differ).
        embedder: the SPOT backend, a :class:`spot_edge.backends.base.Embedder` (``embed``,
            ``preprocessing``, ``embedding_dim``, ``modalities``).
        gallery: a :class:`spot_edge.gallery.Gallery` to match against (and to add observations to
            with ``config.observe``), of this embedder's model; ``None``: events without identities.
        config: :class:`PipelineConfig`.
        output_dir: where events, annotated videos/frames and statistics go (``None``: nowhere).
        event_sinks: also given every event written, ``sink(event, json_line)`` (e.g.
            :class:`spot_edge.service.mqtt.MqttPublisher`); must return at once.
    """

    def __init__(self, inputs: list[CameraInput], embedder, gallery=None, config: PipelineConfig | None = None,
                 output_dir: str | Path | None = None, event_sinks=()) -> None:
        if not inputs:
            raise InputError("the pipeline needs at least one source")
        names = [i.name for i in inputs]
        if len(set(names)) != len(names):
            raise InputError(f"source names must differ, got {names}")
        for inp in inputs:
            check_modality(inp.modality)
            if inp.modality not in embedder.modalities:
                raise InputError(f"source {inp.name!r} is {inp.modality} but the model embeds only "
                                 f"{list(embedder.modalities)}; export or build the {inp.modality} graph too")
        self.inputs = list(inputs)
        self.embedder = embedder
        self.gallery = gallery
        self.config = config or PipelineConfig()
        self.output_dir = Path(output_dir) if output_dir is not None else None
        if gallery is not None:  # embeddings of another model are refused (ModelMismatchError)
            gallery.check_model(embedder)
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
        sources = {i.name: i.source for i in self.inputs}
        self.output = PipelineOutput(self.output_dir, self.config, gallery, self.counters, self.stats,
                                     fps_of=lambda name: sources[name].fps, event_sinks=event_sinks)
        self._closed: RunSummary | None = None

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

    @property
    def errors(self) -> list[str]:
        """What went wrong for good so far (the summary's ``errors``)."""
        return list(self._errors)

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
        still flushed on the way out). An embedder or output failure stops the run and is raised
        after the shutdown (the summary is saved first).
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
        """Stop, join the threads, close the outputs (last gallery flush), save and return the summary."""
        if self._closed is not None:
            return self._closed
        self.stop(self.stop_reason if self._stop.is_set() else "finished")
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            self._errors.append(f"threads still running at shutdown: {alive}")
        self._errors.extend(self.output.close())
        for name, c in self.counters.to_dict().items():
            if c["frames_read"] and c["errors"] == c["frames_read"]:
                self._errors.append(f"{name}: none of its {c['frames_read']} frames could be used; "
                                    f"last error: {c['last_error']}")
        self._closed = self.summary()
        self.output.save_summary(self._closed)
        return self._closed

    def summary(self) -> RunSummary:
        duration = time.perf_counter() - self._started_at if self._started_at else 0.0
        return RunSummary(
            duration_s=round(duration, 3), sources=self.counters.to_dict(), latency=self.stats.summary(),
            events=self.output.events.count,
            gallery_entries=len(self.gallery) if self.gallery is not None else None,
            gallery_saved=self.output.gallery_saved, threshold=self.threshold, stop_reason=self.stop_reason,
            errors=list(self._errors), outputs=self.output.paths())

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

    def _put_all(self, q: queue.Queue, frame: Frame) -> None:
        """Put, waiting for room (files: every frame is processed), unless the run is stopping."""
        while not self._stop.is_set():
            try:
                q.put(frame, timeout=0.1)
                return
            except queue.Full:
                continue
        self.counters.add(frame.source, "frames_discarded")

    def _fail(self, where: str, exc: BaseException) -> None:
        msg = f"{where}: {type(exc).__name__}: {exc}"
        log.error("%s", msg)
        self._errors.append(msg)
        if self._fatal is None:
            self._fatal = exc
        self.stop("error")

    # ------------------------------------------------------------------ stage: read
    def _read_loop(self, inp: CameraInput) -> None:
        name, src, cfg, c = inp.name, inp.source, self.config, self.counters
        q = self._frame_queues[name]
        put = self._put_latest if src.live or cfg.realtime else self._put_all
        feed = ReconnectingSource(name, src, c, cfg.reconnect_policy, self._stop, self.stats)
        frames = feed.frames()
        index, paced_from = 0, None
        try:
            for raw in frames:
                number, index = index, index + 1  # every frame delivered has its number (keypoint files)
                c.add(name, "frames_read")
                image = self._usable_frame(name, number, raw)
                if image is not None:
                    if cfg.realtime and not src.live:  # play the file at its frame rate, like a camera
                        paced_from = time.perf_counter() if paced_from is None else paced_from
                        wait = paced_from + number / (src.fps or cfg.default_fps) - time.perf_counter()
                        if wait > 0 and self._stop.wait(wait):
                            c.add(name, "frames_discarded")
                            break
                    put(q, Frame(source=name, modality=inp.modality, index=number, timestamp=time.time(),
                                 image=image))
                if cfg.max_frames is not None and index >= cfg.max_frames:
                    break
        except BaseException as exc:  # pragma: no cover - unexpected
            self._fail(f"reader {name}", exc)
        finally:
            frames.close()  # closes the source
            if cfg.max_frames is not None and index >= cfg.max_frames and feed.failure is None:
                c.set(name, "status", "finished")
            if feed.failure is not None:
                self._errors.append(feed.failure)
            self._put_wait(q, _END)

    def _usable_frame(self, name: str, number: int, raw) -> np.ndarray | None:
        """``raw`` as a ``(H, W, 3)`` uint8 BGR frame, or ``None`` (counted as an error) when the
        source could not give it or it cannot be used."""
        error = raw if isinstance(raw, FrameError) else None
        if error is None:
            try:
                return as_bgr_frame(raw)
            except FrameError as exc:
                error = exc
        self.counters.add(name, "errors")
        self.counters.set(name, "last_error", f"frame {number}: {error}")
        return None

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
    def _next_batch(self, first: FrameWork) -> tuple[list[FrameWork], FrameWork | None, int]:
        """``first`` and the frames already waiting, up to ``max_batch`` crops (whole frames only);
        the frame that did not fit (or ``None``) and the end markers met."""
        batch, crops, ends = [first], len(first.people), 0
        while crops < self.config.max_batch:
            try:
                nxt = self._work_queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _END:
                ends += 1
                continue
            if crops + len(nxt.people) > self.config.max_batch:
                return batch, nxt, ends
            batch.append(nxt)
            crops += len(nxt.people)
        return batch, None, ends

    def _embed_loop(self) -> None:
        ends, total = 0, len(self.inputs)
        failed = False
        pending: FrameWork | None = None
        while ends < total or pending is not None:
            item, pending = (pending, None) if pending is not None else (self._work_queue.get(), None)
            if item is _END:
                ends += 1
                continue
            batch, pending, more_ends = self._next_batch(item)
            ends += more_ends
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
        """One ``embedder.embed`` call per modality for the crops of ``batch``."""
        for modality in MODALITIES:
            items = [w for w in batch if w.frame.modality == modality and len(w.people)]
            if not items:
                continue
            images = np.concatenate([w.images for w in items])
            heatmaps = np.concatenate([w.heatmaps for w in items])
            t0 = time.perf_counter()
            emb = self.embedder.embed(images, heatmaps, modality)  # (N, D), split by the backend
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
                    self.output.emit(w)
                self.stats.record("end_to_end", time.perf_counter() - w.frame.captured)
            except Exception as exc:
                failed = True
                self._fail("output", exc)


__all__ = ["Pipeline", "PipelineConfig", "CameraInput", "RunSummary", "DEFAULT_THRESHOLD"]
