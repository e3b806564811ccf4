"""``spot-edge run --metrics-port``: Prometheus metrics and the health check scraped from a running
pipeline (the command in a thread, and the API with fake cameras), and the health rule itself."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_fakes import (  # noqa: E402
    FakeCamera,
    FakeEmbedder,
    OnePersonPose,
    free_port,
    http_get,
    metric_samples,
    random_frames,
    wait_until,
    write_test_video,
)

from spot_edge.cli import run as run_cli  # noqa: E402
from spot_edge.cli.app import app as root_app  # noqa: E402
from spot_edge.pipeline import CameraInput, Pipeline, PipelineConfig  # noqa: E402
from spot_edge.service import MonitoringServer, PipelineMonitor, assess_health  # noqa: E402


def _value(samples, name, **labels):
    return samples.get((name, *sorted(labels.items())))


def test_metrics_and_health_scraped_from_a_running_spot_edge_run(tmp_path, monkeypatch):
    """A file played in real time beside a camera that never opens: while the command runs,
    /metrics counts the file's frames and the camera's reconnection attempts, and /healthz turns
    503 (naming the camera) once it has been down for --health-grace."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_cli, "load_embedder", lambda *a, **k: FakeEmbedder())
    write_test_video(tmp_path / "ir.avi", "infrared", frames=20, fps=10.0)
    (tmp_path / "k.jsonl").write_text("")
    port = free_port()
    result = {}

    def command():
        result["r"] = CliRunner().invoke(root_app, [
            "run", "--infrared", "ir.avi", "--infrared-keypoints", "ir.avi.keypoints.jsonl", "--visible", "97",
            "--visible-keypoints", "k.jsonl", "-m", "fake.onnx", "-g", "g", "-o", "out", "--realtime",
            "--no-video", "--max-seconds", "4", "--metrics-port", str(port), "--health-grace", "0.5", "--json"])

    thread = threading.Thread(target=command)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(url + "/metrics", 1)[0] == 200 and
                   (_value(metric_samples(http_get(url + "/metrics")[1]), "spot_edge_frames_processed_total",
                           camera="infrared") or 0) >= 3, timeout=20, what="frames processed")
        status, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(http_get(url + "/healthz")),
                                  timeout=10, what="/healthz 503")
        health = json.loads(body)
        assert health["status"] == "unhealthy" and health["cameras"]["visible"]["healthy"] is False
        assert health["cameras"]["infrared"]["healthy"] is True and "visible" in health["problems"][0]
        s = metric_samples(http_get(url + "/metrics")[1])
        assert _value(s, "spot_edge_camera_up", camera="infrared") == 1.0
        assert _value(s, "spot_edge_camera_up", camera="visible") == 0.0
        assert _value(s, "spot_edge_camera_status", camera="visible", status="reconnecting") == 1.0
        assert _value(s, "spot_edge_camera_down_seconds", camera="visible") > 0.5
        assert _value(s, "spot_edge_reconnect_attempts_total", camera="visible") >= 1
        assert _value(s, "spot_edge_frames_read_total", camera="infrared") >= 3
        assert _value(s, "spot_edge_healthy") == 0.0
        assert _value(s, "spot_edge_stage_latency_seconds_count", stage="pose", camera="infrared") >= 3
        assert _value(s, "spot_edge_stage_latency_seconds_count", stage="embed", camera="") >= 1
        assert _value(s, "spot_edge_gallery_entries") >= 1  # observed people
    finally:
        thread.join(30)
    r = result["r"]
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    ir = summary["sources"]["infrared"]
    assert ir["frames_read"] == 20 and ir["frames_processed"] >= 12  # real time: a few may be dropped
    assert ir["frames_processed"] + ir["frames_dropped"] + ir["frames_discarded"] + ir["errors"] == 20
    assert http_get(f"http://127.0.0.1:{port}/healthz", 1)[0] == 0  # the endpoint ended with the run


def _pipeline(tmp_path, cameras: dict, **config):
    inputs = [CameraInput(name, name, cam, OnePersonPose()) for name, cam in cameras.items()]
    config = PipelineConfig(**{"reconnect_timeout": 30.0, "backoff_initial": 0.05, "backoff_max": 0.2, **config})
    return Pipeline(inputs, FakeEmbedder(), None, config, output_dir=tmp_path / "out")


