"""Download the CMU OpenPose COCO body model (``body_pose_model.pth``), resumably and verified.

The default source is the Hugging Face copy in ``lllyasviel/Annotators`` that the ControlNet
OpenPose preprocessors download (the PyTorch port's file, flat Caffe layer names, 209,267,595
bytes, SHA-256 :data:`DEFAULT_SHA256`; the same file is pinned at revision
``982e7edaec38759d914a963c48c4726685de7d96``). The PyTorch port's README links Dropbox / Google
Drive / Baidu folders of the same file; CMU's ``pose_iter_440000.caffemodel`` (``getModels.sh``)
loads too (:mod:`spot_edge.pose.caffe`) but is not what this fetches.

How it is safe:

- the bytes go to ``<out>.part`` (with ``<out>.part.json`` naming the URL); a later call for the
  same URL resumes it with an HTTP ``Range`` request (a server that ignores ranges is read from
  the start again), and a connection dropped mid-way is resumed up to ``retries`` times;
- the finished file is checked before it is moved into place: its SHA-256 when one is known,
  and its state dict's keys and shapes against the COCO body network. The state dict is read
  with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler only rebuilds tensors,
  storages and plain containers, and refuses any other object, so a hostile file cannot run code;
- the checked file is renamed over ``out`` atomically (:func:`spot_edge.atomic.atomic_path`);
  a file lock keeps two downloads to one path apart.

Offline (no route, no DNS, refused), one :class:`WeightsDownloadError` line says what to do: fetch
the file on a machine with internet and copy it over.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import Callable

from spot_edge.atomic import atomic_path, atomic_write_json
from spot_edge.errors import SpotEdgeError
from spot_edge.hashing import sha256_file

DEFAULT_URL = "https://huggingface.co/lllyasviel/Annotators/resolve/main/body_pose_model.pth"
DEFAULT_SHA256 = "25a948c16078b0f08e236bda51a385d855ef4c153598947c28c0d47ed94bb746"
DEFAULT_SIZE = 209_267_595
DEFAULT_FILENAME = "body_pose_model.pth"
MAX_BYTES = 1 << 30  # anything larger is not the body model
CHUNK = 1 << 20

Progress = Callable[[int, "int | None"], None]


class WeightsDownloadError(SpotEdgeError, RuntimeError):
    """The weights could not be downloaded or are not the expected file (one line: what to do)."""


def default_weights_path() -> Path:
    """``$XDG_CACHE_HOME/spot-edge/body_pose_model.pth`` (``~/.cache/...`` by default)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "spot-edge" / DEFAULT_FILENAME


def _check_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"sha256 must be 64 hexadecimal characters, got {value!r}")
    return value


