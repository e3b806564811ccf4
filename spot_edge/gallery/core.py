"""The :class:`Gallery`: embeddings ``(N, D)`` with identity, modality, camera and time, in memory,
searched by cosine similarity, saved as transactions (:mod:`.transaction`) in the folder format of
:mod:`.store`."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from spot_edge.errors import InputError
from spot_edge.gallery.calibration import ThresholdCalibration
from spot_edge.gallery.entries import GalleryEntry, GalleryError, Match, entry_fields, new_writer_id
from spot_edge.gallery.identity import ModelIdentity, ModelMismatchError, check_same_model
from spot_edge.gallery.rows import ModalityRows
from spot_edge.gallery.search import FAISS_INDEX_KINDS, SEARCH_BACKENDS, embedding_matrix, l2_normalize, top_k
from spot_edge.gallery.store import StoredGallery, has_gallery, read_manifest, read_stored, write_stored
from spot_edge.gallery.transaction import Journal, holding, merge, writer_lock
from spot_edge.modality import MODALITIES, check_modality, other_modality

__all__ = ["Gallery"]


class Gallery:
    """Embeddings ``(N, D)`` plus per-entry metadata; thread-safe; saved as atomic transactions.

    >>> g = Gallery(embedding_dim=4)
    >>> ids = g.add(np.eye(4)[:2], identities=["alice", "bob"], modality="visible", camera="cam1")
    >>> [m.identity for m in g.search(np.eye(4)[:1], modality="infrared", k=1)[0]]
    ['alice']

    Entries are stored per modality, so a cross-modality search reads one contiguous matrix.
    Several processes may write one gallery folder: each save merges this object's additions and
    removals with what the others saved (:mod:`spot_edge.gallery.transaction`).

    Args:
        embedding_dim: D; ``None`` takes it from the first :meth:`add`.
        path: folder the gallery is saved to by :meth:`save` (``None``: in memory only). A gallery
            already there is not replaced: the first save merges this object's entries into it.
    """

    def __init__(self, embedding_dim: int | None = None, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.embedding_dim = int(embedding_dim) if embedding_dim is not None else None
        self._parts = {m: ModalityRows(self.embedding_dim or 0) for m in MODALITIES}
        self._order = 0
        self._writer = new_writer_id()
        self._added_count = 0
        self._calibration: ThresholdCalibration | None = None
        self._model: ModelIdentity | None = None
        self.generation = 0
        self._synced: tuple[Path, str | None, int] | None = None  # (folder, revision, generation) last read/written
        self._journal = Journal()
        self._lock = threading.RLock()  # the in-memory view
        self._sync_lock = threading.RLock()  # one save / refresh at a time per object
        self._writer_locks: dict[Path, Any] = {}
        self._faiss_cache: dict[str, Any] = {}
        self._faiss_index = "flat"

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
        """True when this object has changes not yet saved."""
        j = self._journal
        # an adopted model identity alone is worth a save only for a gallery that exists on disk
        return bool(j.added or j.removed or j.calibration_changed or (j.model_adopted and self._synced))

    @property
    def calibration(self) -> ThresholdCalibration | None:
        return self._calibration

    @property
    def threshold(self) -> float | None:
        """The calibrated similarity threshold, if any."""
        return self._calibration.threshold if self._calibration is not None else None

    @property
    def model(self) -> ModelIdentity | None:
        """The identity of the model the gallery's embeddings come from (``None``: not recorded)."""
        return self._model

    @property
    def faiss_index(self) -> str:
        """faiss index type: "flat" (exact inner product) or "hnsw" (approximate graph index,
        sub-linear search for 10^6+ entries; built once, then extended on add)."""
        return self._faiss_index

    @faiss_index.setter
    def faiss_index(self, kind: str) -> None:
        if kind not in FAISS_INDEX_KINDS:
            raise InputError(f"faiss_index must be one of {FAISS_INDEX_KINDS}, got {kind!r}")
        with self._lock:
            self._faiss_index = kind
            self._faiss_cache.clear()

    def _merged(self) -> tuple[np.ndarray, list[GalleryEntry]]:
        """All embeddings and entries in insertion order (a copy when both modalities hold entries)."""
        parts = [p for p in self._parts.values() if p.n]
        if not parts:
            return np.zeros((0, self.embedding_dim or 0), np.float32), []
        if len(parts) == 1:
            return parts[0].emb, list(parts[0].entries)
        entries = parts[0].entries + parts[1].entries
        order = np.argsort(np.asarray(parts[0].order + parts[1].order), kind="stable")
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
                    per_identity.setdefault(e.identity, {m: 0 for m in MODALITIES})[e.modality] += 1
            return {
                "path": str(self.path) if self.path else None,
                "embedding_dim": self.embedding_dim,
                "entries": len(self),
                "per_modality": {m: p.n for m, p in self._parts.items()},
                "identities": per_identity,
                "calibration": self._calibration.to_dict() if self._calibration else None,
                "model": self._model.to_dict() if self._model else None,
                "generation": self.generation,
            }

    # ---------------------------------------------------------------- model identity
    def check_model(self, model) -> ModelIdentity:
        """Refuse a model other than the gallery's (:class:`ModelMismatchError`: what differs, what
        to do); a gallery without a recorded identity adopts ``model``'s (saved with the next save).

        Args:
            model: a :class:`ModelIdentity`, or an Embedder (``spot_edge.backends``).
        """
        identity = ModelIdentity.of(model)
        with self._lock:
            where = str(self.path) if self.path else "(in memory)"
            if identity.embedding_dim and self.embedding_dim and identity.embedding_dim != self.embedding_dim:
                raise ModelMismatchError(f"gallery {where} holds {self.embedding_dim}-d embeddings, the model gives "
                                         f"{identity.embedding_dim}-d; use the model the gallery was enrolled with, "
                                         "or another gallery")
            check_same_model(self._model, identity, where)
            adopted = identity if self._model is None else self._model.merged(identity)
            if identity.known and adopted != self._model:
                self._model = adopted
                self._journal.model_adopted = True
        return identity

    # ---------------------------------------------------------------- changes
    def add(self, embeddings, identities, modality, camera="", timestamps=None, track_ids=None, thumbnails=None,
            model=None) -> list[str]:
        """Add ``N`` entries; returns their entry ids (unique across processes).

        Args:
            embeddings: ``(N, D)`` or ``(D,)``, finite, not all-zero; normalised here.
            identities, modality, camera, timestamps, track_ids, thumbnails: one value for all or
                ``N`` values. ``modality`` is "visible" or "infrared"; ``timestamps`` are seconds
                since the epoch (default: now).
            model: the model that made the embeddings (a :class:`ModelIdentity` or an Embedder):
                refused when it is not the gallery's model (see :meth:`check_model`).
        """
        x = embedding_matrix(embeddings, self.embedding_dim)
        n = x.shape[0]
        zero = ~np.any(x != 0, axis=1)
        if zero.any():
            raise InputError(f"embeddings rows {np.nonzero(zero)[0][:5].tolist()} are all zeros; they cannot be matched")
        fields = entry_fields(n, identities, modality, camera, timestamps, track_ids, thumbnails)
        identity = ModelIdentity.of(model) if model is not None else None
        if identity is not None and identity.embedding_dim and identity.embedding_dim != x.shape[1]:
            raise InputError(f"embeddings are {x.shape[1]}-d but the model gives {identity.embedding_dim}-d")
        x = l2_normalize(x)
        with self._lock:
            if self.embedding_dim is not None and x.shape[1] != self.embedding_dim:  # set by another thread meanwhile
                raise InputError(f"embeddings have dimension {x.shape[1]}, the gallery holds dimension "
                                 f"{self.embedding_dim}; use the same model for enrolment and queries")
            if identity is not None:
                self.check_model(identity)
            if self.embedding_dim is None:
                self.embedding_dim = x.shape[1]
                self._parts = {m: ModalityRows(self.embedding_dim) for m in MODALITIES}
                self._faiss_cache.clear()
            new_ids = [f"{self._writer}-{self._added_count + i}" for i in range(n)]
            self._added_count += n
            entries = [GalleryEntry(i, *f) for i, f in zip(new_ids, fields)]
            self._append(x, entries)
            self._journal.note_added(new_ids)
        return new_ids

    def _append(self, x: np.ndarray, entries: list[GalleryEntry]) -> None:
        """Append rows ``x (N, D)`` (unit, float32) and their entries (the caller holds ``_lock``)."""
        mods = np.asarray([e.modality for e in entries])
        order = range(self._order, self._order + len(entries))
        self._order += len(entries)
        for m in MODALITIES:
            sel = np.nonzero(mods == m)[0]
            if len(sel):
                self._parts[m].append(x[sel], [entries[i] for i in sel], [order[i] for i in sel])
                index = self._faiss_cache.get(m)
                if index is not None:  # extend the index instead of rebuilding it
                    index.add(np.ascontiguousarray(x[sel]))
        self._faiss_cache.pop("any", None)

    def remove(self, identity: str | None = None, entry_ids: Sequence[str] | None = None) -> int:
        """Remove entries of ``identity`` and/or with the given ids; returns how many were removed."""
        if identity is None and entry_ids is None:
            raise InputError("say what to remove: an identity or entry ids")
        drop = {str(i) for i in (entry_ids or ())}
        return self._remove_where(lambda e: e.identity == identity or e.entry_id in drop)

    def remove_non_finite(self) -> int:
        """Remove entries whose embedding holds NaN/Inf (only a damaged folder read with
        ``Gallery.transaction(..., allow_non_finite=True)`` has any); returns how many."""
        with self._lock:
            bad = {e.entry_id for p in self._parts.values()
                   for e, ok in zip(p.entries, np.isfinite(p.emb).all(axis=1)) if not ok}
        return self._remove_where(lambda e: e.entry_id in bad) if bad else 0

    def _remove_where(self, predicate) -> int:
        removed: list[str] = []
        with self._lock:
            for part in self._parts.values():
                keep = np.asarray([not predicate(e) for e in part.entries], bool)
                if len(keep) and not keep.all():
                    removed += [e.entry_id for e, k in zip(part.entries, keep) if not k]
                    part.keep(keep)
            if removed:
                self._journal.note_removed(removed)
                self._faiss_cache.clear()
        return len(removed)

    def set_calibration(self, calibration: ThresholdCalibration | None) -> None:
        with self._lock:
            self._calibration = calibration
            self._journal.calibration_changed = True

    # ---------------------------------------------------------------- search
    def search(self, queries, modality: str, k: int = 5, target: str | None = None, backend: str = "auto",
               model=None) -> list[list[Match]]:
        """Top-``k`` gallery entries by cosine similarity for each query.

        Args:
            queries: ``(Q, D)`` or ``(D,)`` query embeddings of ``modality``.
            modality: the queries' modality.
            k: results per query (fewer when the searched part of the gallery is smaller).
            target: modality of the entries searched: default the *other* modality (cross-modality
                matching: infrared queries against visible entries and vice versa); "any" for all.
            backend: "numpy" (exact), "faiss" (exact flat index, or approximate HNSW with
                ``gallery.faiss_index = "hnsw"``), or "auto": numpy, except faiss HNSW from
                ``FAISS_AUTO_MIN_ENTRIES`` entries when ``faiss_index`` is "hnsw" and faiss is installed.
            model: the model that made the queries: refused when it is not the gallery's.

        Returns:
            ``Q`` lists of :class:`Match`, best first.
        """
        check_modality(modality)
        target = other_modality(modality) if target is None else target
        if target != "any":
            check_modality(target)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be an integer >= 1, got {k!r}")
        if backend not in SEARCH_BACKENDS:
            raise InputError(f"backend must be one of {SEARCH_BACKENDS}, got {backend!r}")
        with self._lock:
            if model is not None:
                check_same_model(self._model, ModelIdentity.of(model), str(self.path or "(in memory)"), "these queries")
            q = l2_normalize(embedding_matrix(queries, self.embedding_dim, "queries"))
            if target == "any":
                emb, entries = self._merged()
            else:
                emb, entries = self._parts[target].emb, self._parts[target].entries
            if not entries:
                return [[] for _ in range(q.shape[0])]
            sims, idx = top_k(q, emb, min(int(k), len(entries)), backend, self._faiss_index, self._faiss_cache, target)
            return [[Match(r, float(s), entries[i]) for r, (s, i) in enumerate(zip(srow, irow)) if i >= 0]
                    for srow, irow in zip(sims, idx)]

    def best_match(self, query, modality: str, threshold: float | None = None,
                   target: str | None = None) -> tuple[Match | None, bool]:
        """Best entry for one query and whether it clears ``threshold`` (default: the calibrated one)."""
        results = self.search(query, modality, k=1, target=target)[0]
        if not results:
            return None, False
        thr = self.threshold if threshold is None else threshold
        return results[0], (thr is None or results[0].similarity >= thr)

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike | None = None, *, replace: bool = False) -> Path:
        """Save as a transaction: under the writers' lock, merge this object's additions and removals
        with what other processes saved since this object last read or saved the folder, write the
        result atomically, and refresh this object's view (see :mod:`spot_edge.gallery.transaction`).

        Args:
            path: folder (default: where the gallery was loaded from or created). Saving to another
                folder writes every entry of this gallery into it (merged with what it holds).
            replace: write exactly this gallery, discarding what the folder holds (still atomic
                and under the lock).
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise GalleryError("this gallery has no path: pass one to save()")
        if target.exists() and not target.is_dir():
            raise GalleryError(f"{target} exists and is not a folder")
        with self._sync_lock:
            if target not in self._writer_locks:
                self._writer_locks[target] = writer_lock(target)
            lock = self._writer_locks[target]
            with holding(lock, target):
                self._save_locked(target, replace)
        return target

    def flush(self) -> bool:
        """Save when this object has unsaved changes (a transaction, as :meth:`save`); otherwise
        pick up what other processes saved (:meth:`refresh`). Returns whether it wrote."""
        if self.path is None:
            return False
        if self.dirty:
            self.save()
            return True
        self.refresh()
        return False

    def refresh(self) -> bool:
        """Re-read the folder when another process saved since this object last read or saved it
        (lock-free); this object's unsaved changes stay applied. Returns whether it re-read."""
        if self.path is None or not has_gallery(self.path):
            return False
        with self._sync_lock:
            manifest = read_manifest(self.path)
            if self._synced == (self.path, manifest.get("revision"), manifest["generation"]):
                return False
            stored = read_stored(self.path)
            with self._lock:
                if self._journal.added or self._journal.model_adopted:
                    check_same_model(stored.model, self._model, str(self.path), "this process's embeddings")
                if self._journal.added and stored.entries and stored.embedding_dim != self.embedding_dim:
                    raise ModelMismatchError(f"gallery {self.path} now holds {stored.embedding_dim}-d embeddings "
                                             f"(written by another process), this process's are "
                                             f"{self.embedding_dim}-d")
                self._install(stored, self.path)
        return True

    def _save_locked(self, target: Path, replace: bool) -> None:
        """:meth:`save` for a caller holding the folder's writers' lock."""
        disk = read_manifest(target) if has_gallery(target) else None
        with self._lock:
            taken = self._journal.take()
            same = self._synced is not None and self._synced[0] == target
            fast = replace or disk is None or (same and self._synced == (target, disk.get("revision"), disk["generation"]))
            if fast:
                emb, entries = self._merged()
                stored = StoredGallery(np.array(emb, np.float32, copy=True), entries, self.embedding_dim,
                                       self._calibration, self._model)
            else:
                journal = taken
                if not same:  # another folder: all of this gallery's entries are additions to it
                    journal = Journal(added=dict.fromkeys(e.entry_id for p in self._parts.values() for e in p.entries),
                                      calibration_changed=self._calibration is not None)
                rows = {e.entry_id: (e, p.emb[i].copy()) for p in self._parts.values()
                        for i, e in enumerate(p.entries) if e.entry_id in journal.added}
                calibration, model, dim = self._calibration, self._model, self.embedding_dim
        try:
            if not fast:
                stored = merge(read_stored(target), journal, rows, calibration, model, dim, str(target))
            write_stored(target, stored, self.generation)
        except BaseException:
            with self._lock:
                self._journal.put_back(taken)
            raise
        with self._lock:
            if not fast:
                self._install(stored, target)
            self.generation = stored.generation
            self._synced = (target, stored.revision, stored.generation)
            self.path = target

    def _install(self, stored: StoredGallery, folder: Path) -> None:
        """Make ``stored`` this object's view, with the changes still in the journal re-applied
        (the caller holds ``_lock``)."""
        journal = self._journal
        pending = {e.entry_id: (e, p.emb[i].copy()) for p in self._parts.values()
                   for i, e in enumerate(p.entries) if e.entry_id in journal.added}
        self.embedding_dim = stored.embedding_dim or self.embedding_dim
        self._parts = {m: ModalityRows(self.embedding_dim or 0) for m in MODALITIES}
        self._faiss_cache.clear()
        keep = [i for i, e in enumerate(stored.entries) if e.entry_id not in journal.removed]
        if keep:
            self._append(np.asarray(stored.embeddings[keep], np.float32), [stored.entries[i] for i in keep])
        stored_ids = {e.entry_id for e in stored.entries}
        new = [i for i in journal.added if i not in stored_ids and i in pending]
        if new:
            self._append(np.stack([pending[i][1] for i in new]), [pending[i][0] for i in new])
        if not journal.calibration_changed:
            self._calibration = stored.calibration
        if stored.model is not None:
            self._model = stored.model if self._model is None else stored.model.merged(self._model)
        self.generation = stored.generation
        self._synced = (folder, stored.revision, stored.generation)

    @classmethod
    def load(cls, path: str | os.PathLike, verify: bool = False, retries: int = 5,
             allow_non_finite: bool = False) -> "Gallery":
        """Load a gallery folder written by :meth:`save` (possibly by another process, possibly
        while it saves); see :func:`spot_edge.gallery.store.read_stored` for the arguments."""
        path = Path(path)
        stored = read_stored(path, verify=verify, retries=retries, allow_non_finite=allow_non_finite)
        g = cls(embedding_dim=stored.embedding_dim, path=path)
        with g._lock:
            g._install(stored, path)
        return g

    @classmethod
    def open(cls, path: str | os.PathLike, embedding_dim: int | None = None, create: bool = True,
             model=None, allow_non_finite: bool = False) -> "Gallery":
        """Load the gallery at ``path``, or start an empty one there when none exists (``create``).

        Args:
            embedding_dim: refuse a gallery of another embedding size.
            model: the model that will add to and search the gallery (a :class:`ModelIdentity` or
                an Embedder): refused when it is not the gallery's model; adopted by a gallery
                without one (:meth:`check_model`).
        """
        path = Path(path)
        if has_gallery(path):
            g = cls.load(path, allow_non_finite=allow_non_finite)
            if embedding_dim is not None and g.embedding_dim is not None and g.embedding_dim != embedding_dim:
                raise GalleryError(f"gallery {path} holds {g.embedding_dim}-d embeddings, the model gives "
                                   f"{embedding_dim}-d; use another gallery or the model it was built with")
        elif not create:
            raise FileNotFoundError(f"no gallery at {path} (missing gallery.json)")
        elif path.exists() and not path.is_dir():
            raise GalleryError(f"{path} exists and is not a folder")
        else:
            g = cls(embedding_dim=embedding_dim, path=path)
        if model is not None:
            g.check_model(model)
        return g

    @classmethod
    @contextlib.contextmanager
    def transaction(cls, path: str | os.PathLike, embedding_dim: int | None = None, model=None,
                    create: bool = True, allow_non_finite: bool = False) -> Iterator["Gallery"]:
        """Load (or create), yield, and save on success, holding the writers' lock throughout: a
        read-modify-write cycle (``gallery enroll``, ``gallery remove``) that no other writer can
        interleave with. Arguments as :meth:`open`."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise GalleryError(f"{path} exists and is not a folder")
        if not create and not has_gallery(path):
            raise FileNotFoundError(f"no gallery at {path} (missing gallery.json)")
        lock = writer_lock(path)
        with holding(lock, path):
            g = cls.open(path, embedding_dim, create=create, allow_non_finite=allow_non_finite)
            g._writer_locks[path] = lock  # re-entrant: g.save() inside the block does not wait for itself
            if model is not None:
                g.check_model(model)
            yield g
            if g.dirty:
                with g._sync_lock:
                    g._save_locked(path, replace=False)
