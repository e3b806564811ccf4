"""The realistic end-to-end test: the demo on a tiny budget (data -> train -> protocol ->
ONNX fp32 + int8 -> parity -> ONNX Runtime int8 -> gallery -> camera pipeline on generated
videos -> pictures)."""

import json
import math

import pytest

from spot_edge.demo.graphs import MAX_METRIC_DROP, parity_warnings
from spot_edge.demo.run import DemoConfig, DemoRunner, check_pipeline_run


@pytest.mark.slow
def test_demo_end_to_end_tiny(tmp_path, monkeypatch):
    from spot_edge.engines import read_onnx_info

    monkeypatch.chdir(tmp_path)       # a relative results folder, as users type it
    config = DemoConfig(out_dir="demo", num_train=8, num_test=6, images_per_camera=(2, 3),
                        epochs=1, batches_per_epoch=2, eval_trials=2, video_people=2, video_frames=10,
                        calibration_size=8, parity_trials=1)
    steps = []
    summary = DemoRunner(config, report=lambda step, msg: steps.append((step, msg))).run()
    out = tmp_path / "demo"
    assert summary["backend"] == "onnxruntime"
    for name in ("summary.json", "metrics.md", "onnx/spot.visible.onnx", "onnx/spot.infrared.onnx",
                 "onnx/spot-int8.visible.onnx", "onnx/spot-int8.infrared.onnx",
                 "pipeline/events.jsonl", "pipeline/stats.json", "pictures/top5_infrared_queries.png",
                 "pictures/tsne.png", "pictures/part_maps.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    results = summary["evaluation"]
    assert set(results) == {"SYSU-MM01 all-search", "SYSU-MM01 indoor-search"}
    for scores in results.values():
        assert all(0.0 <= scores[k] <= 1.0 for k in ("R-1", "R-10", "R-20", "mAP", "mINP")), scores

    # int8 graphs, calibrated on the demo's training images of their own modality
    for modality in ("visible", "infrared"):
        info = read_onnx_info(out / "onnx" / f"spot-int8.{modality}.onnx")
        assert info.precision == "int8" and info.modality == modality
        assert info.calibration["modality"] == modality and info.calibration["images"] == 8
        assert read_onnx_info(out / "onnx" / f"spot.{modality}.onnx").precision == "fp32"

    # the parity table: both graphs against the PyTorch reference, in summary.json and metrics.md
    parity = summary["parity"]
    rows = {row["name"]: row for row in parity["report"]["rows"]}
    assert list(rows) == ["pytorch fp32", "onnx fp32", "onnx int8"]
    assert rows["onnx fp32"]["agreement"]["cosine_min"] > 0.9999
    assert 0.9 < rows["onnx int8"]["agreement"]["cosine_mean"] < 1.0   # quantised: close, not identical
    assert parity["trials"] == 1 and parity["warnings"] == parity_warnings(parity["report"])
    metrics = (out / "metrics.md").read_text()
    for name, row in rows.items():
        table_row = next(line for line in metrics.splitlines() if line.startswith(f"| {name} |"))
        assert f"{row['metrics']['SYSU-MM01 all-search']['R-1']:.2f}" in table_row
    for protocol in results:
        assert protocol in metrics

    # the pipeline ran on the int8 graphs
    assert summary["pipeline_embedder"]["precision"] == "int8"
    events = [json.loads(line) for line in (out / "pipeline" / "events.jsonl").read_text().splitlines()]
    assert events and {e["source"] for e in events} == {"visible", "infrared"}
    matching = summary["videos"]["matching"]
    assert matching["infrared"]["people_scored"] > 0
    started = [s for s, m in steps if m == "started"]
    assert len(started) == 8 and set(started) == set(summary["timings_s"]) == set(summary["cpu_s"])


def _report(int8_change, reference=None):
    reference = reference or {"R-1": 40.0, "mAP": 45.0, "mINP": 30.0}
    protocol = "SYSU-MM01 all-search"

    def row(name, change):
        return {"name": name, "metrics": {protocol: {k: reference[k] + change.get(k, 0.0) for k in reference}},
                "change": {protocol: {k: change.get(k, 0.0) for k in reference}}}

    return {"source": "test", "reference": "pytorch fp32", "rows": [
        {"name": "pytorch fp32", "metrics": {protocol: reference}, "change": None},
        row("onnx fp32", {}), row("onnx int8", int8_change)]}


@pytest.mark.parametrize("int8_change,flagged", [
    ({}, False),
    ({"R-1": -0.1, "mAP": -0.13, "mINP": -0.07}, False),
    ({"R-1": -MAX_METRIC_DROP, "mAP": -1.0}, False),               # at the limit: not flagged
    ({"R-1": +7.0, "mAP": +6.0}, False),                            # better is not a defect
    ({"mINP": -12.0}, False),                                       # mINP alone is too noisy to flag
    ({"R-1": -6.0}, True),
    ({"mAP": -5.5}, True),
    ({"R-1": -20.0, "mAP": -25.0}, True),
    ({"R-1": math.nan}, True),                                      # a broken graph's NaN metrics
])
def test_a_graph_far_below_the_reference_is_flagged(int8_change, flagged):
    warnings = parity_warnings(_report(int8_change))
    assert len(warnings) == int(flagged)
    assert all("onnx int8" in line for line in warnings)


def test_a_flagged_graph_is_written_to_the_metrics_not_raised(tmp_path, monkeypatch):
    from spot_edge.parity import ParityReport, ParityRow
    from spot_edge.demo import graphs

    protocol = "SYSU-MM01 all-search"
    report = ParityReport("test", [
        ParityRow("pytorch fp32", {}, None, {protocol: {"R-1": 40.0, "mAP": 45.0, "mINP": 30.0}}),
        ParityRow("onnx int8", {}, {"cosine_min": 0.5, "cosine_mean": 0.7},
                  {protocol: {"R-1": 10.0, "mAP": 12.0, "mINP": 5.0}})])
    monkeypatch.setattr(graphs, "graph_parity", lambda model, onnx_dir, data_root, trials: report)
    runner = DemoRunner(DemoConfig(out_dir=str(tmp_path / "demo"), parity_trials=2))
    runner.out.mkdir(parents=True)
    found = runner.evaluate_graphs(None, tmp_path)
    metrics = (tmp_path / "demo" / "metrics.md").read_text()
    assert len(found["warnings"]) == 1 and found["warnings"][0] in metrics
    assert report.table() in metrics


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
