"""The gallery on disk: one folder, written atomically, readable by any process at any time.

Layout::

    gallery/
      gallery.json            manifest: format, version, embedding size, count, generation,
                              revision, the model identity, the calibration, and the names and
                              SHA-256 of the current data files
      embeddings.<gen>.npy    (N, D) float32, L2-normalised rows
      meta.<gen>.jsonl        one JSON object per row: entry_id, identity, modality, camera,
                              timestamp, track_id, thumbnail
      gallery.lock            the writers' lock (see :mod:`spot_edge.gallery.transaction`)

A save writes a new *generation* of data files, then replaces the manifest that names them, then
deletes the previous generation; every file goes through :mod:`spot_edge.atomic` (temporary file,
fsync, rename, folder fsync). A writer killed at any instant leaves the manifest naming one complete
generation: a reader sees the old gallery or the new one, never a mix. Readers take no lock: when
a writer deletes the files named by the manifest just read, the read starts again.

Reading checks everything a damaged or hand-edited folder could get wrong: the manifest's fields
and types, data file names that must stay inside the folder (:func:`spot_edge.paths.path_inside`),
shapes against the manifest, every entry's fields, unique entry ids, finite embeddings, and, with
``verify``, the checksums. Each problem is a :class:`GalleryError` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spot_edge.atomic import atomic_write, atomic_write_bytes, atomic_write_json
from spot_edge.errors import InputError
from spot_edge.gallery.calibration import ThresholdCalibration
from spot_edge.gallery.entries import GalleryEntry, GalleryError, entry_from_dict
from spot_edge.gallery.identity import ModelIdentity
from spot_edge.hashing import sha256_bytes
from spot_edge.paths import path_inside

__all__ = ["GALLERY_FORMAT", "GALLERY_VERSION", "MANIFEST_NAME", "LOCK_NAME", "StoredGallery", "has_gallery",
           "read_manifest", "read_stored", "recorded_model", "write_stored"]

GALLERY_FORMAT = "spot-edge-gallery"
GALLERY_VERSION = 2  # 2: string entry ids, model identity, revision token (1 is read too)
MANIFEST_NAME = "gallery.json"
LOCK_NAME = "gallery.lock"
_GENERATION_FILE = re.compile(r"^(embeddings|meta)\.(\d+)\.(npy|jsonl)$")
_TEMP_FILE = re.compile(r"^\.(embeddings\.\d+\.npy|meta\.\d+\.jsonl|gallery\.json)\..*\.tmp.*$")


@dataclass
class StoredGallery:
    """What one generation on disk holds (or what a save is about to write)."""

    embeddings: np.ndarray  # (N, D) float32, unit rows
    entries: list[GalleryEntry]
    embedding_dim: int | None
    calibration: ThresholdCalibration | None = None
    model: ModelIdentity | None = None
    generation: int = 0
    revision: str | None = None

    @classmethod
    def empty(cls, embedding_dim: int | None = None) -> "StoredGallery":
        return cls(np.zeros((0, embedding_dim or 0), np.float32), [], embedding_dim)


def has_gallery(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a gallery manifest."""
    return (Path(folder) / MANIFEST_NAME).is_file()


