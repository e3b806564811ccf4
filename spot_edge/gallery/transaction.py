"""One gallery, many writers, nothing lost: every save is a transaction under the writers' lock.

Each :class:`~spot_edge.gallery.Gallery` object keeps a :class:`Journal` of what *it* changed since
it last read or saved its folder: the entries it added, the entry ids it removed, whether it set
the calibration, whether it adopted a model identity. A save (``Gallery.save``, ``flush``, the end
of ``Gallery.transaction``; the pipeline's periodic and final flush) then:

1. takes the lock (``filelock`` on ``gallery.lock``; other writers wait, readers never do);
2. reads the manifest. When its revision is the one this object last saw, nobody else saved in
   between and this object's view is written as it is (the usual periodic flush). Otherwise it
   reads the gallery again and :func:`merge`\\ s: the entries on disk, minus the ids this object
   removed, plus the entries it added (an id already on disk is not added twice); the calibration
   is this object's if it set one, else the one on disk; the model identity and the embedding
   size must agree (:class:`ModelMismatchError` otherwise: nothing is written, the changes stay
   in memory);
3. writes the result as a new generation (:func:`spot_edge.gallery.store.write_stored`, atomic);
4. refreshes the in-memory view (what others added appears, what they removed disappears) and
   clears the journal; changes made by other threads during the write stay journaled.

Removals name entry ids: removing an identity removes the entries of it this object had seen; an
entry another process enrolls meanwhile under the same identity stays.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from filelock import FileLock, Timeout

from spot_edge.gallery.calibration import ThresholdCalibration
from spot_edge.gallery.entries import GalleryEntry, GalleryError
from spot_edge.gallery.identity import ModelIdentity, ModelMismatchError, check_same_model
from spot_edge.gallery.store import LOCK_NAME, StoredGallery

__all__ = ["LOCK_TIMEOUT_S", "writer_lock", "holding", "Journal", "merge"]

#: How long a save waits for another writer before giving up with a clear error.
LOCK_TIMEOUT_S = 60.0


def writer_lock(folder: Path) -> FileLock:
    """The writers' lock of a gallery folder: exclusive between processes and between threads,
    re-entrant within one thread (the folder is created when missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / LOCK_NAME), timeout=LOCK_TIMEOUT_S)


@contextlib.contextmanager
def holding(lock: FileLock, folder: Path) -> Iterator[None]:
    """Hold ``lock``; :class:`GalleryError` when another writer keeps it past the timeout."""
    try:
        lock.acquire()
    except Timeout:
        raise GalleryError(f"gallery {folder} is locked by another writer ({LOCK_NAME}) for more than "
                           f"{lock.timeout:g} s; is a process stuck? retry when it has finished") from None
    try:
        yield
    finally:
        lock.release()


@dataclass
class Journal:
    """What one Gallery object changed since it last read or saved its folder."""

    added: dict[str, None] = field(default_factory=dict)  # entry ids, in order (an ordered set)
    removed: set[str] = field(default_factory=set)
    calibration_changed: bool = False
    model_adopted: bool = False

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.calibration_changed or self.model_adopted)

    def note_added(self, entry_ids) -> None:
        self.added.update(dict.fromkeys(entry_ids))

    def note_removed(self, entry_ids) -> None:
        for i in entry_ids:
            if i in self.added:
                del self.added[i]  # never saved: nothing to remove on disk
            else:
                self.removed.add(i)

    def take(self) -> "Journal":
        """This journal's content, leaving it empty (for a save in progress)."""
        taken = Journal(self.added, self.removed, self.calibration_changed, self.model_adopted)
        self.added, self.removed = {}, set()
        self.calibration_changed = self.model_adopted = False
        return taken

    def put_back(self, taken: "Journal") -> None:
        """Undo :meth:`take` after a failed save (changes made meanwhile stay after it)."""
        later_added, later_removed = self.added, self.removed
        self.added = {i: None for i in taken.added if i not in later_removed}
        self.added.update(later_added)
        self.removed = (taken.removed | later_removed) - set(later_added)
        self.calibration_changed |= taken.calibration_changed
        self.model_adopted |= taken.model_adopted


def merge(disk: StoredGallery, journal: Journal, added: dict[str, tuple[GalleryEntry, np.ndarray]],
          calibration: ThresholdCalibration | None, model: ModelIdentity | None, embedding_dim: int | None,
          where: str) -> StoredGallery:
    """The gallery ``disk`` with one writer's changes applied.

    Args:
        disk: what the folder holds now (read under the lock).
        journal: the writer's changes since it last read or saved.
        added: entry and ``(D,)`` row of every id in ``journal.added``.
        calibration, model, embedding_dim: the writer's current values.
        where: the folder, for messages.
    """
    merged_model = disk.model
    if model is not None:
        check_same_model(disk.model, model, where, "this process's embeddings")
        merged_model = model if disk.model is None else disk.model.merged(model)
    keep = [i for i, e in enumerate(disk.entries) if e.entry_id not in journal.removed]
    on_disk = {e.entry_id for e in disk.entries}
    new = [i for i in journal.added if i not in on_disk]
    if keep and new and embedding_dim != disk.embedding_dim:
        raise ModelMismatchError(f"gallery {where} now holds {disk.embedding_dim}-d embeddings (written by another "
                                 f"process), this process's are {embedding_dim}-d; nothing was saved")
    dim = disk.embedding_dim if keep else (embedding_dim or disk.embedding_dim)
    rows = [disk.embeddings[keep]] if keep else []
    if new:
        rows.append(np.stack([added[i][1] for i in new]).astype(np.float32))
    emb = np.concatenate(rows) if rows else np.zeros((0, dim or 0), np.float32)
    entries = [disk.entries[i] for i in keep] + [added[i][0] for i in new]
    return StoredGallery(emb, entries, dim, calibration if journal.calibration_changed else disk.calibration,
                         merged_model, disk.generation, disk.revision)
