"""SHA-256 fingerprints of files and bytes (weights, graphs, engines, gallery files)."""

from __future__ import annotations

import hashlib
import os

__all__ = ["sha256_file", "sha256_bytes"]

_BLOCK = 1 << 22


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's contents, read in 4 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
