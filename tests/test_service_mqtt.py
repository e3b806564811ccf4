"""Match events published to a REAL Mosquitto broker started on 127.0.0.1 by the tests: events
arrive as written to events.jsonl, a broker outage never stalls the pipeline, the buffer drops
the oldest events (counted in the metrics), and events published after the broker comes back
arrive. Skipped when the mosquitto binary is absent, unless SPOT_EDGE_REQUIRE_MOSQUITTO=1."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_fakes import (  # noqa: E402
    FakeCamera,
    FakeEmbedder,
    MosquittoBroker,
    MqttCollector,
    OnePersonPose,
    free_port,
    http_get,
    metric_samples,
    mosquitto_binary,
    random_frames,
    wait_until,
    write_test_video,
)

from spot_edge.cli import run as run_cli  # noqa: E402
from spot_edge.cli.app import app as root_app  # noqa: E402
from spot_edge.pipeline import CameraInput, Pipeline, PipelineConfig  # noqa: E402
from spot_edge.pipeline.events import read_events  # noqa: E402
from spot_edge.service import MonitoringServer, MqttPublisher, PipelineMonitor, parse_mqtt_url  # noqa: E402

TOPIC = "spot/events"


@pytest.fixture
def broker(tmp_path):
    b = MosquittoBroker(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def collector(broker):
    c = MqttCollector(broker.port, TOPIC)
    assert c.subscribed.wait(10), "the test subscriber could not subscribe"
    yield c
    c.close()


def test_events_of_spot_edge_run_arrive_at_the_broker(tmp_path, monkeypatch, broker, collector):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_cli, "load_embedder", lambda *a, **k: FakeEmbedder())
    write_test_video(tmp_path / "v.avi", "visible", frames=6)
    r = CliRunner().invoke(root_app, ["run", "--visible", "v.avi", "--visible-keypoints", "v.avi.keypoints.jsonl",
                                      "-m", "fake.onnx", "-o", "out", "--no-video", "--json",
                                      "--publish", f"mqtt://127.0.0.1:{broker.port}/{TOPIC}?qos=1"])
    assert r.exit_code == 0, r.output
    written = (tmp_path / "out" / "events.jsonl").read_text().splitlines()
    assert len(written) == json.loads(r.stdout)["events"] == 12  # two people in six frames
    wait_until(lambda: len(collector.received()) >= len(written), timeout=10, what="all events at the broker")
    assert sorted(collector.received()) == sorted(written)  # the same JSON lines, none lost or doubled


def test_broker_outage_never_stalls_the_pipeline_and_it_resumes(tmp_path, broker, collector):
    camera = FakeCamera(random_frames(8), fps=40, loop=True)
    target = parse_mqtt_url(f"mqtt://127.0.0.1:{broker.port}/{TOPIC}")
    publisher = MqttPublisher(target, buffer_size=5, reconnect_min=0.1, reconnect_max=0.3, keepalive=2)
    pipe = Pipeline([CameraInput("visible", "visible", camera, OnePersonPose())], FakeEmbedder(), None,
                    PipelineConfig(), output_dir=tmp_path / "out", event_sinks=[publisher])
    server = MonitoringServer("127.0.0.1", 0)
    server.attach(PipelineMonitor(pipe, server.registry, publisher=publisher))
    server.start()
    publisher.start()
    pipe.start()
    try:
        wait_until(lambda: len(collector.received()) >= 5, timeout=20, what="events before the outage")
        before = _rate(pipe, 1.0)
        broker.stop()
        wait_until(lambda: not publisher.stats()["connected"], timeout=10, what="the publisher noticing")
        during = _rate(pipe, 1.5)  # the broker is away
        assert during >= max(3.0, 0.5 * before), \
            f"the pipeline slowed down while the broker was away: {during:.1f} vs {before:.1f} frames/s"
        stats = publisher.stats()
        assert stats["dropped"] > 0 and stats["buffered"] <= 5 + publisher.max_unacked
        samples = metric_samples(http_get(server.url + "/metrics")[1])
        assert samples[("spot_edge_mqtt_dropped_total",)] > 0 and samples[("spot_edge_mqtt_connected",)] == 0.0

        broker.start()  # same port
        assert collector.subscribed.wait(10), "the test subscriber did not come back"
        back = time.time()
        wait_until(lambda: any(json.loads(m)["timestamp"] > back + 0.2 for m in collector.received()),
                   timeout=15, what="events made after the broker came back")
        assert publisher.stats()["connected"] and publisher.stats()["connects"] >= 2
    finally:
        pipe.stop()
        summary = pipe.close()
        publisher.close(1.0)
        server.close()
    assert summary.errors == []
    written = {json.dumps(e, sort_keys=True) for e in read_events(tmp_path / "out" / "events.jsonl")}
    assert {json.dumps(json.loads(m), sort_keys=True) for m in collector.received()} <= written


def _rate(pipe, seconds: float) -> float:
    """Frames the pipeline processes per second over the next ``seconds``."""
    start = pipe.counters.get("visible").frames_processed
    time.sleep(seconds)
    return (pipe.counters.get("visible").frames_processed - start) / seconds


def test_a_full_buffer_keeps_the_newest_events_until_the_broker_comes(tmp_path):
    """Broker absent at start: 10 events into a buffer of 3 -> 7 dropped (the oldest); when the
    broker appears, the 3 newest arrive, in order."""
    mosquitto_binary()  # skip (or fail) before starting anything
    port = free_port()
    publisher = MqttPublisher(parse_mqtt_url(f"mqtt://127.0.0.1:{port}/{TOPIC}"), buffer_size=3,
                              reconnect_min=2.0, reconnect_max=2.0)
    publisher.start()  # the first attempt fails at once; the next one is 2 s later
    started = time.monotonic()
    for i in range(10):
        publisher.publish(json.dumps({"n": i}))
    assert (publisher.stats()["dropped"], publisher.stats()["buffered"]) == (7, 3)
    broker = MosquittoBroker(tmp_path, port=port).start()
    collector = MqttCollector(port, TOPIC)
    try:
        assert collector.subscribed.wait(5)
        if time.monotonic() - started > 1.5:
            pytest.skip("the machine is too slow to subscribe before the publisher's retry")
        wait_until(lambda: len(collector.received()) == 3, timeout=15, what="the 3 newest events")
        assert [json.loads(m)["n"] for m in collector.received()] == [7, 8, 9]
    finally:
        assert publisher.close(2.0) == 0
        collector.close()
        broker.stop()
