"""Bad values of the service options of ``spot-edge run`` (--metrics-port, --metrics-host,
--health-grace, --events-*, --publish*): one ``error:`` line, exit code 2, refused before the
run starts (never clamped)."""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_fakes import FakeEmbedder, write_test_video  # noqa: E402

from spot_edge.cli import run as run_cli  # noqa: E402
from spot_edge.cli.app import app as root_app  # noqa: E402
from spot_edge.errors import InputError  # noqa: E402
from spot_edge.service import parse_byte_size, parse_mqtt_url  # noqa: E402

runner = CliRunner()
_HELD: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _release_sockets():
    yield
    while _HELD:
        _HELD.pop().close()


def _busy_port() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    _HELD.append(s)
    return str(s.getsockname()[1])


# (id, extra options, what the one error line says: a regex)
REFUSALS = [
    ("metrics-port-0", lambda: ["--metrics-port", "0"], "--metrics-port must be at least 1, got 0"),
    ("metrics-port-too-high", lambda: ["--metrics-port", "70000"], "--metrics-port must be at most 65535"),
    ("metrics-port-busy", lambda: ["--metrics-port", _busy_port()], r"cannot listen on 127\.0\.0\.1:\d+"),
    ("metrics-host-without-port", lambda: ["--metrics-host", "0.0.0.0"], "--metrics-host needs --metrics-port"),
    ("metrics-host-empty", lambda: ["--metrics-port", "9400", "--metrics-host", " "], "--metrics-host is empty"),
    ("health-grace-without-port", lambda: ["--health-grace", "5"], "--health-grace needs --metrics-port"),
    ("health-grace-negative", lambda: ["--metrics-port", "9400", "--health-grace", "-1"],
     "--health-grace must be at least 0"),
    ("health-grace-nan", lambda: ["--metrics-port", "9400", "--health-grace", "nan"],
     "--health-grace must be a finite number"),
    ("events-max-bytes-words", lambda: ["--events-max-bytes", "ten"], "--events-max-bytes must be a size"),
    ("events-max-bytes-negative", lambda: ["--events-max-bytes", "-5M"], "--events-max-bytes must be a size"),
    ("events-max-bytes-too-small", lambda: ["--events-max-bytes", "100"], "--events-max-bytes must be at least 1024"),
    ("events-max-bytes-terabytes", lambda: ["--events-max-bytes", "5T"], "suffixes K, M, G"),
    ("events-rotate-seconds-0", lambda: ["--events-rotate-seconds", "0"], "--events-rotate-seconds must be at least 1"),
    ("events-rotate-seconds-nan", lambda: ["--events-rotate-seconds", "nan"],
     "--events-rotate-seconds must be a finite number"),
    ("events-keep-negative", lambda: ["--events-keep", "-1"], "--events-keep must be at least 0"),
    ("publish-http", lambda: ["--publish", "http://broker/topic"], "expected mqtt://host"),
    ("publish-mqtts", lambda: ["--publish", "mqtts://broker/topic"], r"mqtts:// \(TLS\) is not supported"),
    ("publish-no-topic", lambda: ["--publish", "mqtt://broker:1883"], "no topic"),
    ("publish-no-host", lambda: ["--publish", "mqtt:///spot"], "no broker host"),
    ("publish-bad-port", lambda: ["--publish", "mqtt://broker:99999/spot"], "port must be a number from 1 to 65535"),
    ("publish-wildcard", lambda: ["--publish", "mqtt://broker/spot/#"], "wildcard"),
    ("publish-qos-3", lambda: ["--publish", "mqtt://broker/spot?qos=3"], "qos must be 0, 1 or 2"),
    ("publish-unknown-option", lambda: ["--publish", "mqtt://broker/spot?keepalive=5"], "unknown options"),
    ("publish-buffer-0", lambda: ["--publish", "mqtt://broker/spot", "--publish-buffer", "0"],
     "--publish-buffer must be at least 1"),
]


@pytest.mark.parametrize("extra,message", [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_run_refuses_bad_service_options(tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    loaded = []
    monkeypatch.setattr(run_cli, "load_embedder", lambda *a, **k: loaded.append(1) or FakeEmbedder())
    write_test_video(tmp_path / "v.avi", "visible", frames=2)
    r = runner.invoke(root_app, ["run", "--visible", "v.avi", "--visible-keypoints", "v.avi.keypoints.jsonl",
                                 "-m", "fake.onnx", "-o", "out", "-q", *extra()])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(message, errors[0]), r.stderr
    assert not loaded and not (tmp_path / "out").exists()  # refused before anything ran


SIZES = [("1500", 1500), ("64k", 65536), ("50M", 50 * 2**20), ("1.5G", int(1.5 * 2**30)), ("10MiB", 10 * 2**20),
         ("2 GB", 2 * 2**30), (2048, 2048)]


@pytest.mark.parametrize("text,size", SIZES, ids=[str(s[0]) for s in SIZES])
def test_byte_sizes(text, size):
    assert parse_byte_size(text) == size


def test_mqtt_url_with_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPOT_EDGE_MQTT_PASSWORD", "s3cret")
    t = parse_mqtt_url("mqtt://edge@broker.local/site/a/events?qos=0&client_id=cam-1&retain=1")
    assert (t.host, t.port, t.topic, t.qos, t.retain, t.client_id) == ("broker.local", 1883, "site/a/events", 0,
                                                                         True, "cam-1")
    assert (t.username, t.password) == ("edge", "s3cret") and "s3cret" not in t.display
    assert parse_mqtt_url("mqtt://u:pw@[::1]:1884/t").display == "mqtt://[::1]:1884/t"
    with pytest.raises(InputError, match="retain must be 0 or 1"):
        parse_mqtt_url("mqtt://h/t?retain=yes")
