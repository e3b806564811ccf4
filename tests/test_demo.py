"""The realistic end-to-end test: the demo on a tiny budget (data -> train -> protocol ->
ONNX -> ONNX Runtime -> gallery -> camera pipeline on generated videos -> pictures)."""

import json

import pytest

from spot_edge.demo.run import DemoConfig, DemoRunner, check_pipeline_run


@pytest.mark.slow
def test_demo_end_to_end_tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)       # a relative results folder, as users type it
    config = DemoConfig(out_dir="demo", num_train=8, num_test=6, images_per_camera=(2, 3),
                        epochs=1, batches_per_epoch=2, eval_trials=2, video_people=2, video_frames=10)
    steps = []
    summary = DemoRunner(config, report=lambda step, msg: steps.append((step, msg))).run()
    out = tmp_path / "demo"
    assert summary["backend"] == "onnxruntime"
    for name in ("summary.json", "metrics.md", "onnx/spot.visible.onnx", "onnx/spot.infrared.onnx",
                 "pipeline/events.jsonl", "pipeline/stats.json", "pictures/top5_infrared_queries.png",
                 "pictures/tsne.png", "pictures/part_maps.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    results = summary["evaluation"]
    assert set(results) == {"SYSU-MM01 all-search", "SYSU-MM01 indoor-search"}
    for scores in results.values():
        assert all(0.0 <= scores[k] <= 1.0 for k in ("R-1", "R-10", "R-20", "mAP", "mINP")), scores
    events = [json.loads(line) for line in (out / "pipeline" / "events.jsonl").read_text().splitlines()]
    assert events and {e["source"] for e in events} == {"visible", "infrared"}
    matching = summary["videos"]["matching"]
    assert matching["infrared"]["people_scored"] > 0
    assert len([s for s, m in steps if m == "started"]) == 6


@pytest.mark.parametrize("stats,fails", [
    ({"frames_read": 48, "events": 60, "errors": 0}, False),
    ({"frames_read": 48, "events": 0, "errors": 47, "last_error": "frame 47: AttributeError: boom"}, True),
    ({"frames_read": 48, "events": 12, "errors": 1, "last_error": "frame 3: ValueError: x"}, True),
    ({"frames_read": 48, "events": 0, "errors": 0}, True),
])
def test_a_pipeline_run_that_failed_or_found_nobody_is_refused(stats, fails):
    summary = {"sources": {"visible": {"frames_read": 48, "events": 40, "errors": 0}, "infrared": stats}}
    if fails:
        with pytest.raises(RuntimeError, match="infrared"):
            check_pipeline_run(summary)
    else:
        check_pipeline_run(summary)
