"""``spot-edge run`` through typer's test runner, with a fake embedder, from a temporary working
directory with relative paths (as users type them)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_fakes import FakeEmbedder, write_test_video  # noqa: E402

from spot_edge.cli import run as run_cli  # noqa: E402
from spot_edge.cli.app import app as root_app  # noqa: E402
from spot_edge.gallery import Gallery  # noqa: E402

runner = CliRunner()


@pytest.fixture
def fake_model(monkeypatch):
    emb = FakeEmbedder()
    monkeypatch.setattr(run_cli, "load_embedder", lambda *a, **k: emb)
    return emb


@pytest.fixture
def cwd(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_command_on_videos(cwd, fake_model):
    (cwd / "clips").mkdir()
    write_test_video(cwd / "clips" / "vis.avi", "visible", frames=8)
    write_test_video(cwd / "clips" / "ir.avi", "infrared", frames=8)
    r = runner.invoke(root_app, [
        "run", "--visible", "clips/vis.avi", "--visible-keypoints", "clips/vis.avi.keypoints.jsonl",
        "--infrared", "clips/ir.avi", "--infrared-keypoints", "clips/ir.avi.keypoints.jsonl",
        "--model", "fake.onnx", "--gallery", "g", "--out", "out", "--frames-every", "4", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["sources"]["visible"]["frames_processed"] == 8 and summary["errors"] == []
    assert summary["gallery_saved"] and len(Gallery.load(cwd / "g")) == summary["gallery_entries"] > 0
    out = cwd / "out"  # relative to the working directory, not to anything else
    assert (out / "events.jsonl").exists() and (out / "stats.json").exists()
    assert json.loads((out / "stats.json").read_text())["events"] == summary["events"]
    assert (out / "annotated_infrared.avi").exists() and (out / "frames" / "visible" / "000004.png").exists()

    # with the live table (not --json) and the summary printed
    r = runner.invoke(root_app, ["run", "--infrared", "clips/ir.avi", "--infrared-keypoints",
                                 "clips/ir.avi.keypoints.jsonl", "--model", "fake.onnx", "--gallery", "g",
                                 "--out", "out/2", "--no-video"])
    assert r.exit_code == 0, r.output
    events = [json.loads(x) for x in (out / "2" / "events.jsonl").read_text().splitlines()]
    assert events and all(e["matched"] for e in events)  # found among the visible observations of run 1


def test_run_default_output_folder_is_relative_to_the_working_directory(cwd, fake_model):
    write_test_video(cwd / "v.avi", "visible", frames=2)
    r = runner.invoke(root_app, ["run", "--visible", "v.avi", "--visible-keypoints", "v.avi.keypoints.jsonl",
                                 "-m", "x", "--no-video", "--json", "--reconnect-timeout", "inf"])
    assert r.exit_code == 0, r.output  # inf: keep retrying live sources (files just end)
    stats = Path(json.loads(r.stdout)["outputs"]["stats"])
    assert stats.exists() and stats.parent.parent == cwd / "runs"


@pytest.mark.parametrize("source", ["97", "rtsp"], ids=["camera-index-that-does-not-exist", "rtsp-closed-port"])
def test_camera_that_never_comes_is_an_error(cwd, fake_model, source):
    """A camera index that does not exist / an RTSP URL nobody answers: given up after
    --reconnect-timeout, listed in the summary's errors, exit code 1."""
    spec = f"rtsp://127.0.0.1:{closed_port()}/stream" if source == "rtsp" else source
    (cwd / "k.jsonl").write_text("")
    r = runner.invoke(root_app, ["run", "--visible", spec, "--visible-keypoints", "k.jsonl", "-m", "x",
                                 "--reconnect-timeout", "0.5", "--json", "-o", "out"])
    assert r.exit_code == 1, r.output
    summary = json.loads(r.stdout)
    assert summary["sources"]["visible"]["status"] == "failed"
    assert len(summary["errors"]) == 1 and "0.5 s" in summary["errors"][0]
    error_lines = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and spec in error_lines[0]
    assert json.loads((cwd / "out" / "stats.json").read_text())["errors"] == summary["errors"]


def test_camera_timeout_with_a_file_source_beside_it(cwd, fake_model):
    """The file is processed whole; the camera that never came is the run's only error."""
    write_test_video(cwd / "ir.avi", "infrared", frames=6)
    (cwd / "k.jsonl").write_text("")
    r = runner.invoke(root_app, ["run", "--visible", "97", "--visible-keypoints", "k.jsonl",
                                 "--infrared", "ir.avi", "--infrared-keypoints", "ir.avi.keypoints.jsonl",
                                 "-m", "x", "--reconnect-timeout", "0.3", "--json", "--no-video", "-o", "o"])
    assert r.exit_code == 1, r.output
    summary = json.loads(r.stdout)
    assert summary["sources"]["infrared"]["status"] == "finished"
    assert summary["sources"]["infrared"]["frames_processed"] == 6
    assert [s for s, c in summary["sources"].items() if c["status"] == "failed"] == ["visible"]
    assert len(summary["errors"]) == 1 and "visible" in summary["errors"][0]


def test_corrupt_video_is_a_failed_run(cwd, fake_model):
    write_test_video(cwd / "v.avi", "visible", frames=2)
    (cwd / "corrupt.avi").write_bytes(b"\x00" * 64)
    r = runner.invoke(root_app, ["run", "--visible", "corrupt.avi", "--visible-keypoints", "v.avi.keypoints.jsonl",
                                 "--model", "x", "--quiet", "--out", "o"])
    assert r.exit_code == 1 and "cannot open" in r.output


def test_keypoints_make_pose_weights_unnecessary(cwd, fake_model):
    write_test_video(cwd / "v.avi", "visible", frames=2)
    r = runner.invoke(root_app, ["run", "--visible", "v.avi", "--visible-keypoints", "v.avi.keypoints.jsonl",
                                 "--pose-weights", "no.pth", "--model", "x", "-q", "-o", "o"])
    assert r.exit_code == 0, r.output  # keypoints given: OpenPose weights not needed for this source


def test_help_documents_the_timeout_and_exit_codes():
    r = runner.invoke(root_app, ["run", "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert r.exit_code == 0 and "--reconnect-timeout" in r.output
    assert all(len(line) <= 80 for line in r.output.splitlines())