def verify_pose_weights_file(path: Path, sha256: str | None = None) -> None:
    """Raise :class:`WeightsDownloadError` unless ``path`` has the SHA-256 (when given) and holds
    the COCO body network's state dict (keys and shapes; read without running pickle code)."""
    import torch

    from spot_edge.pose.weights import check_pose_state_dict

    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256:
            raise WeightsDownloadError(f"{path.name}: SHA-256 {got} does not match the expected {sha256}")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (not a zip), EOFError...
        raise WeightsDownloadError(f"{path.name} is not a PyTorch state dict that loads safely "
                                   f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsDownloadError(f"{path.name} does not hold a state dict of tensors")
    problems = check_pose_state_dict(obj, "openpose_coco")
    if problems:
        raise WeightsDownloadError(f"{path.name} is not the OpenPose COCO body model: " + "; ".join(problems))


def _offline_message(url: str, reason: object, out: Path, sha256: str | None) -> str:
    digest = f" (sha256 {sha256})" if sha256 else ""
    return (f"cannot reach {url} ({reason}). Offline? On a machine with internet download {url}{digest}, "
            f"copy it to {out} and pass that path as the pose weights")


class _Attempt:
    """One HTTP request continuing ``part`` from its current size."""

    def __init__(self, url: str, part: Path, timeout: float) -> None:
        self.start = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": "spot-edge"}
        if self.start:
            headers["Range"] = f"bytes={self.start}-"
        self.request = urllib.request.Request(url, headers=headers)
        self.timeout = timeout

    def open(self):
        return urllib.request.urlopen(self.request, timeout=self.timeout)


def _total_from(response, start: int) -> tuple[int, int | None]:
    """``(offset the body starts at, total size or None)`` of a response to a request from ``start``."""
    status = getattr(response, "status", None) or 200
    length = response.headers.get("Content-Length")
    if status == 206:
        match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != start:
            return 0, None  # a range we did not ask for: start over
        total = match.group(3)
        return start, int(total) if total != "*" else (start + int(length) if length else None)
    return 0, int(length) if length else None


def fetch_pose_weights(url: str = DEFAULT_URL, sha256: str | None = None, out: str | Path | None = None,
                       progress: Progress | None = None, retries: int = 3, timeout: float = 30.0,
                       force: bool = False, retry_wait: float = 1.0) -> Path:
    """Download the body model to ``out`` (default :func:`default_weights_path`); returns the path.

    Args:
        url: where to get ``body_pose_model.pth`` (``http(s)://`` or ``file://``).
        sha256: expected SHA-256 (hex); for the default URL the known digest is used when omitted.
        out: destination file; an existing valid file is kept (``force=True`` downloads again).
        progress: ``progress(bytes_done, bytes_total_or_None)`` after every chunk.
        retries: resumptions after a connection dropped mid-way.
        timeout: seconds without data before a connection counts as dropped.
        retry_wait: seconds before each resumption (doubled every time).

    Raises:
        WeightsDownloadError: unreachable host, HTTP error, dropped connection after the retries
            (the partial file is kept: calling again resumes it), a file that fails the checks
            (removed). ``ValueError`` for a malformed ``sha256``.
    """
    from filelock import FileLock, Timeout

    out = Path(out) if out is not None else default_weights_path()
    expected = _check_sha256(sha256) or (DEFAULT_SHA256 if url == DEFAULT_URL else None)
    if out.is_dir():
        raise WeightsDownloadError(f"{out} is a folder; give the weights file's path (e.g. {out / DEFAULT_FILENAME})")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not force:
        try:
            verify_pose_weights_file(out, expected)
        except WeightsDownloadError as exc:
            raise WeightsDownloadError(f"{out} exists but is not valid ({exc}); remove it or download again "
                                       "with force=True (--force)") from exc
        return out
    part = out.with_name(out.name + ".part")
    meta = out.with_name(out.name + ".part.json")
    try:
        with FileLock(str(out.with_name(out.name + ".lock")), timeout=10):
            _download(url, part, meta, out, expected, progress, retries, timeout, retry_wait)
            try:
                verify_pose_weights_file(part, expected)
            except WeightsDownloadError as exc:
                part.unlink(missing_ok=True)
                meta.unlink(missing_ok=True)
                raise WeightsDownloadError(f"downloaded {url} but {exc}; the file was removed. Check the URL "
                                           "(and the sha256)") from exc
            with atomic_path(out) as tmp:
                os.replace(part, tmp)
            meta.unlink(missing_ok=True)
    except Timeout:
        raise WeightsDownloadError(f"another download to {out} is running (lock {out.name}.lock); wait for it "
                                   "or remove the lock file if no download is running") from None
    return out


def _download(url: str, part: Path, meta: Path, out: Path, sha256: str | None, progress: Progress | None,
              retries: int, timeout: float, retry_wait: float) -> None:
    """Fill ``part`` with the whole body of ``url`` (resuming what is there for the same URL)."""
    try:
        same_url = json.loads(meta.read_text()).get("url") == url
    except (OSError, ValueError, AttributeError):
        same_url = False
    if part.exists() and not same_url:
        part.unlink()  # a partial file of another URL (or of unknown origin): start over
    atomic_write_json(meta, {"url": url})
    failures = 0
    while True:
        attempt = _Attempt(url, part, timeout)
        try:
            response = attempt.open()
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and attempt.start:  # nothing left to send: maybe complete, else restart
                total = re.search(r"/(\d+)", exc.headers.get("Content-Range", "") or "")
                if total and int(total.group(1)) == attempt.start:
                    return
                part.unlink(missing_ok=True)
                continue
            raise WeightsDownloadError(f"{url}: the server answered HTTP {exc.code} {exc.reason}; "
                                       "check the URL") from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WeightsDownloadError(_offline_message(url, reason, out, sha256)) from None
        with response:
            offset, total = _total_from(response, attempt.start)
            if total is not None and total > MAX_BYTES:
                raise WeightsDownloadError(f"{url} is {total} bytes: not the OpenPose body model "
                                           f"(about {DEFAULT_SIZE} bytes); check the URL")
            done = offset
            try:
                with open(part, "r+b" if offset and part.exists() else "wb") as f:
                    f.seek(offset)
                    f.truncate()
                    if progress is not None:
                        progress(done, total)
                    while True:
                        chunk = response.read(CHUNK)
                        if not chunk:
                            break
                        f.write(chunk)
                        done += len(chunk)
                        if done > MAX_BYTES:
                            raise WeightsDownloadError(f"{url} sent more than {MAX_BYTES} bytes: not the OpenPose "
                                                       "body model; check the URL")
                        if progress is not None:
                            progress(done, total)
                    f.flush()
                    os.fsync(f.fileno())
                if total is None or done == total:
                    return
                dropped = f"connection closed after {done} of {total} bytes"
            except (HTTPException, ConnectionError, socket.timeout, TimeoutError) as exc:
                dropped = f"connection dropped after {done} bytes ({type(exc).__name__})"
        failures += 1
        if failures > retries:
            raise WeightsDownloadError(f"{url}: {dropped}, {retries} resumptions failed; the partial file "
                                       f"{part.name} is kept: run the same command again to resume")
        time.sleep(retry_wait * 2 ** (failures - 1))


__all__ = ["DEFAULT_URL", "DEFAULT_SHA256", "DEFAULT_SIZE", "DEFAULT_FILENAME", "WeightsDownloadError",
           "default_weights_path", "verify_pose_weights_file", "fetch_pose_weights"]
