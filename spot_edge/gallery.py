"""A persistent gallery of people: embeddings with identity, modality, camera and time.

Layout on disk (a directory, readable by any process while another one writes)::

    gallery/
      gallery.json            manifest: format, version, dimension, count, calibration, and the
                              names of the current data files
      embeddings.<gen>.npy    (N, D) float32, L2-normalised rows
      meta.<gen>.jsonl        one JSON object per row: entry_id, identity, modality, camera,
                              timestamp, track_id, thumbnail
      gallery.lock            advisory lock held by writers

Atomic writes. A save writes a new *generation* of data files (temp file, ``fsync``,
``os.replace``), then atomically replaces the manifest that names them (again temp + fsync +
``os.replace`` + directory fsync), and only then deletes the previous generation. A writer killed
at any instant leaves the manifest pointing to a complete generation: a reader sees the old
gallery or the new one, never a mix.

Matching. Embeddings are compared by cosine similarity (rows are L2-normalised, so it is a dot
product; cosine distance is ``1 - similarity``). Cross-modality search (the SPOT setting): an
infrared query is compared with visible entries and vice versa. Exact numpy search is the default;
faiss (optional ``faiss-cpu``) gives an exact flat index or, for very large galleries, an
approximate HNSW index (``gallery.faiss_index = "hnsw"``).

Threshold. :func:`calibrate_threshold` picks the similarity threshold for a target false-match rate
(FMR) from genuine / impostor similarities of a labelled set and reports the true-match rate (TMR) it
gives; the result is stored in the manifest and used to decide "matched" vs "unknown".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

MODALITIES = ("visible", "infrared")
GALLERY_FORMAT = "spot-edge-gallery"
GALLERY_VERSION = 1
MANIFEST_NAME = "gallery.json"
LOCK_NAME = "gallery.lock"
FAISS_AUTO_MIN_ENTRIES = 50_000  # "auto" search uses faiss HNSW (when chosen and installed) from this size on
_GEN_FILE = re.compile(r"^(embeddings|meta)\.(\d+)\.(npy|jsonl)$")


class GalleryError(ValueError):
    """A gallery on disk is missing, of another format, or inconsistent."""


# ----------------------------------------------------------------------------- data classes


@dataclass(frozen=True)
class GalleryEntry:
    """One enrolled or observed person image (its embedding lives in :attr:`Gallery.embeddings`)."""

    entry_id: int
    identity: str
    modality: str
    camera: str = ""
    timestamp: float = 0.0
    track_id: int | None = None
    thumbnail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


@dataclass(frozen=True)
class ThresholdCalibration:
    """A similarity threshold and the error rates it gives on the labelled set it came from.

    A pair is a *match* when ``similarity >= threshold``. ``fmr``: fraction of impostor pairs
    (different identities) that match; ``tmr``: fraction of genuine pairs (same identity) that match.
    """

    threshold: float
    target_fmr: float
    fmr: float
    tmr: float
    num_genuine: int
    num_impostor: int
    curve: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ThresholdCalibration":
        return cls(**data)


# ----------------------------------------------------------------------------- helpers


def check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    return modality


def other_modality(modality: str) -> str:
    """``"visible" <-> "infrared"``."""
    return MODALITIES[1 - MODALITIES.index(check_modality(modality))]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``(N, D)`` scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _as_matrix(embeddings, dim: int | None, what: str = "embeddings") -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"{what} must be (N, D), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what} have dimension {x.shape[1]}, the gallery holds dimension {dim}; "
                         "use the same model for enrolment and queries")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return x


def _broadcast(value, n: int, what: str) -> list:
    if isinstance(value, (str, bytes)) or value is None or np.isscalar(value):
        return [value] * n
    out = list(value)
    if len(out) != n:
        raise ValueError(f"{what}: expected 1 or {n} values, got {len(out)}")
    return out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, write) -> None:
    """Write a file atomically: ``write(fileobj)`` into a temp file beside it, fsync, ``os.replace``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _file_lock(directory: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``directory/gallery.lock`` (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_NAME, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except Exception:
        return False
    return True


# ----------------------------------------------------------------------------- the gallery


class _Part:
    """The entries of one modality: a growable ``(capacity, D)`` buffer (amortised appends, so the
    pipeline can add observations one by one) and their metadata, in entry-id order."""

    def __init__(self, dim: int) -> None:
        self.buf = np.zeros((0, dim), np.float32)
        self.n = 0
        self.entries: list[GalleryEntry] = []

    @property
    def emb(self) -> np.ndarray:
        return self.buf[:self.n]

    def append(self, x: np.ndarray, entries: list[GalleryEntry]) -> None:
        need = self.n + len(x)
        if need > len(self.buf):
            grown = np.zeros((max(need, 2 * len(self.buf), 64), x.shape[1]), np.float32)
            grown[:self.n] = self.buf[:self.n]
            self.buf = grown
        self.buf[self.n:need] = x
        self.n = need
        self.entries.extend(entries)

    def keep(self, mask: np.ndarray) -> None:
        self.buf = np.ascontiguousarray(self.emb[mask])
        self.n = len(self.buf)
        self.entries = [e for e, k in zip(self.entries, mask) if k]


class Gallery:
    """Embeddings ``(N, D)`` plus per-entry metadata; thread-safe; saved atomically.

    >>> g = Gallery(embedding_dim=4)
    >>> ids = g.add(np.eye(4)[:2], identities=["alice", "bob"], modality="visible", camera="cam1")
    >>> [m.identity for m in g.search(np.eye(4)[:1], modality="infrared", k=1)[0]]
    ['alice']

    Entries are stored per modality, so a cross-modality search reads one contiguous matrix.

    Args:
        embedding_dim: D; ``None`` takes it from the first :meth:`add`.
        path: directory the gallery is saved to by :meth:`save` (``None``: in memory only).
    """

    def __init__(self, embedding_dim: int | None = None, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.embedding_dim = int(embedding_dim) if embedding_dim is not None else None
        self._parts = {m: _Part(self.embedding_dim or 0) for m in MODALITIES}
        self._next_id = 0
        self.calibration: ThresholdCalibration | None = None
        self.generation = 0
        self._lock = threading.RLock()
        self._dirty = False
        self._faiss_cache: dict[str, Any] = {}
        #: faiss index type: "flat" (exact inner product) or "hnsw" (approximate graph index,
        #: sub-linear search for 10^6+ entries; built once, then extended on add)
        self.faiss_index = "flat"

    # ---------------------------------------------------------------- basic access
    def __len__(self) -> int:
        return sum(p.n for p in self._parts.values())

    def count(self, modality: str) -> int:
        return self._parts[check_modality(modality)].n

    def __repr__(self) -> str:
        counts = {m: p.n for m, p in self._parts.items()}
        return f"Gallery(dim={self.embedding_dim}, entries={len(self)}, {counts}, path={self.path})"

    @property
    def dirty(self) -> bool:
        """True when there are changes not yet saved."""
        return self._dirty

    @property
    def threshold(self) -> float | None:
        """The calibrated similarity threshold, if any."""
        return self.calibration.threshold if self.calibration is not None else None

    def _merged(self) -> tuple[np.ndarray, list[GalleryEntry]]:
        """All embeddings and entries in entry-id order (a copy when both modalities hold entries)."""
        parts = [p for p in self._parts.values() if p.n]
        if len(parts) == 0:
            return np.zeros((0, self.embedding_dim or 0), np.float32), []
        if len(parts) == 1:
            return parts[0].emb, list(parts[0].entries)
        entries = parts[0].entries + parts[1].entries
        order = np.argsort(np.asarray([e.entry_id for e in entries]), kind="stable")
        emb = np.concatenate([parts[0].emb, parts[1].emb])[order]
        return emb, [entries[i] for i in order]

    @property
    def embeddings(self) -> np.ndarray:
        """``(N, D)`` float32 unit rows in entry order (read-only), matching :attr:`entries`."""
        with self._lock:
            view = self._merged()[0].view()
        view.flags.writeable = False
        return view

    @property
    def entries(self) -> list[GalleryEntry]:
        with self._lock:
            return self._merged()[1]

    def snapshot(self) -> tuple[np.ndarray, list[GalleryEntry]]:
        """``(embeddings (N, D), entries)`` taken together (consistent while others add)."""
        with self._lock:
            emb, entries = self._merged()
            return np.array(emb, copy=True), entries

    def identities(self) -> list[str]:
        """Distinct identities, sorted."""
        with self._lock:
            return sorted({e.identity for p in self._parts.values() for e in p.entries})

    def summary(self) -> dict[str, Any]:
        with self._lock:
            per_identity: dict[str, dict[str, int]] = {}
            for p in self._parts.values():
                for e in p.entries:
                    d = per_identity.setdefault(e.identity, {m: 0 for m in MODALITIES})
                    d[e.modality] += 1
            return {
                "path": str(self.path) if self.path else None,
                "embedding_dim": self.embedding_dim,
                "entries": len(self),
                "per_modality": {m: p.n for m, p in self._parts.items()},
                "identities": per_identity,
                "calibration": self.calibration.to_dict() if self.calibration else None,
                "generation": self.generation,
            }

    # ---------------------------------------------------------------- changes
    def add(self, embeddings, identities, modality, camera="", timestamps=None,
            track_ids=None, thumbnails=None) -> list[int]:
        """Add ``N`` entries; returns their entry ids.

        Args:
            embeddings: ``(N, D)`` or ``(D,)``; normalised here (cosine similarity).
            identities, modality, camera, timestamps, track_ids, thumbnails: one value for all or
                ``N`` values. ``modality`` is "visible" or "infrared"; ``timestamps`` are seconds
                since the epoch (default: now).
        """
        x = _as_matrix(embeddings, self.embedding_dim)
        n = x.shape[0]
        ids = [str(i) for i in _broadcast(identities, n, "identities")]
        if any(not i for i in ids):
            raise ValueError("identities must be non-empty strings")
        mods = [check_modality(m) for m in _broadcast(modality, n, "modality")]
        cams = [str(c) if c is not None else "" for c in _broadcast(camera, n, "camera")]
        now = time.time()
        stamps = [float(t) if t is not None else now for t in _broadcast(timestamps, n, "timestamps")]
        tracks = [int(t) if t is not None else None for t in _broadcast(track_ids, n, "track_ids")]
        thumbs = [str(t) if t is not None else None for t in _broadcast(thumbnails, n, "thumbnails")]
        x = l2_normalize(x)
        with self._lock:
            if self.embedding_dim is None:
                self.embedding_dim = x.shape[1]
                self._parts = {m: _Part(self.embedding_dim) for m in MODALITIES}
            new_ids = list(range(self._next_id, self._next_id + n))
            self._next_id += n
            entries = [GalleryEntry(i, ident, m, c, t, tr, th)
                       for i, ident, m, c, t, tr, th in zip(new_ids, ids, mods, cams, stamps, tracks, thumbs)]
            mods_arr = np.asarray(mods)
            for m in MODALITIES:
                sel = np.nonzero(mods_arr == m)[0]
                if len(sel):
                    self._parts[m].append(x[sel], [entries[i] for i in sel])
                    index = self._faiss_cache.get(m)
                    if index is not None:  # exact flat index: extend it instead of rebuilding
                        index.add(np.ascontiguousarray(x[sel]))
            self._faiss_cache.pop("any", None)
            self._dirty = True
        return new_ids

    def remove(self, identity: str | None = None, entry_ids: Sequence[int] | None = None) -> int:
        """Remove entries of ``identity`` and/or with the given ids; returns how many were removed."""
        if identity is None and entry_ids is None:
            raise ValueError("say what to remove: an identity or entry ids")
        drop_ids = set(int(i) for i in (entry_ids or ()))
        removed = 0
        with self._lock:
            for part in self._parts.values():
                keep = np.asarray([not (e.identity == identity or e.entry_id in drop_ids) for e in part.entries],
                                  bool)
                if len(keep) and not keep.all():
                    removed += int((~keep).sum())
                    part.keep(keep)
            if removed:
                self._dirty = True
                self._faiss_cache.clear()
            return removed

    def set_calibration(self, calibration: ThresholdCalibration | None) -> None:
        with self._lock:
            self.calibration = calibration
            self._dirty = True

    # ---------------------------------------------------------------- search
    def _target(self, target: str) -> tuple[np.ndarray, list[GalleryEntry]]:
        if target == "any":
            return self._merged()
        part = self._parts[check_modality(target)]
        return part.emb, part.entries

    def search(self, queries, modality: str, k: int = 5, target: str | None = None,
               backend: str = "auto") -> list[list[Match]]:
        """Top-``k`` gallery entries by cosine similarity for each query.

        Args:
            queries: ``(Q, D)`` or ``(D,)`` query embeddings of ``modality``.
            modality: the queries' modality.
            k: results per query (fewer when the searched part of the gallery is smaller).
            target: modality of the entries searched: default the *other* modality (cross-modality
                matching: infrared queries against visible entries and vice versa); "any" for all.
            backend: "numpy" (exact), "faiss" (needs faiss-cpu; exact inner-product index, or an
                approximate HNSW graph with ``gallery.faiss_index = "hnsw"``), or "auto": numpy,
                except faiss HNSW from ``FAISS_AUTO_MIN_ENTRIES`` entries when ``faiss_index`` is
                "hnsw" and faiss is installed. (faiss's exact flat index was not faster than numpy
                on a 2-core CPU: see ``benchmarks/bench_gallery.py``.)

        Returns:
            ``Q`` lists of :class:`Match`, best first.
        """
        check_modality(modality)
        target = other_modality(modality) if target is None else target
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if backend not in ("auto", "numpy", "faiss"):
            raise ValueError(f"backend must be 'auto', 'numpy' or 'faiss', got {backend!r}")
        with self._lock:
            q = l2_normalize(_as_matrix(queries, self.embedding_dim, "queries"))
            emb, entries = self._target(target)
            if len(entries) == 0:
                return [[] for _ in range(q.shape[0])]
            kk = min(k, len(entries))
            use_faiss = backend == "faiss" or (backend == "auto" and self.faiss_index == "hnsw"
                                               and len(entries) >= FAISS_AUTO_MIN_ENTRIES and faiss_available())
            if use_faiss:
                sims, idx = self._search_faiss(q, emb, target, kk)
            else:
                sims, idx = _topk_numpy(q, emb, kk)
            return [[Match(r, float(s), entries[i]) for r, (s, i) in enumerate(zip(srow, irow)) if i >= 0]
                    for srow, irow in zip(sims, idx)]

    def _search_faiss(self, q: np.ndarray, emb: np.ndarray, target: str, k: int):
        try:
            import faiss
        except ImportError as exc:
            raise RuntimeError("backend 'faiss' needs the faiss package: pip install faiss-cpu "
                               "(or use backend='numpy')") from exc
        index = self._faiss_cache.get(target)
        if index is None:
            if self.faiss_index == "hnsw":  # approximate, sub-linear: for 10^6+ entries
                index = faiss.IndexHNSWFlat(self.embedding_dim, 32, faiss.METRIC_INNER_PRODUCT)
                index.hnsw.efSearch = max(64, 2 * k)
            elif self.faiss_index == "flat":
                index = faiss.IndexFlatIP(self.embedding_dim)
            else:
                raise ValueError(f"faiss_index must be 'flat' or 'hnsw', got {self.faiss_index!r}")
            index.add(np.ascontiguousarray(emb))
            self._faiss_cache[target] = index
        sims, idx = index.search(np.ascontiguousarray(q), k)
        return sims, idx

    def best_match(self, query, modality: str, threshold: float | None = None,
                   target: str | None = None) -> tuple[Match | None, bool]:
        """Best entry for one query and whether it clears ``threshold`` (default: the calibrated one)."""
        results = self.search(query, modality, k=1, target=target)[0]
        if not results:
            return None, False
        thr = self.threshold if threshold is None else threshold
        return results[0], (thr is None or results[0].similarity >= thr)

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write the gallery atomically to ``path`` (default: where it was loaded from / created).

        Safe against a crash at any point (see the module docstring) and against other writers
        (an advisory file lock serialises them).
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("this gallery has no path: pass one to save()")
        target.mkdir(parents=True, exist_ok=True)
        with _file_lock(target):
            return self._save_unlocked(target)

    def _save_unlocked(self, target: Path) -> Path:
        """:meth:`save` for a caller that already holds the directory's file lock."""
        target.mkdir(parents=True, exist_ok=True)
        with self._lock:
            emb, entries = self._merged()
            emb = np.array(emb, np.float32, copy=True)
            calibration = self.calibration
            next_id = self._next_id
            dim = self.embedding_dim
            self._dirty = False
        try:
            manifest_old = _read_manifest(target) if (target / MANIFEST_NAME).exists() else None
            gen = max(self.generation, manifest_old["generation"] if manifest_old else 0) + 1
            emb_name, meta_name = f"embeddings.{gen:06d}.npy", f"meta.{gen:06d}.jsonl"
            atomic_write_bytes(target / emb_name, lambda f: np.save(f, emb, allow_pickle=False))
            meta_bytes = "".join(json.dumps(e.to_dict(), separators=(",", ":")) + "\n"
                                 for e in entries).encode()
            atomic_write_bytes(target / meta_name, lambda f: f.write(meta_bytes))
            from spot_edge import __version__

            manifest = {
                "format": GALLERY_FORMAT,
                "version": GALLERY_VERSION,
                "spot_edge_version": __version__,
                "embedding_dim": dim,
                "count": len(entries),
                "generation": gen,
                "next_entry_id": next_id,
                "embeddings_file": emb_name,
                "meta_file": meta_name,
                "embeddings_sha256": hashlib.sha256(emb.tobytes()).hexdigest(),
                "meta_sha256": hashlib.sha256(meta_bytes).hexdigest(),
                "calibration": calibration.to_dict() if calibration else None,
                "saved_at": time.time(),
            }
            data = (json.dumps(manifest, indent=2) + "\n").encode()
            atomic_write_bytes(target / MANIFEST_NAME, lambda f: f.write(data))
        except BaseException:
            self._dirty = True
            raise
        self.generation = gen
        _remove_stale_files(target, keep={emb_name, meta_name})
        self.path = target
        return target

    def flush(self) -> bool:
        """Save when there are unsaved changes and a path; returns whether it wrote."""
        if self.path is not None and self._dirty:
            self.save()
            return True
        return False

    @classmethod
    def load(cls, path: str | os.PathLike, verify: bool = False, retries: int = 5) -> "Gallery":
        """Load a gallery directory written by :meth:`save` (possibly by another process).

        Args:
            verify: also check the SHA-256 of the data files against the manifest.
            retries: a concurrent writer may delete the data files named by the manifest just read;
                the load is retried with the new manifest.
        """
        path = Path(path)
        if not (path / MANIFEST_NAME).exists():
            if path.is_file():
                raise GalleryError(f"{path} is a file; a gallery is a directory holding {MANIFEST_NAME}")
            raise FileNotFoundError(f"no gallery at {path} (missing {MANIFEST_NAME}); "
                                    "create one with `spot-edge gallery enroll`")
        last_exc: Exception | None = None
        for _ in range(max(1, retries)):
            manifest = _read_manifest(path)
            try:
                return cls._from_files(path, manifest, verify)
            except FileNotFoundError as exc:  # replaced under us by a concurrent save: retry
                last_exc = exc
                time.sleep(0.05)
        raise GalleryError(f"gallery {path} keeps changing under the reader or is missing data files: {last_exc}")

    @classmethod
    def _from_files(cls, path: Path, manifest: dict[str, Any], verify: bool) -> "Gallery":
        emb_path, meta_path = path / manifest["embeddings_file"], path / manifest["meta_file"]
        with open(emb_path, "rb") as f_emb, open(meta_path, "rb") as f_meta:
            try:
                emb = np.load(f_emb, allow_pickle=False)
            except Exception as exc:
                raise GalleryError(f"{emb_path} is unreadable: {exc}") from exc
            meta_bytes = f_meta.read()
        n, dim = manifest["count"], manifest["embedding_dim"]
        if emb.dtype != np.float32 or emb.ndim != 2 or emb.shape[0] != n or (n and emb.shape[1] != dim):
            raise GalleryError(f"{emb_path} holds {emb.dtype} {emb.shape}, the manifest says ({n}, {dim}) float32")
        if verify:
            if hashlib.sha256(np.ascontiguousarray(emb).tobytes()).hexdigest() != manifest["embeddings_sha256"]:
                raise GalleryError(f"{emb_path} does not match its checksum in {MANIFEST_NAME}")
            if hashlib.sha256(meta_bytes).hexdigest() != manifest["meta_sha256"]:
                raise GalleryError(f"{meta_path} does not match its checksum in {MANIFEST_NAME}")
        lines = meta_bytes.decode().splitlines()
        if len(lines) != n:
            raise GalleryError(f"{meta_path} has {len(lines)} entries, the manifest says {n}")
        try:
            entries = [GalleryEntry(**json.loads(line)) for line in lines]
        except (json.JSONDecodeError, TypeError) as exc:
            raise GalleryError(f"{meta_path} has a malformed entry: {exc}") from exc
        g = cls(embedding_dim=dim, path=path)
        if n:
            mods = np.asarray([e.modality for e in entries])
            bad = sorted(set(mods.tolist()) - set(MODALITIES))
            if bad:
                raise GalleryError(f"{meta_path} has entries of unknown modality {bad}")
            for m in MODALITIES:
                sel = np.nonzero(mods == m)[0]
                if len(sel):
                    g._parts[m].append(emb[sel], [entries[i] for i in sel])
        g._next_id = int(manifest.get("next_entry_id", n))
        g.generation = int(manifest["generation"])
        cal = manifest.get("calibration")
        g.calibration = ThresholdCalibration.from_dict(cal) if cal else None
        return g

    @classmethod
    def open(cls, path: str | os.PathLike, embedding_dim: int | None = None, create: bool = True) -> "Gallery":
        """Load the gallery at ``path``, or start an empty one there when none exists (``create``)."""
        path = Path(path)
        if (path / MANIFEST_NAME).exists():
            g = cls.load(path)
            if embedding_dim is not None and g.embedding_dim is not None and g.embedding_dim != embedding_dim:
                raise GalleryError(f"gallery {path} holds {g.embedding_dim}-d embeddings, the model gives "
                                   f"{embedding_dim}-d; use another gallery or the model it was built with")
            return g
        if not create:
            raise FileNotFoundError(f"no gallery at {path} (missing {MANIFEST_NAME})")
        if path.exists() and not path.is_dir():
            raise GalleryError(f"{path} exists and is not a directory")
        return cls(embedding_dim=embedding_dim, path=path)

    @classmethod
    @contextlib.contextmanager
    def transaction(cls, path: str | os.PathLike, embedding_dim: int | None = None) -> Iterator["Gallery"]:
        """Load (or create), yield, and save on success -- holding the writer lock throughout, so
        concurrent read-modify-write cycles (e.g. two ``gallery enroll`` commands) lose nothing."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with _file_lock(path):
            g = cls.open(path, embedding_dim=embedding_dim)
            yield g
            if g._dirty:
                g._save_unlocked(path)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((path / MANIFEST_NAME).read_text())
    except json.JSONDecodeError as exc:
        raise GalleryError(f"{path / MANIFEST_NAME} is not valid JSON: {exc}") from exc
    if manifest.get("format") != GALLERY_FORMAT:
        raise GalleryError(f"{path / MANIFEST_NAME} is not a spot-edge gallery (format {manifest.get('format')!r})")
    if int(manifest.get("version", -1)) > GALLERY_VERSION:
        raise GalleryError(f"gallery {path} has format version {manifest['version']}, this spot-edge reads up to "
                           f"{GALLERY_VERSION}; upgrade spot-edge")
    return manifest


def _remove_stale_files(directory: Path, keep: set[str]) -> None:
    for p in directory.iterdir():
        name = p.name
        stale = (_GEN_FILE.match(name) and name not in keep) or (name.startswith(".") and name.endswith(".tmp"))
        if stale:
            with contextlib.suppress(OSError):
                p.unlink()


_BLAS_CONTROLLER: Any = None
SEARCH_BLAS_THREADS: int | None = 1  # None: leave BLAS threading alone


def _blas_limit():
    """Limit BLAS threads for a search: the product is memory-bound, and OpenBLAS's threads cost
    far more than they give on a busy edge CPU (measured: 1000 x 256 entries, 8 queries: 0.3 ms
    with 1 thread vs 7 ms with 2 threads on a loaded 2-core machine). Needs threadpoolctl."""
    global _BLAS_CONTROLLER
    if SEARCH_BLAS_THREADS is None:
        return contextlib.nullcontext()
    if _BLAS_CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS_CONTROLLER = ThreadpoolController()
        except Exception:
            _BLAS_CONTROLLER = False
    if _BLAS_CONTROLLER is False:
        return contextlib.nullcontext()
    return _BLAS_CONTROLLER.limit(limits=SEARCH_BLAS_THREADS, user_api="blas")


def _topk_numpy(q: np.ndarray, emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product: ``(Q, D) x (N, D) -> (Q, k)`` similarities and row indices."""
    with _blas_limit():
        sims = emb @ q.T  # (N, Q): streams the gallery once
    n = sims.shape[0]
    if k < n:
        part = np.argpartition(-sims, k - 1, axis=0)[:k]  # (k, Q)
    else:
        part = np.broadcast_to(np.arange(n)[:, None], sims.shape)
    part_sims = np.take_along_axis(sims, part, axis=0)
    order = np.argsort(-part_sims, axis=0, kind="stable")
    return np.take_along_axis(part_sims, order, axis=0).T, np.take_along_axis(part, order, axis=0).T


# ----------------------------------------------------------------------------- calibration


def pair_similarities(query_emb, query_ids, gallery_emb, gallery_ids) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor cosine similarities of every (query, gallery) pair.

    Returns:
        ``(genuine, impostor)`` 1-D float arrays (same identity / different identities).
    """
    q = l2_normalize(_as_matrix(query_emb, None, "query embeddings"))
    g = l2_normalize(_as_matrix(gallery_emb, q.shape[1], "gallery embeddings"))
    qi, gi = np.asarray([str(i) for i in query_ids]), np.asarray([str(i) for i in gallery_ids])
    if len(qi) != len(q) or len(gi) != len(g):
        raise ValueError("one identity per embedding is needed")
    sims = q @ g.T
    same = qi[:, None] == gi[None, :]
    return sims[same].astype(np.float64), sims[~same].astype(np.float64)


def calibrate_threshold(genuine, impostor, target_fmr: float = 0.01) -> ThresholdCalibration:
    """The lowest similarity threshold whose false-match rate on ``impostor`` is <= ``target_fmr``.

    A pair matches when ``similarity >= threshold``. Returns the threshold with the FMR and TMR it
    gives on this data and an FMR/TMR curve at a few standard operating points.
    """
    genuine = np.asarray(genuine, np.float64).ravel()
    impostor = np.asarray(impostor, np.float64).ravel()
    if not 0.0 <= target_fmr < 1.0:
        raise ValueError(f"target_fmr must be in [0, 1), got {target_fmr}")
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError(f"calibration needs genuine and impostor pairs (got {genuine.size} genuine, "
                         f"{impostor.size} impostor): use at least two identities seen in both modalities")

    def at_fmr(fmr: float) -> float:
        imp = np.sort(impostor)[::-1]
        allowed = int(math.floor(fmr * imp.size + 1e-9))
        if allowed >= imp.size:
            return float(imp[-1])
        # Above the (allowed+1)-th highest impostor: at most `allowed` impostors reach it.
        return float(np.nextafter(imp[allowed], np.inf))

    threshold = at_fmr(target_fmr)
    curve = []
    for f in (1e-4, 1e-3, 1e-2, 1e-1):
        t = at_fmr(f)
        curve.append({"target_fmr": f, "threshold": t, "fmr": float((impostor >= t).mean()),
                      "tmr": float((genuine >= t).mean())})
    return ThresholdCalibration(threshold=threshold, target_fmr=float(target_fmr),
                                fmr=float((impostor >= threshold).mean()), tmr=float((genuine >= threshold).mean()),
                                num_genuine=int(genuine.size), num_impostor=int(impostor.size), curve=curve)


def calibrate_cross_modality(gallery: Gallery, target_fmr: float = 0.01,
                             query_modality: str = "infrared") -> ThresholdCalibration:
    """Calibrate on the gallery's own labelled entries: ``query_modality`` entries against the other
    modality's entries (the pipeline's matching direction)."""
    emb, entries = gallery.snapshot()
    qmask = np.asarray([e.modality == query_modality for e in entries], bool)
    gmask = np.asarray([e.modality == other_modality(query_modality) for e in entries], bool)
    ids = np.asarray([e.identity for e in entries], object)
    if qmask.sum() == 0 or gmask.sum() == 0:
        raise ValueError(f"calibration needs {query_modality} and {other_modality(query_modality)} entries; "
                         f"the gallery has {int(qmask.sum())} and {int(gmask.sum())}")
    genuine, impostor = pair_similarities(emb[qmask], ids[qmask], emb[gmask], ids[gmask])
    return calibrate_threshold(genuine, impostor, target_fmr)


__all__ = [
    "MODALITIES", "GALLERY_FORMAT", "GALLERY_VERSION", "GalleryError", "GalleryEntry", "Match",
    "ThresholdCalibration", "Gallery", "other_modality", "check_modality", "l2_normalize", "atomic_write_bytes",
    "faiss_available", "pair_similarities", "calibrate_threshold", "calibrate_cross_modality",
]
