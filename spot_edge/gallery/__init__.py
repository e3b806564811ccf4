"""A persistent gallery of people: embeddings with identity, modality, camera and time, that many
processes can read and write at once without losing anything.

Modules (one concern each):

- :mod:`.core`: :class:`Gallery`, the in-memory view (add, remove, search, load, save, transaction),
  its rows kept per modality (:mod:`.rows`);
- :mod:`.store`: the folder on disk (manifest + one generation of data files, atomic writes,
  every field checked on read);
- :mod:`.transaction`: the writers' lock (``filelock``) and the merge that makes every save a
  transaction (this process's additions and removals applied to what is on disk now);
- :mod:`.search`: the one numpy :func:`l2_normalize`, exact numpy top-k, faiss indexes;
- :mod:`.calibration`: the match threshold for a target false-match rate;
- :mod:`.identity`: :class:`ModelIdentity`, which model made the embeddings (mismatches refused);
- :mod:`.entries`: :class:`GalleryEntry`, :class:`Match`, :class:`GalleryError`.

Matching: cosine similarity of L2-normalised rows; cross-modality by default (an infrared query is
compared with visible entries and vice versa).
"""

from spot_edge.atomic import atomic_write as _atomic_write
from spot_edge.gallery.calibration import (ThresholdCalibration, calibrate_cross_modality, calibrate_threshold,
                                           pair_similarities)
from spot_edge.gallery.core import Gallery
from spot_edge.gallery.entries import GalleryEntry, GalleryError, Match
from spot_edge.gallery.identity import ModelIdentity, ModelMismatchError
from spot_edge.gallery.search import FAISS_AUTO_MIN_ENTRIES, faiss_available, l2_normalize
from spot_edge.gallery.store import GALLERY_FORMAT, GALLERY_VERSION
from spot_edge.modality import MODALITIES, check_modality, other_modality

#: Deprecated alias kept for callers of the old ``spot_edge.gallery.atomic_write_bytes(path, write)``
#: (``write(fileobj)`` fills the file): use :func:`spot_edge.atomic.atomic_write` instead.
atomic_write_bytes = _atomic_write

__all__ = [
    "MODALITIES", "GALLERY_FORMAT", "GALLERY_VERSION", "FAISS_AUTO_MIN_ENTRIES", "GalleryError", "ModelMismatchError",
    "GalleryEntry", "Match", "ModelIdentity", "ThresholdCalibration", "Gallery", "other_modality", "check_modality",
    "l2_normalize", "atomic_write_bytes", "faiss_available", "pair_similarities", "calibrate_threshold",
    "calibrate_cross_modality",
]
