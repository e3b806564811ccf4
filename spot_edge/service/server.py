"""The HTTP endpoint of a running ``spot-edge run``: ``/metrics`` (Prometheus) and ``/healthz``.

:class:`MonitoringServer` binds its port when created (so a busy port is an error before any
model is loaded), serves from a daemon thread once started, and answers:

- ``GET /metrics``: the Prometheus text format of its registry
  (:class:`~spot_edge.service.metrics.PipelineMonitor` adds the pipeline's metrics);
- ``GET /healthz``: JSON (``{"status": "ok" | "unhealthy" | "starting", "problems": [...],
  "cameras": {...}}``) with HTTP 200 when healthy, 503 otherwise (also 503 while the model
  loads, before a pipeline is attached);
- ``GET /``: a short index.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger("spot_edge.service")


class MonitoringServer:
    """``/metrics`` and ``/healthz`` on ``host:port`` (see the module docstring).

    Args:
        host: the address to listen on (``127.0.0.1``: this machine only; ``0.0.0.0``: every
            interface, for a Prometheus server on another machine).
        port: the TCP port (0: any free port; :attr:`port` says which).

    Raises:
        OSError: the address cannot be bound (the message names it: a port in use, an address
            this machine does not have).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 9400) -> None:
        self.registry = CollectorRegistry()
        self.monitor = None
        self._thread: threading.Thread | None = None
        handler = type("_Handler", (_Handler,), {"server_ref": self})
        try:
            self._http = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port} for the metrics endpoint: {exc.strerror or exc}"
                          ) from None
        self._http.daemon_threads = True
        self.host = host
        self.port = int(self._http.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def attach(self, monitor) -> None:
        """Serve this :class:`~spot_edge.service.metrics.PipelineMonitor`'s health (and, through
        the shared registry, its metrics)."""
        self.monitor = monitor

    def start(self) -> "MonitoringServer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.2},
                                            name="spot-edge-metrics", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._http.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._http.server_close()

    def health(self) -> tuple[int, dict]:
        if self.monitor is None:
            return 503, {"status": "starting", "problems": ["the pipeline is not running yet"], "cameras": {}}
        report = self.monitor.health()
        return report.http_status, report.to_dict()

    def __enter__(self) -> "MonitoringServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    server_ref: MonitoringServer
    server_version = "spot-edge"

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                self._send(200, generate_latest(self.server_ref.registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/health"):
                status, body = self.server_ref.health()
                self._send(status, (json.dumps(body, indent=1) + "\n").encode(), "application/json")
            elif path == "/":
                self._send(200, b"spot-edge: /metrics (Prometheus), /healthz (200 healthy, 503 not)\n",
                           "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain; charset=utf-8")
        except BrokenPipeError:  # the scraper went away
            pass
        except Exception as exc:  # noqa: BLE001 - a scrape must never take the service down
            log.error("metrics endpoint: %s: %s", type(exc).__name__, exc)
            self._send(500, f"{type(exc).__name__}: {exc}\n".encode(), "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - silence per-request logging
        pass


__all__ = ["MonitoringServer"]
