"""``spot-edge run`` through typer's test runner, with a fake embedder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_fakes import FakeEmbedder, write_test_video  # noqa: E402

from spot_edge.cli import gallery as gallery_cli  # noqa: E402
from spot_edge.cli import run as run_cli  # noqa: E402
from spot_edge.cli.app import app as root_app  # noqa: E402
from spot_edge.gallery import Gallery  # noqa: E402

runner = CliRunner()

@pytest.fixture
def fake_model(monkeypatch):
    emb = FakeEmbedder()
    monkeypatch.setattr(run_cli, "load_embedder", lambda *a, **k: emb)
    monkeypatch.setattr(gallery_cli, "load_embedder", lambda *a, **k: emb)
    return emb

def test_run_command_on_videos(tmp_path, fake_model):
    kv = write_test_video(tmp_path / "vis.avi", "visible", frames=8)
    ki = write_test_video(tmp_path / "ir.avi", "infrared", frames=8)
    out = tmp_path / "out"
    g = tmp_path / "g"
    r = runner.invoke(root_app, [
        "run", "--visible", str(tmp_path / "vis.avi"), "--visible-keypoints", str(kv),
        "--infrared", str(tmp_path / "ir.avi"), "--infrared-keypoints", str(ki),
        "--model", "fake.onnx", "--gallery", str(g), "--out", str(out), "--frames-every", "4", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["sources"]["visible"]["frames_processed"] == 8
    assert summary["gallery_saved"] and len(Gallery.load(g)) == summary["gallery_entries"] > 0
    assert (out / "events.jsonl").exists() and (out / "stats.json").exists()
    assert (out / "annotated_infrared.avi").exists() and (out / "frames" / "visible" / "000004.png").exists()

    # with the live table (not --json) and the summary printed
    r = runner.invoke(root_app, ["run", "--infrared", str(tmp_path / "ir.avi"), "--infrared-keypoints", str(ki),
                                    "--model", "fake.onnx", "--gallery", str(g), "--out", str(out / "2"),
                                    "--no-video"])
    assert r.exit_code == 0, r.output
    events = [json.loads(x) for x in (out / "2" / "events.jsonl").read_text().splitlines()]
    assert events and all(e["matched"] for e in events)  # found among the visible observations of run 1


def test_run_command_errors(tmp_path, fake_model):
    r = runner.invoke(root_app, ["run", "--model", "x"])
    assert r.exit_code == 2 and "at least one source" in r.output
    write_test_video(tmp_path / "v.avi", "visible", frames=2)
    r = runner.invoke(root_app, ["run", "--visible", str(tmp_path / "v.avi"), "--model", "x"])
    assert r.exit_code == 2 and "--pose-weights" in r.output
    r = runner.invoke(root_app, ["run", "--visible", str(tmp_path / "missing.avi"), "--visible-keypoints",
                                    str(tmp_path / "v.avi.keypoints.jsonl"), "--model", "x"])
    assert r.exit_code == 2 and "not found" in r.output
    r = runner.invoke(root_app, ["run", "--visible", str(tmp_path / "v.avi"), "--visible-keypoints",
                                    str(tmp_path / "v.avi.keypoints.jsonl"), "--pose-weights", str(tmp_path / "no.pth"),
                                    "--model", "x"])
    assert r.exit_code == 0  # keypoints given: OpenPose weights not needed for this source
    r = runner.invoke(root_app, ["run", "--infrared", str(tmp_path / "v.avi"), "--pose-weights",
                                    str(tmp_path / "no.pth"), "--model", "x"])
    assert r.exit_code == 2 and "weights not found" in r.output
    (tmp_path / "corrupt.avi").write_bytes(b"\x00" * 64)
    r = runner.invoke(root_app, ["run", "--visible", str(tmp_path / "corrupt.avi"), "--visible-keypoints",
                                    str(tmp_path / "v.avi.keypoints.jsonl"), "--model", "x", "--quiet",
                                    "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "cannot open" in r.output

def test_help_has_examples():
    for args in (["run", "--help"], ["match", "--help"], ["gallery", "enroll", "--help"],
                 ["gallery", "calibrate", "--help"]):
        r = runner.invoke(root_app, args)
        assert r.exit_code == 0 and "spot-edge" in r.output, args
