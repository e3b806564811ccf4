"""The real-time pipeline on generated videos with a fake embedder and keypoint pose sources."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from spot_edge.gallery import Gallery
from spot_edge.pipeline import (
    CameraInput,
    Frame,
    FrameError,
    ImageFolderSource,
    KeypointFileSource,
    LatencyStats,
    OpenCVSource,
    Pipeline,
    PipelineConfig,
    SourceError,
    open_source,
)
from spot_edge.pipeline.events import read_events
from spot_edge.pipeline.stages import crop_frame

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_fakes import FakeCamera, FakeEmbedder, OnePersonPose, random_frames, read_video, write_test_video  # noqa: E402,E501

TESTS_DIR = Path(__file__).parent


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    out = {}
    for modality in ("visible", "infrared"):
        kp = write_test_video(d / f"{modality}.avi", modality, frames=16)
        out[modality] = (d / f"{modality}.avi", kp)
    return out


def enrolled_gallery(videos, path=None) -> Gallery:
    """alice and bob enrolled from frame 0 of the visible video."""
    video, kp = videos["visible"]
    frame0 = read_video(video)[0]
    emb = FakeEmbedder()
    pose = KeypointFileSource(kp)(Frame("v", "visible", 0, 0.0, frame0))
    images, heatmaps = crop_frame(frame0, pose, emb.preprocessing)
    g = Gallery(path=path)
    g.add(emb.embed(images, heatmaps, "visible"), identities=["alice", "bob"], modality="visible", camera="cam1")
    if path is not None:
        g.save()
    return g


def test_end_to_end_on_videos(videos, tmp_path):
    g = enrolled_gallery(videos, tmp_path / "gallery")
    emb = FakeEmbedder()
    inputs = [CameraInput(m, m, open_source(str(videos[m][0])), KeypointFileSource(videos[m][1]))
              for m in ("visible", "infrared")]
    cfg = PipelineConfig(frames_every=8, max_batch=3, top_k=2)
    summary = Pipeline(inputs, emb, g, cfg, output_dir=tmp_path / "out").run()

    for m in ("visible", "infrared"):
        c = summary.sources[m]
        assert c["status"] == "finished"
        assert c["frames_read"] == c["frames_processed"] == 16 and c["frames_dropped"] == 0
        assert c["people"] == 32 and c["disconnects"] == 0  # a file that ends is finished, not dropped
    assert max(emb.batch_sizes) <= 3 and set(emb.embedded_modalities) == {"visible", "infrared"}

    events = read_events(tmp_path / "out" / "events.jsonl")
    assert len(events) == summary.events == 64
    ir = [e for e in events if e["source"] == "infrared"]
    assert len(ir) == 32 and all(e["matched"] for e in ir)
    # infrared queries are matched against the visible entries, and find the right person
    truth = {0: "alice", 1: "bob"}
    assert all(e["identity"] == truth[e["person_index"]] for e in ir)
    assert all(e["entry"]["modality"] == "visible" and len(e["top_k"]) == 2 for e in ir)
    e = ir[0]
    assert set(e) >= {"timestamp", "time", "source", "frame_index", "box", "identity", "similarity", "entry"}
    assert len(e["box"]) == 4 and 0.9 < e["similarity"] <= 1.0
    # the IoU tracker keeps one track per walking person over the whole video
    assert {(e["person_index"], e["track_id"]) for e in ir} == {(0, 0), (1, 1)}
    # visible queries search infrared entries: the gallery has none, so nothing matches
    vis = [e for e in events if e["source"] == "visible"]
    assert all(not e["matched"] and e["similarity"] is None for e in vis)

    # annotated video per source and PNG frames
    for m in ("visible", "infrared"):
        frames = read_video(tmp_path / "out" / f"annotated_{m}.avi")
        assert len(frames) == 16 and frames[0].shape == (120, 160, 3)
        assert sorted(p.name for p in (tmp_path / "out" / "frames" / m).iterdir()) == ["000000.png", "000008.png"]
    # statistics: printed table and saved JSON with p50/p90/p99 per stage
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    for stage in ("pose/visible", "pose/infrared", "crop", "embed", "match", "end_to_end"):
        assert {"p50_ms", "p90_ms", "p99_ms", "count"} <= set(stats["latency"][stage])
    assert stats["sources"]["infrared"]["matches"] == 32
    assert summary.stop_reason == "finished" and not summary.errors


def test_observe_then_cross_match(videos, tmp_path):
    """Observed infrared people are added to the gallery; later visible frames find them."""
    emb = FakeEmbedder()
    g = Gallery(path=tmp_path / "g")
    ir = CameraInput("ir-cam", "infrared", open_source(str(videos["infrared"][0])),
                     KeypointFileSource(videos["infrared"][1]))
    Pipeline([ir], emb, g, PipelineConfig(observe=True, write_video=False), output_dir=tmp_path / "o1").run()
    stored = Gallery.load(tmp_path / "g")
    assert 2 <= len(stored) <= 4  # two people, near-duplicates skipped
    assert all(e.identity.startswith("unknown-") and e.camera == "ir-cam" for e in stored.entries)
    thumb = cv2.imread(stored.entries[0].thumbnail)  # the observation's crop, for retrieval pictures
    assert thumb is not None and thumb.shape[0] > 50

    vis = CameraInput("vis-cam", "visible", open_source(str(videos["visible"][0])),
                      KeypointFileSource(videos["visible"][1]))
    Pipeline([vis], emb, stored, PipelineConfig(write_video=False), output_dir=tmp_path / "o2").run()
    events = read_events(tmp_path / "o2" / "events.jsonl")
    assert all(e["matched"] and e["identity"].startswith("unknown-") for e in events)
    assert len({e["identity"] for e in events if e["person_index"] == 0}) == 1


@pytest.mark.parametrize("raise_on_fail", [True, False], ids=["read-raises", "read-returns-nothing"])
def test_camera_drop_is_reconnected_and_counted(tmp_path, raise_on_fail):
    cam = FakeCamera(random_frames(30), fps=300, fail_at=(10, 20), open_failures=2, raise_on_fail=raise_on_fail)
    g = Gallery(path=tmp_path / "g")
    g.add(np.random.default_rng(1).standard_normal((3, 8)), identities=["a", "b", "c"], modality="infrared")
    cfg = PipelineConfig(backoff_initial=0.01, backoff_max=0.05, max_reconnect_attempts=3, write_video=False)
    pipe = Pipeline([CameraInput("cam", "visible", cam, OnePersonPose())], FakeEmbedder(), g, cfg,
                    output_dir=tmp_path / "out")
    summary = pipe.run(handle_signals=False)
    c = summary.sources["cam"]
    assert c["disconnects"] == 3  # two scripted drops, and the camera going away at the end
    assert c["reconnects"] == 2
    assert c["reconnect_attempts"] == 3 * 3  # per drop: two failed reopenings + the good one; at the end 3 failed
    assert c["status"] == "failed"  # gave up after max_reconnect_attempts when it went away for good
    assert "gone" in c["last_error"]
    assert c["frames_read"] == cam.delivered == 30
    assert c["frames_read"] == c["frames_processed"] + c["frames_dropped"] + c["frames_discarded"]
    assert c["frames_processed"] > 0 and summary.events == c["people"]
    assert summary.failed_sources == ["cam"]


class FlakyVideoCamera:
    """A generated video played as a live camera whose connection drops at ``drop_at`` (reads fail,
    then ``open_failures`` reopenings fail); after reconnecting it continues where it was."""

    live = True
    description = "flaky video camera"

    def __init__(self, path, drop_at: int, open_failures: int = 2) -> None:
        self.inner = OpenCVSource(str(path))
        self.fps = None
        self.drop_at, self.open_failures = drop_at, open_failures
        self.position, self.dropped, self.pending = 0, False, 0

    def open(self) -> None:
        if self.pending:
            self.pending -= 1
            raise SourceError("camera not answering")
        self.inner.open()
        self.inner._cap.set(cv2.CAP_PROP_POS_FRAMES, self.position)

    def read(self):
        if self.position == self.drop_at and not self.dropped:
            self.dropped, self.pending = True, self.open_failures
            return None
        image = self.inner.read()
        if image is None:
            raise SourceError("end of the recording")  # keeps failing: the run is stopped by the test
        self.position += 1
        return image

    def close(self) -> None:
        self.inner.close()


def test_generated_video_camera_drops_mid_stream(videos, tmp_path):
    """The infrared camera (a generated video) drops at frame 6 and comes back: counted, reconnected,
    and the frames after the drop are matched as before."""
    g = enrolled_gallery(videos)
    cam = FlakyVideoCamera(videos["infrared"][0], drop_at=6)
    cfg = PipelineConfig(backoff_initial=0.02, backoff_max=0.1, max_reconnect_attempts=3, write_video=False,
                         frame_queue_size=64)  # large queue: this test wants every frame, not the latest
    pipe = Pipeline([CameraInput("ir", "infrared", cam, KeypointFileSource(videos["infrared"][1]))],
                    FakeEmbedder(), g, cfg, output_dir=tmp_path / "out")
    summary = pipe.run(handle_signals=False)
    c = summary.sources["ir"]
    # the drop at frame 6 (2 failed reopenings, then back), then the end of the recording, which is
    # given up after 3 reopenings that deliver nothing (4 reads that fail)
    assert c["disconnects"] == 1 + 4 and c["reconnects"] == 1 + 3 and c["reconnect_attempts"] == 3 + 3
    assert c["status"] == "failed" and "end of the recording" in c["last_error"]
    assert c["frames_read"] == 16 and c["frames_processed"] == 16 and c["frames_dropped"] == 0
    events = read_events(tmp_path / "out" / "events.jsonl")
    assert sorted({e["frame_index"] for e in events}) == list(range(16))
    assert all(e["matched"] and e["identity"] == ("alice", "bob")[e["person_index"]] for e in events)


def test_drops_frames_when_embedder_is_slow(tmp_path):
    """A 200 fps camera and an embedder of 100 crops/s: frames are dropped, latency does not grow."""
    cam = FakeCamera(random_frames(8), fps=200, loop=True)
    emb = FakeEmbedder(delay_per_crop=0.01)
    pipe = Pipeline([CameraInput("cam", "infrared", cam, OnePersonPose())], emb, None,
                    PipelineConfig(write_video=False, max_seconds=1.2), output_dir=None)
    summary = pipe.run(handle_signals=False)
    c = summary.sources["cam"]
    assert c["frames_read"] > 60  # ~240 on an idle machine
    assert c["frames_dropped"] > 0.3 * c["frames_read"]
    assert 10 < c["frames_processed"] < 140
    assert c["frames_read"] == c["frames_processed"] + c["frames_dropped"] + c["frames_discarded"]
    # bounded queues: a processed frame waited behind a few frames, not the whole backlog (about
    # 10 ms of embedding per frame; without dropping, the backlog would grow to ~1 s by the end)
    assert summary.latency["end_to_end"]["p99_ms"] < 500
    assert summary.stop_reason == "time limit"


def test_file_sources_realtime_pacing_drops(videos, tmp_path):
    """With realtime=True a file plays at its frame rate like a camera (and drops when behind)."""
    video, kp = videos["visible"]
    src = OpenCVSource(str(video))
    t0 = time.perf_counter()
    summary = Pipeline([CameraInput("v", "visible", src, KeypointFileSource(kp))], FakeEmbedder(delay_per_crop=0.1),
                       None, PipelineConfig(realtime=True, write_video=False)).run(handle_signals=False)
    elapsed = time.perf_counter() - t0
    c = summary.sources["v"]
    assert elapsed > 1.4  # 16 frames at 10 fps
    assert c["frames_read"] == 16 and c["frames_dropped"] > 0 and c["status"] == "finished"


def test_stop_flushes_gallery(tmp_path):
    cam = FakeCamera(random_frames(5), fps=50, loop=True)
    g = Gallery(path=tmp_path / "g")
    pipe = Pipeline([CameraInput("cam", "visible", cam, OnePersonPose())], FakeEmbedder(), g,
                    PipelineConfig(observe=True, observe_novelty=1.01, flush_interval=3600, write_video=False),
                    output_dir=tmp_path / "out")
    pipe.start()
    deadline = time.monotonic() + 10
    while pipe.counters.get("cam").frames_processed < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not (tmp_path / "g" / "gallery.json").exists()  # nothing flushed yet (interval 1 h)
    pipe.stop()
    summary = pipe.close()
    stored = Gallery.load(tmp_path / "g")
    assert len(stored) == summary.gallery_entries >= 5 and summary.gallery_saved
    assert summary.sources["cam"]["status"] == "stopped"


_SIGINT_SCRIPT = textwrap.dedent("""
    import sys, threading, time
    sys.path.insert(0, {tests!r})
    from pipeline_fakes import FakeCamera, FakeEmbedder, OnePersonPose, random_frames
    from spot_edge.gallery import Gallery
    from spot_edge.pipeline import CameraInput, Pipeline, PipelineConfig

    g = Gallery(path={gallery!r})
    cam = FakeCamera(random_frames(4), fps=50, loop=True)
    pipe = Pipeline([CameraInput("cam", "infrared", cam, OnePersonPose())], FakeEmbedder(), g,
                    PipelineConfig(observe=True, observe_novelty=1.01, flush_interval=3600, write_video=False),
                    output_dir={out!r})

    def announce():  # once five frames went all the way through (each one observed)
        while pipe.counters.get("cam").frames_processed < 5:
            time.sleep(0.01)
        print("running", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    summary = pipe.run()
    print("stopped", summary.stop_reason, summary.gallery_entries, flush=True)
""")


def test_sigint_shuts_down_cleanly_and_flushes_gallery(tmp_path):
    script = _SIGINT_SCRIPT.format(tests=str(TESTS_DIR), gallery=str(tmp_path / "g"), out=str(tmp_path / "out"))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(TESTS_DIR.parent))
    try:
        line = proc.stdout.readline()
        assert line.strip() == "running", proc.stderr.read()
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    words = out.split()
    assert words[:2] == ["stopped", "interrupted"], out + err
    n = int(words[2])
    assert n >= 5 and len(Gallery.load(tmp_path / "g")) == n
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["stop_reason"] == "interrupted"


def test_embedder_error_stops_run_and_is_raised(tmp_path):
    class Broken(FakeEmbedder):
        def embed(self, *a, **k):
            raise RuntimeError("CUDA out of memory (fake)")

    cam = FakeCamera(random_frames(5), fps=100, loop=True)
    g = Gallery(path=tmp_path / "g")
    g.add(np.ones((1, 8)), identities="x", modality="infrared")
    pipe = Pipeline([CameraInput("cam", "visible", cam, OnePersonPose())], Broken(), g,
                    PipelineConfig(write_video=False), output_dir=tmp_path / "out")
    with pytest.raises(RuntimeError, match="out of memory"):
        pipe.run(handle_signals=False)
    assert Gallery.load(tmp_path / "g").entries[0].identity == "x"  # flushed on the way out
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["stop_reason"] == "error"


def test_pose_errors_are_counted_not_fatal(tmp_path):
    class Flaky(OnePersonPose):
        def __call__(self, frame):
            if frame.index % 2:
                raise ValueError("bad frame")
            return super().__call__(frame)

    src = ImageFolderSource(_write_folder(tmp_path / "imgs", 6))
    summary = Pipeline([CameraInput("f", "visible", src, Flaky())], FakeEmbedder(), None,
                       PipelineConfig(write_video=False), output_dir=None).run(handle_signals=False)
    c = summary.sources["f"]
    assert c["errors"] == 3 and c["frames_processed"] == 3 and "bad frame" in c["last_error"]


def _write_folder(folder: Path, n: int, corrupt: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(random_frames(n)):
        if i == corrupt:
            (folder / f"{i:03d}.png").write_bytes(b"not a png")
        else:
            cv2.imwrite(str(folder / f"{i:03d}.png"), f)
    return folder


def test_sources(tmp_path, videos):
    assert open_source("0").kind == "camera" and open_source("0").live
    assert open_source("rtsp://10.0.0.2/stream").kind == "stream"
    gst = open_source("videotestsrc ! videoconvert ! appsink")
    assert gst.kind == "gstreamer" and gst.live
    assert not open_source(str(videos["visible"][0])).live
    csi = open_source("csi://1?width=1920&height=1080&fps=30")
    assert csi.kind == "gstreamer" and "sensor-id=1" in csi.spec and "width=1920" in csi.spec and csi.live
    with pytest.raises(ValueError, match="unknown options"):
        open_source("csi://0?zoom=2")
    with pytest.raises(FileNotFoundError, match="not found"):
        open_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(ValueError, match="empty source"):
        open_source("  ")

    folder = open_source(str(_write_folder(tmp_path / "imgs", 4, corrupt=2)))
    assert isinstance(folder, ImageFolderSource) and not folder.live
    folder.open()
    got = []
    for _ in range(4):  # a corrupt file is one unusable frame: FrameError, and the folder goes on
        try:
            got.append(folder.read())
        except FrameError:
            got.append(None)
    assert folder.read() is None  # the end
    assert [g is not None for g in got] == [True, True, False, True] and folder.skipped_files == ["002.png"]
    assert all(g.shape == (120, 160, 3) and g.dtype == np.uint8 for g in got if g is not None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolderSource(tmp_path / "empty")

    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(SourceError, match="cannot open"):
        OpenCVSource(str(bad)).open()


def test_unopenable_file_source_fails_cleanly(tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"\x00" * 100)
    summary = Pipeline([CameraInput("v", "visible", OpenCVSource(str(bad)), OnePersonPose())], FakeEmbedder(),
                       None, PipelineConfig(write_video=False)).run(handle_signals=False)
    assert summary.sources["v"]["status"] == "failed" and "cannot open" in summary.errors[0]


def test_grey_and_16bit_frames(tmp_path):
    """Infrared cameras deliver grey or 16-bit frames: they are converted to 3-channel uint8."""
    frames = [np.random.default_rng(0).integers(0, 255, (96, 128), dtype=np.uint8),
              np.random.default_rng(1).integers(0, 65535, (96, 128, 1), dtype=np.uint16)]
    cam = FakeCamera(frames, fps=100)
    summary = Pipeline([CameraInput("ir", "infrared", cam, OnePersonPose())], FakeEmbedder(), None,
                       PipelineConfig(write_video=False, max_reconnect_attempts=0, backoff_initial=0.01),
                       ).run(handle_signals=False)
    assert summary.sources["ir"]["frames_processed"] == 2 and summary.sources["ir"]["errors"] == 0


def test_latency_stats():
    s = LatencyStats()
    for v in range(1, 101):
        s.record("x", v / 1000)
    out = s.summary()["x"]
    assert out["count"] == 100 and out["p50_ms"] == pytest.approx(50.5) and out["p99_ms"] == pytest.approx(99.01)
    with s.time("y"):
        time.sleep(0.001)
    assert s.summary()["y"]["p50_ms"] >= 1.0
    assert s.table().row_count == 2


def test_fakes_generate_and_embed(tmp_path):
    kp_path = write_test_video(tmp_path / "v.avi", "visible", frames=3)
    frames = read_video(tmp_path / "v.avi")
    assert len(frames) == 3 and frames[0].shape == (120, 160, 3)
    lines = [json.loads(line) for line in kp_path.read_text().splitlines()]
    assert len(lines) == 3 and len(lines[0]["people"]) == 2
    emb = FakeEmbedder()
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 32)).astype(np.float32)
    e = emb.embed(x, np.zeros((2, 56, 8, 4), np.float32), "visible")
    assert e.shape == (2, 8) and np.allclose(np.linalg.norm(e, axis=1), 1)
