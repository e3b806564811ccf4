"""The Prometheus metrics of a running pipeline (``spot-edge run --metrics-port``).

Counters and gauges are read from the pipeline at scrape time (its per-camera
:class:`~spot_edge.pipeline.stats.Counters`, the gallery, the events file, the MQTT publisher), so
there is one count of everything; latencies are observed as they are recorded
(:meth:`~spot_edge.pipeline.stats.LatencyStats.add_listener`) into one histogram.

Metrics (all prefixed ``spot_edge_``; ``camera`` is the source's name, ``visible`` / ``infrared``):

==========================================  =========  ==========================================
name                                        type       what
==========================================  =========  ==========================================
``frames_read_total{camera}``               counter    frames read from the camera
``frames_processed_total{camera}``          counter    frames that went through every stage
``frames_dropped_total{camera}``            counter    dropped because the pipeline was behind
``frames_discarded_total{camera}``          counter    still queued at shutdown
``frame_errors_total{camera}``              counter    unusable frames, or pose/crop failed
``people_total{camera}``                    counter    people seen
``events_total{camera}``                    counter    match events (one per person seen)
``matches_total{camera}``                   counter    events whose best gallery entry matched
``disconnects_total{camera}``               counter    the camera stopped delivering
``reconnects_total{camera}``                counter    successful reopenings after a drop
``reconnect_attempts_total{camera}``        counter    reopenings tried
``camera_up{camera}``                       gauge      1 while the camera delivers frames
``camera_down_seconds{camera}``             gauge      how long it has delivered nothing (0: up)
``camera_status{camera,status}``            gauge      1 for the camera's current status
``stage_latency_seconds{stage,camera}``     histogram  per-stage latency (read, pose, crop, embed,
                                                       embed_per_crop, match, sink, end_to_end,
                                                       gallery_flush)
``gallery_entries``                         gauge      gallery size
``events_written_total``                    counter    events written to ``events.jsonl``
``events_file_rotations_total``             counter    rotations of the events file
``healthy``                                 gauge      1 when ``/healthz`` answers 200
``mqtt_published_total``                    counter    events the broker acknowledged
``mqtt_dropped_total``                      counter    events dropped from a full buffer (oldest
                                                       first)
``mqtt_buffered``                           gauge      events waiting for the broker
``mqtt_connected``                          gauge      1 while connected to the broker
``mqtt_disconnects_total``                  counter    connections to the broker lost
``run_seconds``                             gauge      time since the pipeline started
``build_info{version,backend}``             gauge      always 1
==========================================  =========  ==========================================
"""

from __future__ import annotations

import time
from typing import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spot_edge.service.health import HealthReport, assess_health

#: Latency histogram buckets (seconds): 1 ms to 10 s, for stages from a gallery search to a
#: full-frame pose pass on a CPU.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: ``SourceCounters`` field -> (metric name, help) of the per-camera counters.
CAMERA_COUNTERS = {
    "frames_read": ("frames_read", "Frames read from the camera."),
    "frames_processed": ("frames_processed", "Frames that went through every stage."),
    "frames_dropped": ("frames_dropped", "Frames dropped because the pipeline was behind."),
    "frames_discarded": ("frames_discarded", "Frames still queued when the run stopped."),
    "errors": ("frame_errors", "Frames that could not be used, or whose pose/crop failed."),
    "people": ("people", "People seen."),
    "events": ("events", "Match events (one per person seen)."),
    "matches": ("matches", "Events whose best gallery entry reached the threshold."),
    "disconnects": ("disconnects", "Times the camera stopped delivering frames."),
    "reconnects": ("reconnects", "Successful reopenings of the camera after a drop."),
    "reconnect_attempts": ("reconnect_attempts", "Reopenings of the camera tried."),
}
STATUSES = ("starting", "running", "reconnecting", "finished", "stopped", "failed")
PREFIX = "spot_edge_"


