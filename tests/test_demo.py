"""The realistic end-to-end test: the demo on a tiny budget (data -> train -> protocol ->
ONNX -> ONNX Runtime -> gallery -> camera pipeline on generated videos -> pictures)."""

import json

import pytest

from spot_edge.demo.run import DemoConfig, DemoRunner


@pytest.mark.slow
def test_demo_end_to_end_tiny(tmp_path):
    config = DemoConfig(out_dir=str(tmp_path / "demo"), num_train=8, num_test=6, images_per_camera=(2, 3),
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
    assert 0 <= results["SYSU-MM01 all-search"]["mAP"] <= 100
    events = [json.loads(line) for line in (out / "pipeline" / "events.jsonl").read_text().splitlines()]
    assert events and {e["source"] for e in events} == {"visible", "infrared"}
    matching = summary["videos"]["matching"]
    assert matching["infrared"]["people_scored"] > 0
    assert len([s for s, m in steps if m == "started"]) == 6
