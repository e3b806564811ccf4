"""Checks of a ``spot-edge demo`` results folder (used by tests/test_readme_demo.py; also handy to
check a folder from a demo run by hand: ``python tests/demo_results.py spot-edge-demo``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

CHANCE_R1 = 1 / 32             # 32 test identities (the demo's default)
PICTURES = ("top5_infrared_queries.png", "tsne.png", "part_maps.png")
PARITY_ROWS = ["pytorch fp32", "onnx fp32", "onnx int8"]
PARITY_PROTOCOL = "SYSU-MM01 all-search"


def check_graphs(results: Path) -> None:
    """fp32 and int8 graphs of both modalities, each recording its precision; the int8 ones
    calibrated on training images of their own modality."""
    from spot_edge.engines import read_onnx_info

    for modality in ("visible", "infrared"):
        assert read_onnx_info(results / "onnx" / f"spot.{modality}.onnx").precision == "fp32", modality
        info = read_onnx_info(results / "onnx" / f"spot-int8.{modality}.onnx")
        assert info.precision == "int8" and info.modality == modality, (modality, info.precision)
        assert info.calibration["kind"] == "sysu-train" and info.calibration["modality"] == modality, info.calibration
        assert info.calibration["images"] >= 64, info.calibration


def check_parity(summary: dict, metrics: str) -> dict:
    """The parity table (PyTorch fp32 reference, ONNX fp32, ONNX int8) in summary.json and
    metrics.md; the fp32 graph equal to PyTorch, the int8 graph close and not flagged."""
    parity = summary["parity"]
    rows = {row["name"]: row for row in parity["report"]["rows"]}
    assert list(rows) == PARITY_ROWS, list(rows)
    assert 1 <= parity["trials"] <= 10
    for name, row in rows.items():
        scores = row["metrics"][PARITY_PROTOCOL]
        assert all(0.0 <= scores[k] <= 100.0 for k in ("R-1", "mAP", "mINP")), (name, scores)
        table_row = next((line for line in metrics.splitlines() if line.startswith(f"| {name} |")), None)
        assert table_row is not None and f"{scores['R-1']:.2f}" in table_row, (name, table_row)
    assert rows["onnx fp32"]["agreement"]["cosine_min"] > 0.9999, rows["onnx fp32"]["agreement"]
    assert rows["onnx int8"]["agreement"]["cosine_mean"] > 0.98, rows["onnx int8"]["agreement"]
    assert parity["warnings"] == [], parity["warnings"]     # int8 within the demo's flag limit
    return rows


def check_demo_results(results: Path) -> dict:
    """Assert that ``results`` holds what the README promises, with metrics that show learning;
    returns the summary."""
    summary = json.loads((results / "summary.json").read_text())
    metrics = (results / "metrics.md").read_text()
    evaluation = summary["evaluation"]
    assert set(evaluation) == {"SYSU-MM01 all-search", "SYSU-MM01 indoor-search"}, evaluation
    for protocol, scores in evaluation.items():
        assert protocol in metrics
        for name in ("R-1", "R-10", "R-20", "mAP", "mINP"):
            assert 0.0 <= scores[name] <= 1.0, (protocol, name, scores[name])
        assert scores["R-1"] <= scores["R-10"] <= scores["R-20"], scores
        assert scores["R-1"] > 5 * CHANCE_R1 and scores["mAP"] > 0.15, (protocol, scores)   # it learned
    check_graphs(results)
    check_parity(summary, metrics)
    assert summary["backend"] == "onnxruntime" and summary["pipeline_embedder"]["precision"] == "int8", \
        summary["pipeline_embedder"]
    events = [json.loads(line) for line in (results / "pipeline" / "events.jsonl").read_text().splitlines()]
    assert events and {e["source"] for e in events} == {"visible", "infrared"}
    for source, score in summary["videos"]["matching"].items():
        assert score["people_scored"] > 0 and score["top1_accuracy"] > 3 * CHANCE_R1, (source, score)
    for picture in PICTURES:
        path = results / "pictures" / picture
        assert path.is_file() and path.stat().st_size > 10_000, picture
    assert (results / "train" / "model.safetensors").is_file()
    return summary


if __name__ == "__main__":
    found = check_demo_results(Path(sys.argv[1]))
    scores = {p: {k: round(100 * v[k], 2) for k in ("R-1", "R-10", "R-20", "mAP", "mINP")}
              for p, v in found["evaluation"].items()}
    parity = {row["name"]: {**{k: round(v, 2) for k, v in row["metrics"][PARITY_PROTOCOL].items()},
                            **({"cosine_min": round(row["agreement"]["cosine_min"], 5),
                                "cosine_mean": round(row["agreement"]["cosine_mean"], 5)} if row["agreement"] else {})}
              for row in found["parity"]["report"]["rows"]}
    print(json.dumps({"evaluation_percent": scores, "parity_percent": parity, "parity_trials": found["parity"]["trials"],
                      "matching": found["videos"]["matching"], "timings_s": found["timings_s"],
                      "cpu_s": found.get("cpu_s"), "total_s": found["total_s"]}, indent=1))