class PipelineMonitor:
    """Metrics and health of one :class:`~spot_edge.pipeline.runner.Pipeline`.

    Create it before the pipeline starts (latencies are observed from then on).

    Args:
        pipeline: the pipeline.
        registry: the Prometheus registry its metrics go to (one per server; not the global one).
        health_grace: seconds a camera may be down before the run is unhealthy (see
            :mod:`spot_edge.service.health`).
        publisher: the :class:`~spot_edge.service.mqtt.MqttPublisher` of the run, if any.
    """

    def __init__(self, pipeline, registry: CollectorRegistry, health_grace: float = 10.0, publisher=None) -> None:
        self.pipeline = pipeline
        self.health_grace = float(health_grace)
        self.publisher = publisher
        self.created = time.monotonic()
        self.latency = Histogram(f"{PREFIX}stage_latency_seconds", "Per-stage latency.", ["stage", "camera"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        pipeline.stats.add_listener(self._observe)
        registry.register(_PipelineCollector(self))

    def _observe(self, stage: str, seconds: float) -> None:
        name, _, camera = stage.partition("/")  # "pose/visible" -> ("pose", "visible")
        self.latency.labels(name, camera).observe(seconds)

    def health(self) -> HealthReport:
        """The run's health now (``/healthz``)."""
        p = self.pipeline
        sources = p.counters.to_dict()
        down = {name: p.counters.down_for(name) for name in sources}
        return assess_health(sources, down, self.health_grace, stop_reason=p.stop_reason, errors=p.errors)


class _PipelineCollector(Collector):
    """Reads the pipeline's counters at scrape time."""

    def __init__(self, monitor: PipelineMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        m = self.monitor
        p = m.pipeline
        sources = p.counters.to_dict()
        for field, (name, text) in CAMERA_COUNTERS.items():
            family = CounterMetricFamily(PREFIX + name, text, labels=["camera"])
            for camera, c in sources.items():
                family.add_metric([camera], c[field])
            yield family
        up = GaugeMetricFamily(f"{PREFIX}camera_up", "1 while the camera delivers frames.", labels=["camera"])
        down = GaugeMetricFamily(f"{PREFIX}camera_down_seconds", "Seconds the camera has delivered no frame "
                                 "(0 while it delivers).", labels=["camera"])
        status = GaugeMetricFamily(f"{PREFIX}camera_status", "1 for the camera's current status.",
                                   labels=["camera", "status"])
        for camera, c in sources.items():
            up.add_metric([camera], 1.0 if c["status"] == "running" else 0.0)
            down.add_metric([camera], p.counters.down_for(camera) or 0.0)
            for s in STATUSES:
                status.add_metric([camera, s], 1.0 if c["status"] == s else 0.0)
        yield from (up, down, status)
        if p.gallery is not None:
            yield GaugeMetricFamily(f"{PREFIX}gallery_entries", "Entries in the gallery.", value=_size(p.gallery))
        events = p.output.events
        yield CounterMetricFamily(f"{PREFIX}events_written", "Events written to the events file.", value=events.count)
        yield CounterMetricFamily(f"{PREFIX}events_file_rotations", "Rotations of the events file.",
                                  value=events.rotations)
        yield GaugeMetricFamily(f"{PREFIX}healthy", "1 when /healthz answers 200.",
                                value=1.0 if m.health().healthy else 0.0)
        if m.publisher is not None:
            s = m.publisher.stats()
            yield CounterMetricFamily(f"{PREFIX}mqtt_published", "Events the MQTT broker acknowledged.",
                                      value=s["published"])
            yield CounterMetricFamily(f"{PREFIX}mqtt_dropped", "Events dropped from the full MQTT buffer "
                                      "(oldest first).", value=s["dropped"])
            yield GaugeMetricFamily(f"{PREFIX}mqtt_buffered", "Events waiting for the MQTT broker.",
                                    value=s["buffered"])
            yield GaugeMetricFamily(f"{PREFIX}mqtt_connected", "1 while connected to the MQTT broker.",
                                    value=1.0 if s["connected"] else 0.0)
            yield CounterMetricFamily(f"{PREFIX}mqtt_disconnects", "Connections to the MQTT broker lost.",
                                      value=s["disconnects"])
        yield GaugeMetricFamily(f"{PREFIX}run_seconds", "Seconds since monitoring of the run started.",
                                value=time.monotonic() - m.created)
        from spot_edge import __version__

        info = GaugeMetricFamily(f"{PREFIX}build_info", "spot-edge version and embedding backend (always 1).",
                                 labels=["version", "backend"])
        info.add_metric([__version__, str(getattr(p.embedder, "name", "unknown"))], 1.0)
        yield info


def _size(gallery) -> float:
    try:
        return float(len(gallery))
    except RuntimeError:  # the sink thread added a modality part mid-count: ask once more
        return float(len(gallery))


__all__ = ["PipelineMonitor", "LATENCY_BUCKETS", "CAMERA_COUNTERS", "STATUSES"]
