"""Small fakes for the pipeline tests: generated videos with keypoints, a fake embedder, fake cameras.

Imported by ``test_pipeline*.py`` and ``test_gallery_cli.py`` (and by the SIGINT test's
subprocess); ``test_fakes_generate_and_embed`` checks the fakes.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from spot_edge.backends.base import Embedder
from spot_edge.pose.skeleton import LIMBS
from spot_edge.pose.synthetic_skeletons import standing_people
from spot_edge.preprocessing import PreprocessSpec

# Two people: bright and dim (luminance is what the fake embedder "recognises", in both modalities).
PEOPLE_BGR = {"alice": (235, 235, 235), "bob": (200, 110, 40)}


def _luminance(bgr) -> float:
    b, g, r = bgr
    return 0.299 * r + 0.587 * g + 0.114 * b


def draw_person(image: np.ndarray, keypoints: np.ndarray, colour, height: float) -> None:
    thick = max(2, int(height / 7))
    for a, b in LIMBS:
        pa, pb = keypoints[a, :2], keypoints[b, :2]
        cv2.line(image, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), colour, thick)
    neck, hips = keypoints[1, :2], (keypoints[8, :2] + keypoints[11, :2]) / 2
    cv2.line(image, (int(neck[0]), int(neck[1])), (int(hips[0]), int(hips[1])), colour, int(thick * 2.5))


def write_test_video(path: Path, modality: str, frames: int = 16, size=(120, 160), fps: float = 10.0,
                     people=("alice", "bob")) -> Path:
    """A small MJPG video of ``people`` walking across, plus ``<path>.keypoints.jsonl``.

    Returns the keypoints file path. Infrared frames are grey (luminance of the visible colours).
    """
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    kp_path = Path(str(path) + ".keypoints.jsonl")
    height = 0.75 * h
    with open(kp_path, "w") as kf:
        for t in range(frames):
            image = np.full((h, w, 3), 30, np.uint8)
            xs = [w * (0.25 + 0.01 * t), w * (0.75 - 0.01 * t)][:len(people)]
            kps = standing_people(xs, [0.1 * h] * len(people), [height] * len(people))
            lines = []
            for name, kp in zip(people, kps):
                colour = PEOPLE_BGR[name]
                if modality == "infrared":
                    colour = (int(_luminance(colour)),) * 3
                draw_person(image, kp, colour, height)
                lines.append({"keypoints": kp.round(2).tolist(), "name": name})
            writer.write(image)
            kf.write(json.dumps({"frame": t, "people": lines}) + "\n")
    writer.release()
    return kp_path


class FakeEmbedder(Embedder):
    """A :class:`spot_edge.backends.base.Embedder` that embeds a crop by the luminance of its torso
    (a stand-in for SPOT).

    Each backend call (a chunk of at most ``max_batch`` crops) sleeps ``delay + delay_per_crop *
    chunk`` seconds (a slow backend) and is recorded in ``batch_sizes`` / ``embedded_modalities``."""

    name = "fake"
    embedding_dim = 8
    modalities = ("visible", "infrared")

    def __init__(self, delay: float = 0.0, delay_per_crop: float = 0.0, max_batch: int = 32) -> None:
        self.preprocessing = PreprocessSpec(height=64, width=32)
        self.delay = delay
        self.delay_per_crop = delay_per_crop
        self.max_batch = max_batch
        self.calls = 0
        self.batch_sizes: list[int] = []
        self.embedded_modalities: list[str] = []

    def _embed_batch(self, images: np.ndarray, heatmaps: np.ndarray, modality: str) -> np.ndarray:
        self.calls += 1
        self.batch_sizes.append(len(images))
        self.embedded_modalities.append(modality)
        if self.delay or self.delay_per_crop:
            time.sleep(self.delay + self.delay_per_crop * len(images))
        mean = np.asarray(self.preprocessing.mean, np.float32)[None, :, None, None]
        std = np.asarray(self.preprocessing.std, np.float32)[None, :, None, None]
        rgb = images * std + mean
        lum = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]  # (B, H, W)
        torso = lum[:, 20:38, 13:19].mean(axis=(1, 2))
        f = np.asarray([0.5, 1.0, 1.5, 2.0])
        e = np.concatenate([np.cos(2 * np.pi * torso[:, None] * f), np.sin(2 * np.pi * torso[:, None] * f)], axis=1)
        return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)


class FakeCamera:
    """A live source: frames from a list, with scripted failures.

    ``fail_at``: frame numbers at which ``read`` fails (returns None, or raises with
    ``raise_on_fail``); ``open_failures``: how many reopen attempts fail after each read failure.
    ``fps``: frames are delivered no faster than this. After the last frame, reads keep failing
    and reopening fails (a camera that went away) unless ``loop``.
    """

    live = True

    def __init__(self, frames: list[np.ndarray], fps: float = 200.0, fail_at=(), open_failures: int = 0,
                 raise_on_fail: bool = False, loop: bool = False) -> None:
        self.frames = frames
        self.fps = fps
        self.fail_at = set(fail_at)
        self.open_failures = open_failures
        self.raise_on_fail = raise_on_fail
        self.loop = loop
        self.description = "fake camera"
        self.position = 0
        self.opened = False
        self.open_calls = 0
        self._pending_open_failures = 0
        self._last = 0.0
        self.delivered = 0
        self.lock = threading.Lock()

    def open(self) -> None:
        from spot_edge.pipeline.sources import SourceError

        self.open_calls += 1
        if self._pending_open_failures > 0:
            self._pending_open_failures -= 1
            raise SourceError("fake camera: device busy")
        if self.position >= len(self.frames) and not self.loop:
            raise SourceError("fake camera: gone")
        self.opened = True

    def read(self):
        if not self.opened:
            raise RuntimeError("read before open")
        if self.position in self.fail_at:
            self.fail_at.discard(self.position)
            self._pending_open_failures = self.open_failures
            self.opened = False
            if self.raise_on_fail:
                raise OSError("fake camera: USB disconnected")
            return None
        if self.position >= len(self.frames):
            if not self.loop:
                self.opened = False
                return None
            self.position = 0
        wait = self._last + 1.0 / self.fps - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        self._last = time.perf_counter()
        frame = self.frames[self.position]
        self.position += 1
        self.delivered += 1
        return frame

    def close(self) -> None:
        self.opened = False


def random_frames(n: int, size=(120, 160), seed: int = 0) -> list[np.ndarray]:
    """``n`` random ``(H, W, 3)`` uint8 frames."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(n)]


