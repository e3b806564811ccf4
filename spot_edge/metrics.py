"""Cross-modality re-identification metrics: CMC, mAP and mINP.

Implements the community protocol of the AGW / DDAG / CAJ code base exactly as written in
``docs/evaluation-protocol.md``:

- the gallery of every query is ranked by ascending distance with a *stable* sort (exact ties
  keep gallery order, unlike an implementation-defined ``np.argsort``);
- ``protocol="sysu"``: for a query from camera 3 every gallery image from camera 2 is dropped
  (cameras 2 and 3 share a room); CMC is computed on the de-duplicated identity ranking
  (first occurrence of every identity);
- ``protocol="regdb"``: nothing is dropped, plain CMC (rank-k hit if a true match is among
  the first k gallery images);
- AP and INP use the full ranking after the drop. With true matches at 1-based ranks
  ``r_1 < ... < r_G``: ``AP = mean_j j / r_j`` and ``INP = G / r_G``.
- CMC, mAP and mINP average over the queries that have at least one true match left.

Everything is vectorised with numpy over blocks of queries; 3,803 queries x 301 gallery
images take a few milliseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["evaluate", "cosine_distance", "l2_normalize", "PROTOCOLS"]

PROTOCOLS = ("sysu", "regdb")

# Camera rule of SYSU-MM01: queries from this camera ignore gallery images of that camera.
_SYSU_QUERY_CAM = 3
_SYSU_DROPPED_GALLERY_CAM = 2

# Query rows processed at once; bounds the (rows, G) temporaries.
_BLOCK_ELEMENTS = 4_000_000


def l2_normalize(x: Any) -> np.ndarray:
    """Rows of ``(N, D)`` (or one ``(D,)`` vector) scaled to unit length, as float32; zero rows
    stay zero.

    Each row is first divided by its largest absolute value, in float64, so rows of very large
    (1e300) or very small (1e-300) finite values normalise correctly instead of overflowing or
    vanishing.
    """
    x64 = np.asarray(x, dtype=np.float64)
    scale = np.max(np.abs(x64), axis=-1, keepdims=True) if x64.size else np.ones(x64.shape[:-1] + (1,))
    y = x64 / np.where(scale > 0, scale, 1.0)
    norms = np.linalg.norm(y, axis=-1, keepdims=True)  # >= 1 for non-zero rows
    return (y / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def cosine_distance(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Cosine distance ``1 - q.g`` between L2-normalised embeddings.

    Args:
        query: ``(Q, D)`` embeddings (normalised here; zero rows stay zero).
        gallery: ``(G, D)`` embeddings.

    Returns:
        ``(Q, G)`` float32 distances.
    """
    q = np.asarray(query, dtype=np.float32)
    g = np.asarray(gallery, dtype=np.float32)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"cosine_distance expects (Q, D) and (G, D) arrays, got {q.shape} and {g.shape}")
    return 1.0 - l2_normalize(q) @ l2_normalize(g).T