def test_counters_match_the_run_summary_exactly(tmp_path):
    """Scraped after the sources ended (server still up): every counter equals the summary's."""
    pipe = _pipeline(tmp_path, {"visible": FakeCamera(random_frames(12), fail_at=[5]),
                                "infrared": FakeCamera(random_frames(9, seed=1))}, reconnect_timeout=0.3)
    with MonitoringServer("127.0.0.1", 0) as server:
        server.attach(PipelineMonitor(pipe, server.registry, health_grace=5.0))
        summary = pipe.run(handle_signals=False)
        status, text = http_get(server.url + "/metrics")
    assert status == 200
    s = metric_samples(text)
    for camera, c in summary.sources.items():
        for field, metric in (("frames_read", "frames_read"), ("frames_processed", "frames_processed"),
                              ("frames_dropped", "frames_dropped"), ("errors", "frame_errors"),
                              ("matches", "matches"), ("events", "events"), ("reconnects", "reconnects"),
                              ("disconnects", "disconnects")):
            assert _value(s, f"spot_edge_{metric}_total", camera=camera) == c[field], (camera, field)
    assert summary.sources["visible"]["reconnects"] == 1
    assert _value(s, "spot_edge_events_written_total") == summary.events
    assert _value(s, "spot_edge_stage_latency_seconds_count", stage="end_to_end", camera="") == \
        summary.latency["end_to_end"]["count"]


def test_health_recovers_when_the_camera_comes_back(tmp_path):
    """A camera down for about a second (grace 0.2 s): 503 while it is down, 200 once it is back."""
    cam = FakeCamera(random_frames(10), fps=50, fail_at=[8], open_failures=4, loop=True)
    pipe = _pipeline(tmp_path, {"visible": cam}, backoff_initial=0.2, backoff_max=0.4)
    server = MonitoringServer("127.0.0.1", 0)
    assert http_get(server.start().url + "/healthz")[0] == 503  # no pipeline yet: starting
    server.attach(PipelineMonitor(pipe, server.registry, health_grace=0.2))
    pipe.start()
    try:
        wait_until(lambda: http_get(server.url + "/healthz")[0] == 503, timeout=10, what="503 while down")
        wait_until(lambda: pipe.counters.get("visible").reconnects == 1, timeout=10, what="the reconnection")
        wait_until(lambda: http_get(server.url + "/healthz")[0] == 200, timeout=5, what="200 after it came back")
    finally:
        pipe.stop()
        pipe.close()
        server.close()


def test_a_camera_given_up_is_unhealthy_while_the_other_runs(tmp_path):
    pipe = _pipeline(tmp_path, {"visible": FakeCamera(random_frames(3)),
                                "infrared": FakeCamera(random_frames(3, seed=2), fps=30, loop=True)},
                     reconnect_timeout=0.2)
    monitor = PipelineMonitor(pipe, MonitoringServer("127.0.0.1", 0).registry, health_grace=60.0)
    pipe.start()
    try:
        wait_until(lambda: pipe.counters.get("visible").status == "failed", timeout=10, what="given up")
        report = monitor.health()
        assert not report.healthy and report.http_status == 503
        assert [c.name for c in report.cameras if not c.healthy] == ["visible"]
    finally:
        pipe.stop()
        pipe.close()


# (id, counters per camera, down_for per camera, grace, stop reason, healthy, cameras named in problems)
HEALTH_CASES = [
    ("running", {"v": {"status": "running"}}, {"v": None}, 10, "finished", True, []),
    ("reconnecting-within-grace", {"v": {"status": "reconnecting"}}, {"v": 3.0}, 10, "finished", True, []),
    ("reconnecting-past-grace", {"v": {"status": "reconnecting", "last_error": "USB gone"}}, {"v": 12.0}, 10,
     "finished", False, ["v"]),
    ("never-opened-past-grace", {"v": {"status": "starting"}}, {"v": 11.0}, 10, "finished", False, ["v"]),
    ("given-up", {"v": {"status": "failed"}, "i": {"status": "running"}}, {"v": 1.0, "i": None}, 10, "finished",
     False, ["v"]),
    ("file-finished", {"v": {"status": "finished"}}, {"v": None}, 0, "finished", True, []),
    ("grace-zero", {"v": {"status": "reconnecting"}}, {"v": 0.01}, 0, "finished", False, ["v"]),
    ("stopped-on-error", {"v": {"status": "stopped"}}, {"v": None}, 10, "error", False, []),
]


@pytest.mark.parametrize("sources,down,grace,reason,healthy,named", [c[1:] for c in HEALTH_CASES],
                         ids=[c[0] for c in HEALTH_CASES])
def test_health_rule(sources, down, grace, reason, healthy, named):
    report = assess_health(sources, down, grace, stop_reason=reason, errors=["embedder: boom"])
    assert report.healthy is healthy and report.http_status == (200 if healthy else 503)
    assert sorted(c.name for c in report.cameras if not c.healthy) == named
    assert json.loads(json.dumps(report.to_dict()))["status"] == ("ok" if healthy else "unhealthy")
