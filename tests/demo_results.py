"""Checks of a ``spot-edge demo`` results folder (used by tests/test_readme_demo.py; also handy to
check a folder from a demo run by hand: ``python tests/demo_results.py spot-edge-demo``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

CHANCE_R1 = 1 / 32             # 32 test identities (the demo's default)
PICTURES = ("top5_infrared_queries.png", "tsne.png", "part_maps.png")


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
    assert summary["backend"] == "onnxruntime"
    events = [json.loads(line) for line in (results / "pipeline" / "events.jsonl").read_text().splitlines()]
    assert events and {e["source"] for e in events} == {"visible", "infrared"}
    for source, score in summary["videos"]["matching"].items():
        assert score["people_scored"] > 0 and score["top1_accuracy"] > 3 * CHANCE_R1, (source, score)
    for picture in PICTURES:
        path = results / "pictures" / picture
        assert path.is_file() and path.stat().st_size > 10_000, picture
    for name in ("onnx/spot.visible.onnx", "onnx/spot.infrared.onnx", "train/model.safetensors"):
        assert (results / name).is_file(), name
    return summary


if __name__ == "__main__":
    found = check_demo_results(Path(sys.argv[1]))
    scores = {p: {k: round(100 * v[k], 2) for k in ("R-1", "R-10", "R-20", "mAP", "mINP")}
              for p, v in found["evaluation"].items()}
    print(json.dumps({"evaluation_percent": scores, "matching": found["videos"]["matching"],
                      "timings_s": found["timings_s"]}, indent=1))
