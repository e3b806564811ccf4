"""``spot-edge run`` as a long-running service that can be watched.

Modules: :mod:`.health` (when a run is healthy: the rule behind ``/healthz``), :mod:`.metrics`
(the Prometheus metrics of a running pipeline), :mod:`.server` (the HTTP endpoint serving
``/metrics`` and ``/healthz``), :mod:`.mqtt` (match events published to an MQTT broker, without
ever stalling the pipeline), :mod:`.systemd` (the systemd unit behind ``spot-edge service
install``), :mod:`.sizes` (byte sizes such as ``50M`` on the command line), :mod:`.hooks` (the
endpoint and the publisher of one run, set up and torn down together).

Example (what ``spot-edge run --metrics-port 9400 --publish mqtt://broker/spot`` adds)::

    from spot_edge.service import MonitoringServer, MqttPublisher, PipelineMonitor, parse_mqtt_url

    server = MonitoringServer("127.0.0.1", 9400)          # binds at once (a busy port fails here)
    publisher = MqttPublisher(parse_mqtt_url("mqtt://broker:1883/spot")).start()
    pipe = Pipeline(inputs, embedder, gallery, config, output_dir="runs/cam", event_sinks=[publisher])
    server.attach(PipelineMonitor(pipe, server.registry, health_grace=10.0, publisher=publisher))
    server.start()
    try:
        pipe.run()
    finally:
        publisher.close()
        server.close()
"""

from spot_edge.service.health import CameraHealth, HealthReport, assess_health
from spot_edge.service.hooks import ServiceHooks
from spot_edge.service.metrics import PipelineMonitor
from spot_edge.service.mqtt import MqttPublisher, MqttTarget, parse_mqtt_url
from spot_edge.service.server import MonitoringServer
from spot_edge.service.sizes import parse_byte_size

__all__ = ["CameraHealth", "HealthReport", "assess_health", "ServiceHooks", "PipelineMonitor", "MqttPublisher",
           "MqttTarget", "parse_mqtt_url", "MonitoringServer", "parse_byte_size"]
