"""fetch_pose_weights against a local HTTP server on 127.0.0.1 (no internet needed)."""

from __future__ import annotations

import http.server
import io
import json
import os
import pickle
import socket
import threading
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from spot_edge.hashing import sha256_bytes
from spot_edge.pose.fetch import WeightsDownloadError, fetch_pose_weights, verify_pose_weights_file
from spot_edge.pose.weights import expected_pose_shapes


def small_state_dict() -> "OrderedDict[str, torch.Tensor]":
    """Every key and shape of the COCO body model, each tensor a broadcast scalar: the file is
    small (one float of storage per tensor) but loads with the real shapes."""
    return OrderedDict((k, torch.full((1,), float(i)).expand(*shape)) for i, (k, shape)
                       in enumerate(expected_pose_shapes("openpose_coco").items()))


def saved(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


GOOD = saved(small_state_dict())


class Server:
    """Serves ``self.body`` at any path; ``mode``: ``range`` (honours Range), ``norange`` (always
    the whole file), ``drop`` (the first response stops half-way), ``404``."""

    def __init__(self) -> None:
        self.body, self.mode, self.requests = GOOD, "range", []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.headers.get("Range"))
                if server.mode == "404":
                    self.send_error(404, "Not Found")
                    return
                body, start = server.body, 0
                wanted = self.headers.get("Range")
                if wanted and server.mode != "norange":
                    start = int(wanted.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if server.mode == "drop" and len(server.requests) == 1:
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/body_pose_model.pth"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_download_verifies_writes_and_reports_progress(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []
    out = fetch_pose_weights(server.url, sha256=sha256_bytes(GOOD), out=Path("weights/body.pth"),
                             progress=lambda done, total: seen.append((done, total)))
    assert out.read_bytes() == GOOD
    assert seen[-1] == (len(GOOD), len(GOOD)) and seen[0][0] == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["body.pth", "body.pth.lock"]  # no .part left
    # the file is now in place: a second call verifies it and does not download again
    assert fetch_pose_weights(server.url, out=out) == out and len(server.requests) == 1


def test_partial_download_is_resumed_with_a_range_request(server, tmp_path):
    out = tmp_path / "body.pth"
    (tmp_path / "body.pth.part").write_bytes(GOOD[:1000])
    (tmp_path / "body.pth.part.json").write_text(json.dumps({"url": server.url}))
    fetch_pose_weights(server.url, out=out)
    assert server.requests == ["bytes=1000-"] and out.read_bytes() == GOOD


def test_partial_file_of_another_url_is_not_resumed(server, tmp_path):
    out = tmp_path / "body.pth"
    (tmp_path / "body.pth.part").write_bytes(b"x" * 1000)
    (tmp_path / "body.pth.part.json").write_text(json.dumps({"url": "http://elsewhere/other.pth"}))
    fetch_pose_weights(server.url, out=out)
    assert server.requests == [None] and out.read_bytes() == GOOD


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    server.mode = "norange"
    out = tmp_path / "body.pth"
    (tmp_path / "body.pth.part").write_bytes(GOOD[:1000])
    (tmp_path / "body.pth.part.json").write_text(json.dumps({"url": server.url}))
    fetch_pose_weights(server.url, out=out)
    assert out.read_bytes() == GOOD


def test_dropped_connection_is_resumed(server, tmp_path):
    server.mode = "drop"
    out = fetch_pose_weights(server.url, out=tmp_path / "body.pth", retries=2, retry_wait=0)
    assert out.read_bytes() == GOOD
    assert server.requests[0] is None and server.requests[1].startswith("bytes=") and server.requests[1] != "bytes=0-"


def test_dropped_connection_without_retries_keeps_the_part_for_the_next_call(server, tmp_path):
    server.mode = "drop"
    out = tmp_path / "body.pth"
    with pytest.raises(WeightsDownloadError, match="run the same command again to resume"):
        fetch_pose_weights(server.url, out=out, retries=0)
    part = tmp_path / "body.pth.part"
    assert not out.exists() and 0 < part.stat().st_size < len(GOOD)
    fetch_pose_weights(server.url, out=out, retries=0)  # the server now answers in full: resumed
    assert out.read_bytes() == GOOD and server.requests[-1] == f"bytes={len(GOOD) // 2}-"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/body_pose_model.pth"


BAD_CASES = {
    "wrong sha256": (GOOD, {"sha256": "0" * 64}, "does not match the expected"),
    "wrong keys": (saved({"fc.weight": torch.zeros(2, 2)}), {}, "missing keys"),
    "wrong shape": (saved({**small_state_dict(), "conv1_1.weight": torch.zeros(1)}), {}, "wrong shapes"),
    "not a state dict": (b"<html>Not the model</html>", {}, "not a PyTorch state dict"),
    "http 404": (GOOD, {"_mode": "404"}, "HTTP 404"),
    "unreachable": (GOOD, {"_url": "closed"}, "Offline?"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_downloads_fail_with_one_clear_line_and_leave_nothing(server, tmp_path, case):
    body, options, message = BAD_CASES[case]
    server.body = body
    server.mode = options.pop("_mode", "range")
    url = _closed_port_url() if options.pop("_url", None) else server.url
    out = tmp_path / "body.pth"
    with pytest.raises(WeightsDownloadError, match=message) as err:
        fetch_pose_weights(url, out=out, retries=0, **options)
    assert "\n" not in str(err.value)
    assert not out.exists() and not (tmp_path / "body.pth.part").exists()


def test_malformed_sha256_is_refused_before_any_request(server, tmp_path):
    with pytest.raises(ValueError, match="64 hexadecimal"):
        fetch_pose_weights(server.url, sha256="abc", out=tmp_path / "b.pth")
    assert server.requests == []


def test_existing_invalid_file_is_kept_unless_forced(server, tmp_path):
    out = tmp_path / "body.pth"
    out.write_bytes(b"something else")
    with pytest.raises(WeightsDownloadError, match="exists but is not valid"):
        fetch_pose_weights(server.url, out=out)
    assert out.read_bytes() == b"something else" and server.requests == []
    fetch_pose_weights(server.url, out=out, force=True)
    assert out.read_bytes() == GOOD


def test_legacy_format_loads_and_pickled_code_never_runs(tmp_path):
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(saved(small_state_dict(), _use_new_zipfile_serialization=False))
    verify_pose_weights_file(legacy)

    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    hostile = tmp_path / "hostile.pth"
    hostile.write_bytes(pickle.dumps({"conv1_1.weight": Payload()}, protocol=2))
    with pytest.raises(WeightsDownloadError, match="loads safely"):
        verify_pose_weights_file(hostile)
    assert not marker.exists()
