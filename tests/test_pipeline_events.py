"""The events file of a long run: rotated by size or age (``--events-max-bytes``,
``--events-rotate-seconds``), the newest ``keep`` old files kept, no line ever split or lost
between rotations."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_fakes import FakeEmbedder, write_test_video  # noqa: E402

from spot_edge.pipeline import CameraInput, KeypointFileSource, MatchEvent, Pipeline, PipelineConfig  # noqa: E402
from spot_edge.pipeline.events import EventWriter, read_events  # noqa: E402
from spot_edge.pipeline.sources import OpenCVSource  # noqa: E402


def event(i: int) -> MatchEvent:
    return MatchEvent(timestamp=1.7e9 + i, source="visible", modality="visible", frame_index=i, person_index=0,
                      track_id=0, box=[0.0, 0.0, 10.0, 20.0], pose_score=0.9, matched=False, identity=None,
                      similarity=None, threshold=0.5)


def _all_lines(folder: Path) -> list[dict]:
    """Every event of events.jsonl and its rotated files, oldest first."""
    old = sorted(folder.glob("events.*.jsonl"), key=lambda p: -int(p.name.split(".")[1]))
    return [e for p in [*old, folder / "events.jsonl"] for e in read_events(p)]


def test_rotation_by_size_keeps_the_newest_files_and_every_line_whole(tmp_path):
    writer = EventWriter(tmp_path / "events.jsonl", max_bytes=1024, keep=3)
    for i in range(60):
        writer.write(event(i))
    writer.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.1.jsonl", "events.2.jsonl", "events.3.jsonl", "events.jsonl"]
    assert writer.rotations > 3 and writer.count == 60
    for p in tmp_path.iterdir():
        assert 0 < p.stat().st_size <= 1024
        assert all(json.loads(line) for line in p.read_text().splitlines())  # whole lines only
    frames = [e["frame_index"] for e in _all_lines(tmp_path)]
    assert frames == list(range(60 - len(frames), 60))  # the newest events, in order, none lost between files


def test_rotation_by_age(tmp_path):
    writer = EventWriter(tmp_path / "events.jsonl", rotate_seconds=0.2, keep=5)
    writer.write(event(0))
    writer.write(event(1))
    time.sleep(0.25)
    writer.write(event(2))  # the file is older than 0.2 s: rotated before this line
    writer.close()
    assert [e["frame_index"] for e in read_events(tmp_path / "events.1.jsonl")] == [0, 1]
    assert [e["frame_index"] for e in read_events(tmp_path / "events.jsonl")] == [2]


def test_keep_zero_keeps_only_the_current_file_and_a_restart_appends(tmp_path):
    writer = EventWriter(tmp_path / "events.jsonl", max_bytes=1024, keep=0)
    for i in range(20):
        writer.write(event(i))
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]
    size = (tmp_path / "events.jsonl").stat().st_size
    writer = EventWriter(tmp_path / "events.jsonl", max_bytes=4096, keep=0)  # a service restart
    writer.write(event(20))
    writer.close()
    assert (tmp_path / "events.jsonl").stat().st_size > size and read_events(tmp_path / "events.jsonl")[-1][
        "frame_index"] == 20


def test_pipeline_rotates_its_events_file(tmp_path):
    kp = write_test_video(tmp_path / "v.avi", "visible", frames=12)
    inputs = [CameraInput("visible", "visible", OpenCVSource(str(tmp_path / "v.avi")), KeypointFileSource(kp))]
    config = PipelineConfig(write_video=False, events_max_bytes=2048, events_keep=50)
    summary = Pipeline(inputs, FakeEmbedder(), None, config, output_dir=tmp_path / "out").run(handle_signals=False)
    assert summary.events == 24 and len(list((tmp_path / "out").glob("events.*.jsonl"))) >= 2
    assert len(_all_lines(tmp_path / "out")) == 24  # rotated, nothing lost
