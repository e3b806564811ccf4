"""Match events published to an MQTT broker (``spot-edge run --publish mqtt://host:1883/topic``).

:class:`MqttPublisher` never stalls the pipeline: :meth:`MqttPublisher.publish` only appends the
event's JSON line to a bounded buffer and returns. A worker thread hands lines to paho-mqtt while
the broker is connected (at most ``max_unacked`` waiting for their acknowledgement); paho's own
network thread connects, and reconnects with exponential back-off when the broker goes away.
While it is away the buffer fills; when full, the *oldest* line is dropped (counted as
``dropped``), so what reaches the broker after an outage is the most recent. Lines handed to paho
but not acknowledged when the connection drops are sent again after reconnecting (QoS 1; QoS 0
lines not yet written go back to the buffer).

The payload of each message is the event exactly as written to ``events.jsonl``
(:class:`~spot_edge.pipeline.events.MatchEvent`).
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from spot_edge.errors import InputError

log = logging.getLogger("spot_edge.service")

DEFAULT_PORT = 1883
#: Environment variable holding the broker password when the URL has a user name but no password
#: (keeps it out of the command line and the systemd unit).
PASSWORD_ENV = "SPOT_EDGE_MQTT_PASSWORD"


@dataclass(frozen=True)
class MqttTarget:
    """Where events go: ``mqtt://[user[:password]@]host[:port]/topic[?qos=1&client_id=NAME&retain=0]``."""

    host: str
    port: int
    topic: str
    qos: int = 1
    retain: bool = False
    client_id: str | None = None
    username: str | None = None
    password: str | None = None

    @property
    def display(self) -> str:
        """The URL without credentials (for messages and logs)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}/{self.topic}"


def parse_mqtt_url(url: str) -> MqttTarget:
    """The :class:`MqttTarget` of a ``--publish`` URL.

    Raises:
        InputError: another scheme, no host, a bad port, no topic, a wildcard topic, an unknown
            or bad query option.
    """
    text = str(url).strip()
    parts = urlsplit(text)
    if parts.scheme.lower() != "mqtt":
        if parts.scheme.lower() == "mqtts":
            raise InputError(f"--publish {text!r}: mqtts:// (TLS) is not supported; use mqtt:// on a trusted "
                             "network or a local broker bridging to TLS")
        raise InputError(f"--publish {text!r}: expected mqtt://host[:port]/topic")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise InputError(f"--publish {text!r}: the port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise InputError(f"--publish {text!r}: no broker host (expected mqtt://host[:port]/topic)")
    topic = parts.path.lstrip("/")
    if not topic:
        raise InputError(f"--publish {text!r}: no topic (expected mqtt://host[:port]/topic)")
    if any(ch in topic for ch in "+#\0") or "#" in text:  # urlsplit reads "#" as a fragment
        raise InputError(f"--publish {text!r}: the topic has a wildcard (+ or #); publish to a plain topic")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - {"qos", "retain", "client_id"})
    if unknown:
        raise InputError(f"--publish {text!r}: unknown options {unknown} (known: qos, retain, client_id)")
    qos = options.get("qos", "1")
    if qos not in ("0", "1", "2"):
        raise InputError(f"--publish {text!r}: qos must be 0, 1 or 2, got {qos!r}")
    retain = options.get("retain", "0")
    if retain not in ("0", "1"):
        raise InputError(f"--publish {text!r}: retain must be 0 or 1, got {retain!r}")
    password = parts.password
    if parts.username and password is None:
        password = os.environ.get(PASSWORD_ENV)
    return MqttTarget(host=parts.hostname, port=port, topic=topic, qos=int(qos), retain=retain == "1",
                      client_id=options.get("client_id") or None, username=parts.username or None,
                      password=password)


class MqttPublisher:
    """Publishes JSON lines to an MQTT topic without blocking the caller (see the module docstring).

    Use it as a pipeline event sink (``Pipeline(..., event_sinks=[publisher])``): it is called with
    ``(event, line)``.

    Args:
        target: the broker and topic (:func:`parse_mqtt_url`).
        buffer_size: most lines waiting for the broker; beyond it the oldest is dropped.
        max_unacked: most lines handed to paho and not yet acknowledged.
        reconnect_min, reconnect_max: paho's reconnection back-off (seconds).
        keepalive: MQTT keep-alive (seconds): how soon a silent broker is noticed.
    """

    def __init__(self, target: MqttTarget, buffer_size: int = 1000, max_unacked: int = 100,
                 reconnect_min: float = 0.5, reconnect_max: float = 30.0, keepalive: int = 30) -> None:
        if buffer_size < 1 or max_unacked < 1:
            raise InputError(f"MqttPublisher buffer_size and max_unacked must be at least 1, got "
                             f"{buffer_size} and {max_unacked}")
        self.target = target
        self.buffer_size = int(buffer_size)
        self.max_unacked = int(max_unacked)
        self.reconnect_min = float(reconnect_min)
        self.reconnect_max = float(reconnect_max)
        self.keepalive = int(keepalive)
        self._buffer: collections.deque[str] = collections.deque()
        self._cond = threading.Condition()
        self._connected = False
        self._closing = False
        self._unacked = 0
        self._counts = {"published": 0, "dropped": 0, "failed": 0, "disconnects": 0, "connects": 0}
        self._client = None
        self._worker: threading.Thread | None = None
        self._last_warning = 0.0

    # ------------------------------------------------------------------ the caller's side
    def publish(self, line: str) -> None:
        """Queue one line (returns at once; drops the oldest queued line when the buffer is full)."""
        with self._cond:
            if len(self._buffer) >= self.buffer_size:
                self._buffer.popleft()
                self._counts["dropped"] += 1
            self._buffer.append(line)
            self._cond.notify_all()

    def __call__(self, event, line: str) -> None:
        self.publish(line)

    def stats(self) -> dict:
        """``published`` (acknowledged), ``dropped`` (buffer full), ``failed`` (refused by paho),
        ``buffered`` (waiting, handed-over included), ``connected``, ``connects``, ``disconnects``."""
        with self._cond:
            return {**self._counts, "buffered": len(self._buffer) + self._unacked, "connected": self._connected}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "MqttPublisher":
        """Start connecting (in the background: a broker that is down is retried) and publishing."""
        import paho.mqtt.client as mqtt

        client_id = self.target.client_id or f"spot-edge-{socket.gethostname()}-{os.getpid()}"
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv311)
        if self.target.username:
            client.username_pw_set(self.target.username, self.target.password)
        client.reconnect_delay_set(self.reconnect_min, self.reconnect_max)
        client.max_inflight_messages_set(min(20, self.max_unacked))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_connect_fail = self._on_connect_fail
        self._client = client
        client.connect_async(self.target.host, self.target.port, keepalive=self.keepalive)
        client.loop_start()
        self._worker = threading.Thread(target=self._run, name="spot-edge-mqtt", daemon=True)
        self._worker.start()
        return self

    def close(self, timeout: float = 3.0) -> int:
        """Send what is waiting (for up to ``timeout`` seconds while connected), disconnect, stop;
        returns how many lines were never acknowledged (a publisher never started sends nothing)."""
        if self._client is None:
            return len(self._buffer)
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while (self._buffer or self._unacked) and self._connected and time.monotonic() < deadline:
                self._cond.wait(0.05)
            left = len(self._buffer) + self._unacked
        if self._worker is not None:
            self._worker.join(2.0)
        self._client.disconnect()
        self._client.loop_stop()
        if left:
            log.warning("MQTT %s: %d event(s) not delivered at shutdown", self.target.display, left)
        return left

    # ------------------------------------------------------------------ the worker
    def _can_send(self) -> bool:
        return self._connected and bool(self._buffer) and self._unacked < self.max_unacked

    def _run(self) -> None:
        import paho.mqtt.client as mqtt

        while True:
            with self._cond:
                while not self._can_send() and not self._closing:
                    self._cond.wait(0.5)
                if not self._can_send():
                    return  # closing, and nothing more can be sent
                line = self._buffer.popleft()
                self._unacked += 1
            try:
                rc = self._client.publish(self.target.topic, line, qos=self.target.qos, retain=self.target.retain).rc
            except Exception as exc:  # noqa: BLE001 - a publisher problem must never reach the pipeline
                rc = exc
            if rc == mqtt.MQTT_ERR_SUCCESS or (rc == mqtt.MQTT_ERR_NO_CONN and self.target.qos > 0):
                continue  # sent, or kept by paho and sent again after reconnecting
            with self._cond:
                self._unacked -= 1
                if rc == mqtt.MQTT_ERR_NO_CONN:  # QoS 0, not written: back to the front, still the oldest
                    if len(self._buffer) >= self.buffer_size:
                        self._counts["dropped"] += 1
                    else:
                        self._buffer.appendleft(line)
                    self._connected = False
                else:
                    self._counts["failed"] += 1
                    self._warn(f"MQTT {self.target.display}: publish refused ({rc})")

    # ------------------------------------------------------------------ paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if getattr(reason_code, "is_failure", False):
            self._warn(f"MQTT {self.target.display}: the broker refused the connection ({reason_code})")
            return
        with self._cond:
            self._connected = True
            self._counts["connects"] += 1
            self._cond.notify_all()
        log.info("MQTT %s: connected", self.target.display)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        with self._cond:
            was = self._connected
            self._connected = False
            if was:
                self._counts["disconnects"] += 1
            closing = self._closing
        if was and not closing:
            self._warn(f"MQTT {self.target.display}: connection lost ({reason_code}); buffering up to "
                       f"{self.buffer_size} events and reconnecting")

    def _on_connect_fail(self, client, userdata) -> None:
        self._warn(f"MQTT {self.target.display}: cannot connect; retrying (up to every {self.reconnect_max:g} s)")

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None) -> None:
        with self._cond:
            self._unacked = max(0, self._unacked - 1)
            self._counts["published"] += 1
            self._cond.notify_all()

    def _warn(self, message: str) -> None:
        """A warning at most every 30 s (a broker down for a day must not flood the journal)."""
        now = time.monotonic()
        if now - self._last_warning >= 30.0 or self._last_warning == 0.0:
            self._last_warning = now
            log.warning("%s", message)


__all__ = ["MqttPublisher", "MqttTarget", "parse_mqtt_url", "DEFAULT_PORT", "PASSWORD_ENV"]
