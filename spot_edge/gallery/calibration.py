"""The match threshold: chosen for a target false-match rate (FMR) on a labelled set.

:func:`calibrate_threshold` picks the lowest cosine-similarity threshold whose FMR on impostor
pairs (different identities) is at most the target, and reports the true-match rate (TMR) it gives
on genuine pairs (same identity); :func:`calibrate_cross_modality` does it on a gallery's own
labelled entries in the pipeline's matching direction (infrared queries against visible entries by
default). The result is stored in the gallery's manifest and decides "matched" vs "unknown".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from spot_edge.errors import InputError
from spot_edge.gallery.search import embedding_matrix, l2_normalize
from spot_edge.modality import check_modality, other_modality

if TYPE_CHECKING:
    from spot_edge.gallery.core import Gallery

__all__ = ["ThresholdCalibration", "pair_similarities", "calibrate_threshold", "calibrate_cross_modality"]

CURVE_FMRS = (1e-4, 1e-3, 1e-2, 1e-1)


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
        """Inverse of :meth:`to_dict`; :class:`InputError` for missing, unknown or non-finite fields."""
        if not isinstance(data, dict):
            raise InputError(f"a calibration must be a JSON object, got {type(data).__name__}")
        try:
            cal = cls(**data)
        except TypeError as exc:
            raise InputError(f"malformed calibration: {exc}") from None
        numbers = (cal.threshold, cal.target_fmr, cal.fmr, cal.tmr)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in numbers):
            raise InputError(f"malformed calibration: threshold and rates must be finite numbers, got {numbers}")
        return cal


def pair_similarities(query_emb, query_ids, gallery_emb, gallery_ids) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and impostor cosine similarities of every (query, gallery) pair.

    Args:
        query_emb: ``(Q, D)``; gallery_emb: ``(G, D)``; ``query_ids`` / ``gallery_ids``: one
            identity per row.

    Returns:
        ``(genuine, impostor)`` 1-D float64 arrays (same identity / different identities).
    """
    q = l2_normalize(embedding_matrix(query_emb, None, "query embeddings"))
    g = l2_normalize(embedding_matrix(gallery_emb, q.shape[1], "gallery embeddings"))
    qi, gi = np.asarray([str(i) for i in query_ids]), np.asarray([str(i) for i in gallery_ids])
    if len(qi) != len(q) or len(gi) != len(g):
        raise InputError("one identity per embedding is needed")
    sims = q @ g.T  # (Q, G)
    same = qi[:, None] == gi[None, :]
    return sims[same].astype(np.float64), sims[~same].astype(np.float64)


def calibrate_threshold(genuine, impostor, target_fmr: float = 0.01) -> ThresholdCalibration:
    """The lowest similarity threshold whose false-match rate on ``impostor`` is <= ``target_fmr``.

    A pair matches when ``similarity >= threshold``. Returns the threshold with the FMR and TMR it
    gives on this data and an FMR/TMR curve at a few standard operating points.
    """
    genuine = np.asarray(genuine, np.float64).ravel()
    impostor = np.asarray(impostor, np.float64).ravel()
    if not (isinstance(target_fmr, (int, float)) and 0.0 <= target_fmr < 1.0):
        raise InputError(f"target_fmr must be in [0, 1), got {target_fmr}")
    if genuine.size == 0 or impostor.size == 0:
        raise InputError(f"calibration needs genuine and impostor pairs (got {genuine.size} genuine, "
                         f"{impostor.size} impostor): use at least two identities seen in both modalities")
    if not (np.isfinite(genuine).all() and np.isfinite(impostor).all()):
        raise InputError("calibration similarities contain NaN or infinite values")
    imp = np.sort(impostor)[::-1]

    def at_fmr(fmr: float) -> float:
        allowed = int(math.floor(fmr * imp.size + 1e-9))
        if allowed >= imp.size:
            return float(imp[-1])
        # Above the (allowed+1)-th highest impostor: at most `allowed` impostors reach it.
        return float(np.nextafter(imp[allowed], np.inf))

    def rates(t: float) -> tuple[float, float]:
        return float((impostor >= t).mean()), float((genuine >= t).mean())

    threshold = at_fmr(target_fmr)
    curve = []
    for f in CURVE_FMRS:
        t = at_fmr(f)
        fmr, tmr = rates(t)
        curve.append({"target_fmr": f, "threshold": t, "fmr": fmr, "tmr": tmr})
    fmr, tmr = rates(threshold)
    return ThresholdCalibration(threshold=threshold, target_fmr=float(target_fmr), fmr=fmr, tmr=tmr,
                                num_genuine=int(genuine.size), num_impostor=int(impostor.size), curve=curve)


def calibrate_cross_modality(gallery: "Gallery", target_fmr: float = 0.01,
                             query_modality: str = "infrared") -> ThresholdCalibration:
    """Calibrate on the gallery's own labelled entries: ``query_modality`` entries against the other
    modality's entries (the pipeline's matching direction)."""
    gallery_modality = other_modality(check_modality(query_modality))
    emb, entries = gallery.snapshot()
    qmask = np.asarray([e.modality == query_modality for e in entries], bool)
    gmask = np.asarray([e.modality == gallery_modality for e in entries], bool)
    ids = np.asarray([e.identity for e in entries], object)
    if qmask.sum() == 0 or gmask.sum() == 0:
        raise InputError(f"calibration needs {query_modality} and {gallery_modality} entries; "
                         f"the gallery has {int(qmask.sum())} and {int(gmask.sum())}")
    genuine, impostor = pair_similarities(emb[qmask], ids[qmask], emb[gmask], ids[gmask])
    return calibrate_threshold(genuine, impostor, target_fmr)