class OnePersonPose:
    """Fake pose source: one standing person in every frame, rendered maps."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def __call__(self, frame):
        from spot_edge.pipeline.pose_sources import PoseResult, people_from_keypoints, render_frame_maps

        if self.delay:
            time.sleep(self.delay)
        h, w = frame.image.shape[:2]
        people = people_from_keypoints(standing_people([w / 2], [0.1 * h], [0.7 * h]), (h, w))
        return PoseResult(people=people, maps=render_frame_maps(people, (h, w)), stride=8.0)


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames



# ----------------------------------------------------------------------------- service helpers
# (the metrics / health endpoint and the MQTT tests: tests/test_service_*.py)

def free_port() -> int:
    """A local TCP port nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """``(status, body)`` of a GET, without any proxy (HTTP errors such as 503 included, not
    raised; ``(0, reason)`` when nothing answers)."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


def metric_samples(text: str) -> dict[tuple, float]:
    """Prometheus text -> ``{(sample name, (label, value), ...): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def wait_until(condition, timeout: float = 10.0, step: float = 0.05, what: str = "condition"):
    """Poll ``condition()`` until it is truthy (returned) or ``timeout`` (AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def mosquitto_binary():
    """The Mosquitto broker's executable, or skip (fail with ``SPOT_EDGE_REQUIRE_MOSQUITTO=1``, as CI
    sets it)."""
    import os
    import shutil

    import pytest

    found = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                                if Path(p).is_file()), None)
    if found is None:
        message = ("the mosquitto broker is not installed (Debian: apt-get install mosquitto); the MQTT "
                   "tests need a real broker")
        if os.environ.get("SPOT_EDGE_REQUIRE_MOSQUITTO") == "1":
            pytest.fail(message + " and SPOT_EDGE_REQUIRE_MOSQUITTO=1 requires them")
        pytest.skip(message)
    return found


class MosquittoBroker:
    """A real Mosquitto broker on 127.0.0.1 (a generated config: anonymous, no persistence) that a
    test can stop and start again on the same port."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.binary = mosquitto_binary()
        self.port = port or free_port()
        self.config = Path(folder) / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                               "log_dest stderr\n")
        self.log = Path(folder) / "mosquitto.log"
        self.process = None

    def start(self) -> "MosquittoBroker":
        import socket
        import subprocess

        self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.log, "ab"))

        def listening():
            if self.process.poll() is not None:
                raise AssertionError(f"mosquitto exited: {self.log.read_text(errors='replace')[-2000:]}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, timeout=10, what=f"mosquitto on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class MqttCollector:
    """A subscriber that collects the payloads of a topic (and resubscribes after reconnecting)."""

    def __init__(self, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.topic = topic
        self.messages: list[str] = []
        self.subscribed = threading.Event()
        self.lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"collector-{port}")
        self.client.reconnect_delay_set(0.1, 0.3)
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p=None: self.subscribed.set()
        self.client.on_disconnect = lambda c, u, f, rc, p=None: self.subscribed.clear()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append(message.payload.decode())

    def received(self) -> list[str]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