def _as_1d(name: str, values: Any, length: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != length:
        raise ValueError(f"{name} must be a 1-D array of length {length} (matching distmat), got shape {arr.shape}")
    return arr


def evaluate(
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_cams: Any = None,
    g_cams: Any = None,
    protocol: str = "sysu",
    max_rank: int = 20,
) -> dict[str, Any]:
    """CMC, mAP and mINP of a query x gallery distance matrix (``docs/evaluation-protocol.md``).

    Args:
        distmat: ``(Q, G)`` distances, smaller is more similar.
        q_pids: ``(Q,)`` query identities.
        g_pids: ``(G,)`` gallery identities.
        q_cams: ``(Q,)`` query camera ids (required for ``protocol="sysu"``).
        g_cams: ``(G,)`` gallery camera ids (required for ``protocol="sysu"``).
        protocol: ``"sysu"`` (camera-3/camera-2 rule, de-duplicated CMC) or ``"regdb"``
            (no drop, plain CMC).
        max_rank: length of the returned CMC curve.

    Returns:
        A dict with ``cmc`` (``(max_rank,)`` float64 fractions, ``cmc[k-1]`` = rank-k),
        ``mAP`` and ``mINP`` (fractions in [0, 1]), ``num_valid_queries`` (queries with at
        least one true match, the denominator of all three) and ``num_queries``.

    Raises:
        ValueError: bad shapes, unknown protocol, missing cameras for SYSU, or no query with
            a true match in the gallery.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}")
    dist = np.asarray(distmat)
    if dist.ndim != 2:
        raise ValueError(f"distmat must be a (num_query, num_gallery) matrix, got shape {dist.shape}")
    num_q, num_g = dist.shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat is empty (shape {dist.shape}); need at least one query and one gallery image")
    if not np.all(np.isfinite(dist)):
        raise ValueError("distmat contains NaN or infinite values; check the embeddings")
    if int(max_rank) < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    max_rank = int(max_rank)
    q_pids = _as_1d("q_pids", q_pids, num_q)
    g_pids = _as_1d("g_pids", g_pids, num_g)
    if protocol == "sysu":
        if q_cams is None or g_cams is None:
            raise ValueError("protocol='sysu' needs q_cams and g_cams (the camera rule drops cam2 for cam3 queries)")
        q_cams = _as_1d("q_cams", q_cams, num_q)
        g_cams = _as_1d("g_cams", g_cams, num_g)

    # Identities as small integers (shared code space for query and gallery).
    _, codes = np.unique(np.concatenate([q_pids, g_pids]), return_inverse=True)
    q_codes, g_codes = codes[:num_q], codes[num_q:]
    num_ids = int(codes.max()) + 1

    block = max(1, _BLOCK_ELEMENTS // num_g)
    first_rank = np.empty(num_q, dtype=np.int64)  # 0-based CMC rank of the first true match, or num_g + 1
    ap = np.zeros(num_q, dtype=np.float64)
    inp = np.zeros(num_q, dtype=np.float64)
    valid = np.zeros(num_q, dtype=bool)
    for start in range(0, num_q, block):
        stop = min(start + block, num_q)
        order = np.argsort(dist[start:stop], axis=1, kind="stable")  # (b, G)
        ranked_ids = g_codes[order]  # (b, G)
        matches = ranked_ids == q_codes[start:stop, None]
        if protocol == "sysu":
            keep = ~((q_cams[start:stop, None] == _SYSU_QUERY_CAM) & (g_cams[order] == _SYSU_DROPPED_GALLERY_CAM))
        else:
            keep = np.ones_like(matches)
        matches &= keep
        # 1-based rank of each kept gallery entry in the ranking after the drop.
        rank_after_drop = np.cumsum(keep, axis=1)
        num_rel = matches.sum(axis=1)
        has_match = num_rel > 0
        valid[start:stop] = has_match

        # AP = mean_j j / r_j ; INP = G / r_G.
        hits_so_far = np.cumsum(matches, axis=1)
        precision_sum = np.where(matches, hits_so_far / np.maximum(rank_after_drop, 1), 0.0).sum(axis=1)
        last_rank = np.where(matches, rank_after_drop, 0).max(axis=1)
        safe_rel = np.maximum(num_rel, 1)
        ap[start:stop] = np.where(has_match, precision_sum / safe_rel, 0.0)
        inp[start:stop] = np.where(has_match, num_rel / np.maximum(last_rank, 1), 0.0)

        rows = np.arange(stop - start)
        first_hit = np.argmax(matches, axis=1)  # position in the full ranking
        if protocol == "regdb":
            cmc_rank = rank_after_drop[rows, first_hit] - 1
        else:
            # De-duplicated identity ranking: identity u sits at the rank of its first kept
            # occurrence; the query's CMC rank is the number of identities that appear first.
            positions = np.where(keep, np.arange(num_g)[None, :], num_g)
            first_pos = np.full((stop - start, num_ids), num_g, dtype=np.int64)
            np.minimum.at(first_pos, (np.repeat(rows, num_g), ranked_ids.ravel()), positions.ravel())
            own = first_pos[rows, q_codes[start:stop]]
            cmc_rank = (first_pos < own[:, None]).sum(axis=1)
        first_rank[start:stop] = np.where(has_match, cmc_rank, num_g + 1)

    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError("no query identity appears in the gallery (after the camera rule); "
                         "check that query and gallery come from the same identities")
    ks = np.arange(1, max_rank + 1)
    cmc = (first_rank[valid][:, None] < ks[None, :]).sum(axis=0) / num_valid
    return {
        "cmc": cmc.astype(np.float64),
        "mAP": float(ap[valid].mean()),
        "mINP": float(inp[valid].mean()),
        "num_valid_queries": num_valid,
        "num_queries": num_q,
    }
