"""The gallery's records: one entry per enrolled or observed person image, search results, errors.

Entry ids are strings unique across every process that writes the gallery: ``<writer>-<n>``, where
``<writer>`` is 12 random hex digits drawn when a :class:`~spot_edge.gallery.Gallery` object is
created and ``n`` counts that object's additions. Two processes adding at the same time therefore
never hand out the same id, and a merge (see :mod:`spot_edge.gallery.transaction`) can tell their
entries apart. Galleries written by spot-edge before format version 2 numbered entries 0, 1, 2...;
those ids are read as ``"0"``, ``"1"``... and stay valid.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from spot_edge.errors import InputError, SpotEdgeError
from spot_edge.modality import MODALITIES, check_modality

__all__ = ["GalleryError", "GalleryEntry", "Match", "new_writer_id", "entry_from_dict", "entry_fields"]


class GalleryError(SpotEdgeError, ValueError):
    """A gallery on disk is missing, of another format, damaged, or does not fit what is added to it."""


def new_writer_id() -> str:
    """12 random hex digits naming one writer (one :class:`Gallery` object) in its entry ids."""
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class GalleryEntry:
    """One enrolled or observed person image (its embedding lives in :attr:`Gallery.embeddings`).

    Attributes:
        entry_id: unique across writers (see the module docstring).
        identity: who this is (any non-empty text: stored as JSON, never interpreted).
        modality: ``"visible"`` or ``"infrared"``.
        camera: the camera name (any text, may be empty).
        timestamp: seconds since the epoch.
        track_id: the pipeline's per-camera track, if any.
        thumbnail: path of a picture of the person, if any (informational: the gallery never
            opens it).
    """

    entry_id: str
    identity: str
    modality: str
    camera: str = ""
    timestamp: float = 0.0
    track_id: int | None = None
    thumbnail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # spelled out: dataclasses.asdict deep-copies every field and dominated saving large galleries
        return {"entry_id": self.entry_id, "identity": self.identity, "modality": self.modality,
                "camera": self.camera, "timestamp": self.timestamp, "track_id": self.track_id,
                "thumbnail": self.thumbnail}


_FIELDS = tuple(f.name for f in fields(GalleryEntry))


def entry_from_dict(data: Any, where: str) -> GalleryEntry:
    """A :class:`GalleryEntry` from one JSON object of a gallery's metadata file, every field
    checked; :class:`GalleryError` naming ``where`` and the field otherwise."""
    if not isinstance(data, dict):
        raise GalleryError(f"{where}: an entry must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_FIELDS))
    missing = [k for k in ("entry_id", "identity", "modality") if k not in data]
    if unknown or missing:
        raise GalleryError(f"{where}: malformed entry (unknown fields {unknown}, missing {missing})")
    entry_id = data["entry_id"]
    if isinstance(entry_id, bool) or not isinstance(entry_id, (str, int)) or entry_id == "":
        raise GalleryError(f"{where}: entry_id must be a non-empty string, got {entry_id!r}")
    identity, modality = data["identity"], data["modality"]
    if not isinstance(identity, str) or not identity:
        raise GalleryError(f"{where}: identity must be a non-empty string, got {identity!r}")
    if modality not in MODALITIES:
        raise GalleryError(f"{where}: unknown modality {modality!r} (entry {entry_id!r})")
    camera = data.get("camera", "")
    if not isinstance(camera, str):
        raise GalleryError(f"{where}: camera must be a string, got {camera!r}")
    timestamp = data.get("timestamp", 0.0)
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)) or not math.isfinite(timestamp):
        raise GalleryError(f"{where}: timestamp must be a finite number, got {timestamp!r}")
    track_id = data.get("track_id")
    if track_id is not None and (isinstance(track_id, bool) or not isinstance(track_id, int)):
        raise GalleryError(f"{where}: track_id must be an integer or null, got {track_id!r}")
    thumbnail = data.get("thumbnail")
    if thumbnail is not None and not isinstance(thumbnail, str):
        raise GalleryError(f"{where}: thumbnail must be a string or null, got {thumbnail!r}")
    return GalleryEntry(str(entry_id), identity, modality, camera, float(timestamp), track_id, thumbnail)


def _broadcast(value, n: int, what: str) -> list:
    if isinstance(value, (str, bytes)) or value is None or np.isscalar(value):
        return [value] * n
    out = list(value)
    if len(out) != n:
        raise InputError(f"{what}: expected 1 or {n} values, got {len(out)}")
    return out


def _identity(value) -> str:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if not isinstance(value, str) or not value:
        raise InputError(f"identities must be non-empty strings, got {value!r}")
    return value


def _timestamp(value, now: float) -> float:
    if value is None:
        return now
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise InputError(f"timestamps must be finite numbers (seconds since the epoch), got {value!r}")
    return float(value)


def entry_fields(n: int, identities, modality, camera="", timestamps=None, track_ids=None,
                 thumbnails=None) -> list[tuple]:
    """The fields after ``entry_id`` of ``n`` new entries, each argument one value for all or ``n``
    values, checked (:class:`InputError`): identities non-empty text (integers are written as
    text), modalities "visible"/"infrared", timestamps finite (default: now)."""
    ids = [_identity(i) for i in _broadcast(identities, n, "identities")]
    mods = [check_modality(m) for m in _broadcast(modality, n, "modality")]
    cams = ["" if c is None else str(c) for c in _broadcast(camera, n, "camera")]
    now = time.time()
    stamps = [_timestamp(t, now) for t in _broadcast(timestamps, n, "timestamps")]
    tracks = [None if t is None else int(t) for t in _broadcast(track_ids, n, "track_ids")]
    thumbs = [None if t is None else str(t) for t in _broadcast(thumbnails, n, "thumbnails")]
    return list(zip(ids, mods, cams, stamps, tracks, thumbs))


@dataclass(frozen=True)
class Match:
    """One search result: the gallery entry, its rank and its cosine similarity to the query."""

    rank: int
    similarity: float
    entry: GalleryEntry

    @property
    def distance(self) -> float:
        """Cosine distance ``1 - similarity``."""
        return 1.0 - self.similarity

    @property
    def identity(self) -> str:
        return self.entry.identity

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "similarity": round(self.similarity, 6), "entry": self.entry.to_dict()}
