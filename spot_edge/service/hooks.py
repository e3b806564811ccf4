"""What ``spot-edge run`` adds to a pipeline to run as a watched service: the metrics / health
endpoint and the MQTT publisher, set up and torn down together.

>>> with ServiceHooks(metrics_port=9400, publish=parse_mqtt_url("mqtt://broker/spot")) as hooks:  # doctest: +SKIP
...     pipe = Pipeline(inputs, embedder, gallery, config, output_dir=out, event_sinks=hooks.event_sinks)
...     hooks.watch(pipe)
...     summary = pipe.run()
"""

from __future__ import annotations

from spot_edge.service.mqtt import MqttPublisher, MqttTarget
from spot_edge.service.server import MonitoringServer

#: Seconds a camera may be down before ``/healthz`` turns unhealthy (``--health-grace``).
DEFAULT_HEALTH_GRACE = 10.0
#: Events kept for the MQTT broker while it is away (``--publish-buffer``).
DEFAULT_PUBLISH_BUFFER = 1000


class ServiceHooks:
    """The endpoint and the publisher of one run (either may be absent).

    Creating it binds the metrics port at once (a busy port fails before any model loads);
    :meth:`watch` attaches the pipeline and starts both; :meth:`close` (or leaving the ``with``
    block) flushes the publisher for up to ``publish_flush_s`` seconds and stops the server.

    Args:
        metrics_port: serve ``/metrics`` and ``/healthz`` on this port (``None``: no endpoint).
        metrics_host: the address to listen on.
        health_grace: see :mod:`spot_edge.service.health`.
        publish: where to publish events (``None``: nowhere).
        publish_buffer: most events kept while the broker is away (oldest dropped beyond).
        publish_flush_s: how long :meth:`close` may wait for the broker to take what is queued.
    """

    def __init__(self, metrics_port: int | None = None, metrics_host: str = "127.0.0.1",
                 health_grace: float = DEFAULT_HEALTH_GRACE, publish: MqttTarget | None = None,
                 publish_buffer: int = DEFAULT_PUBLISH_BUFFER, publish_flush_s: float = 3.0) -> None:
        self.health_grace = health_grace
        self.publish_flush_s = publish_flush_s
        self.publisher = MqttPublisher(publish, buffer_size=publish_buffer) if publish is not None else None
        self.server = MonitoringServer(metrics_host, metrics_port) if metrics_port is not None else None
        self.monitor = None

    @property
    def event_sinks(self) -> list:
        return [self.publisher] if self.publisher is not None else []

    def watch(self, pipeline) -> None:
        """Attach ``pipeline`` (before it starts) and start the endpoint and the publisher."""
        from spot_edge.service.metrics import PipelineMonitor

        if self.server is not None:
            self.monitor = PipelineMonitor(pipeline, self.server.registry, self.health_grace, self.publisher)
            self.server.attach(self.monitor)
            self.server.start()
        if self.publisher is not None:
            self.publisher.start()

    def close(self) -> None:
        try:
            if self.publisher is not None:
                self.publisher.close(self.publish_flush_s)
        finally:
            if self.server is not None:
                self.server.close()

    def __enter__(self) -> "ServiceHooks":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["ServiceHooks", "DEFAULT_HEALTH_GRACE", "DEFAULT_PUBLISH_BUFFER"]