# ----------------------------------------------------------------------------- reading


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of ``folder``, its fields checked; :class:`GalleryError` naming what is wrong."""
    path = folder / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GalleryError(f"{path} is not valid JSON ({exc}); the gallery manifest is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != GALLERY_FORMAT:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise GalleryError(f"{path} is not a spot-edge gallery manifest (format {fmt!r})")
    version = manifest.get("version")
    if not _is_int(version) or version < 1:
        raise GalleryError(f"{path}: version must be a positive integer, got {version!r}")
    if version > GALLERY_VERSION:
        raise GalleryError(f"gallery {folder} has format version {version}, this spot-edge reads up to "
                           f"{GALLERY_VERSION}; upgrade spot-edge")
    for key, check, expected in (("count", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
                                 ("generation", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
                                 ("embeddings_file", lambda v: isinstance(v, str), "a file name"),
                                 ("meta_file", lambda v: isinstance(v, str), "a file name")):
        if key not in manifest or not check(manifest[key]):
            raise GalleryError(f"{path}: {key} must be {expected}, got {manifest.get(key)!r}")
    dim = manifest.get("embedding_dim")
    if not ((_is_int(dim) and dim >= 1) or (dim is None and manifest["count"] == 0)):
        raise GalleryError(f"{path}: embedding_dim must be a positive integer, got {dim!r}")
    for key in ("embeddings_sha256", "meta_sha256", "revision"):
        if manifest.get(key) is not None and not isinstance(manifest[key], str):
            raise GalleryError(f"{path}: {key} must be a string, got {manifest[key]!r}")
    return manifest


def read_stored(folder: str | os.PathLike, verify: bool = False, retries: int = 5,
                allow_non_finite: bool = False) -> StoredGallery:
    """Read the gallery in ``folder`` (written by any process, possibly while another one saves).

    Args:
        verify: also check the SHA-256 of the data files against the manifest.
        retries: a concurrent writer may delete the data files named by the manifest just read;
            the read starts again with the new manifest.
        allow_non_finite: keep rows holding NaN/Inf instead of refusing the gallery (only to
            remove them: ``Gallery.remove_non_finite``).
    """
    folder = Path(folder)
    if not has_gallery(folder):
        if folder.is_file():
            raise GalleryError(f"{folder} is a file; a gallery is a folder holding {MANIFEST_NAME}")
        raise FileNotFoundError(f"no gallery at {folder} (missing {MANIFEST_NAME}); "
                                "create one with `spot-edge gallery enroll`")
    last: Exception | None = None
    for _ in range(max(1, retries)):
        manifest = read_manifest(folder)
        try:
            return _read_generation(folder, manifest, verify, allow_non_finite)
        except FileNotFoundError as exc:  # replaced under us by a concurrent save: read again
            last = exc
            time.sleep(0.05)
    raise GalleryError(f"gallery {folder} keeps changing under the reader or is missing data files: {last}")


def _read_generation(folder: Path, manifest: dict[str, Any], verify: bool, allow_non_finite: bool) -> StoredGallery:
    try:
        emb_path = path_inside(folder, manifest["embeddings_file"], "embeddings file")
        meta_path = path_inside(folder, manifest["meta_file"], "metadata file")
    except InputError as exc:
        raise GalleryError(f"{folder / MANIFEST_NAME}: {exc}") from None
    with open(emb_path, "rb") as f_emb, open(meta_path, "rb") as f_meta:
        try:
            emb = np.load(f_emb, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise GalleryError(f"{emb_path} is unreadable ({exc}); the gallery data file is damaged") from None
        meta_bytes = f_meta.read()
    n, dim = manifest["count"], manifest["embedding_dim"]
    if not isinstance(emb, np.ndarray) or emb.dtype != np.float32 or emb.ndim != 2 or emb.shape[0] != n \
            or (dim is not None and emb.shape[1] != dim):
        raise GalleryError(f"{emb_path} holds {getattr(emb, 'dtype', '?')} {getattr(emb, 'shape', '?')}, "
                           f"the manifest says ({n}, {dim}) float32")
    if verify:
        if sha256_bytes(np.ascontiguousarray(emb).tobytes()) != manifest.get("embeddings_sha256"):
            raise GalleryError(f"{emb_path} does not match its checksum in {MANIFEST_NAME}")
        if sha256_bytes(meta_bytes) != manifest.get("meta_sha256"):
            raise GalleryError(f"{meta_path} does not match its checksum in {MANIFEST_NAME}")
    try:
        lines = meta_bytes.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise GalleryError(f"{meta_path} is not UTF-8 text ({exc})") from None
    if len(lines) != n:
        raise GalleryError(f"{meta_path} has {len(lines)} entries, the manifest says {n}")
    entries = []
    for i, line in enumerate(lines):
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GalleryError(f"{meta_path} line {i + 1} is not valid JSON ({exc})") from None
        entries.append(entry_from_dict(data, f"{meta_path} line {i + 1}"))
    ids = [e.entry_id for e in entries]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise GalleryError(f"{meta_path} repeats entry ids {dup}")
    if n and not allow_non_finite:
        bad = ~np.isfinite(emb).all(axis=1)
        if bad.any():
            names = [ids[i] for i in np.nonzero(bad)[0][:5]]
            raise GalleryError(f"{emb_path}: the embeddings of entries {names} hold NaN or infinite values "
                               f"(a damaged file); remove them with `spot-edge gallery remove {folder} --non-finite`")
    try:
        calibration = ThresholdCalibration.from_dict(manifest["calibration"]) if manifest.get("calibration") else None
    except InputError as exc:
        raise GalleryError(f"{folder / MANIFEST_NAME}: {exc}") from None
    model = manifest.get("model")
    model = ModelIdentity.from_dict(model, f"{folder / MANIFEST_NAME}: model") if model is not None else None
    if model is not None and model.embedding_dim and dim and model.embedding_dim != dim:
        raise GalleryError(f"{folder / MANIFEST_NAME}: the model identity says {model.embedding_dim}-d, "
                           f"the gallery holds {dim}-d embeddings")
    return StoredGallery(emb, entries, dim, calibration, model, manifest["generation"], manifest.get("revision"))


def recorded_model(folder: str | os.PathLike) -> ModelIdentity | None:
    """The model identity recorded in ``folder``'s manifest (``None``: no gallery, or none recorded),
    read without loading the embeddings."""
    folder = Path(folder)
    if not has_gallery(folder):
        return None
    model = read_manifest(folder).get("model")
    return ModelIdentity.from_dict(model, f"{folder / MANIFEST_NAME}: model") if model is not None else None


# ----------------------------------------------------------------------------- writing


def write_stored(folder: str | os.PathLike, stored: StoredGallery, previous_generation: int = 0) -> StoredGallery:
    """Write ``stored`` as the next generation of ``folder`` (the caller holds the writers' lock).

    Returns ``stored`` with its new ``generation`` and ``revision`` (a random token that changes
    with every save, so a writer can tell whether anyone else saved since it last did).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    on_disk = read_manifest(folder)["generation"] if has_gallery(folder) else 0
    generation = max(previous_generation, on_disk) + 1
    emb = np.ascontiguousarray(stored.embeddings, dtype=np.float32)
    emb_name, meta_name = f"embeddings.{generation:06d}.npy", f"meta.{generation:06d}.jsonl"
    atomic_write(folder / emb_name, lambda f: np.save(f, emb, allow_pickle=False))
    encode = json.JSONEncoder(separators=(",", ":")).encode
    meta_bytes = "".join(encode(e.to_dict()) + "\n" for e in stored.entries).encode()
    atomic_write_bytes(folder / meta_name, meta_bytes)
    from spot_edge import __version__

    revision = uuid.uuid4().hex
    atomic_write_json(folder / MANIFEST_NAME, {
        "format": GALLERY_FORMAT,
        "version": GALLERY_VERSION,
        "spot_edge_version": __version__,
        "embedding_dim": stored.embedding_dim,
        "count": len(stored.entries),
        "generation": generation,
        "revision": revision,
        "embeddings_file": emb_name,
        "meta_file": meta_name,
        "embeddings_sha256": sha256_bytes(emb.tobytes()),
        "meta_sha256": sha256_bytes(meta_bytes),
        "model": stored.model.to_dict() if stored.model is not None else None,
        "calibration": stored.calibration.to_dict() if stored.calibration is not None else None,
        "saved_at": time.time(),
    })
    _remove_stale_files(folder, keep={emb_name, meta_name})
    stored.generation, stored.revision = generation, revision
    return stored


def _remove_stale_files(folder: Path, keep: set[str]) -> None:
    """Older generations and temporary files of killed writers (writers hold the lock, so none
    is being written now)."""
    for p in folder.iterdir():
        name = p.name
        if (_GENERATION_FILE.match(name) and name not in keep) or _TEMP_FILE.match(name):
            with contextlib.suppress(OSError):
                p.unlink()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
