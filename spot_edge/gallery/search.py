"""Cosine search: the one numpy ``l2_normalize``, validated embedding matrices, exact numpy top-k
and the faiss indexes used for large galleries.

Rows are L2-normalised, so cosine similarity is a dot product and cosine distance is
``1 - similarity``. Exact numpy search is the default; faiss (optional ``faiss-cpu``) gives an
exact flat inner-product index or, for very large galleries, an approximate HNSW graph. On the
project's 2-core CPU, faiss's exact index was never faster than numpy (``benchmarks/bench_gallery.py``),
so "auto" uses HNSW only from :data:`FAISS_AUTO_MIN_ENTRIES` entries and only when asked for.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from spot_edge.errors import InputError

from spot_edge.metrics import l2_normalize  # one home for row normalisation

__all__ = ["l2_normalize", "embedding_matrix", "faiss_available", "top_k", "topk_numpy", "build_faiss_index",
           "FAISS_AUTO_MIN_ENTRIES", "FAISS_INDEX_KINDS", "SEARCH_BACKENDS", "SEARCH_BLAS_THREADS"]

FAISS_AUTO_MIN_ENTRIES = 50_000  # "auto" search uses faiss HNSW (when chosen and installed) from this size on
FAISS_INDEX_KINDS = ("flat", "hnsw")
SEARCH_BACKENDS = ("auto", "numpy", "faiss")
SEARCH_BLAS_THREADS: int | None = 1  # None: leave BLAS threading alone


def embedding_matrix(embeddings: Any, dim: int | None, what: str = "embeddings") -> np.ndarray:
    """``embeddings`` as a float64 ``(N, D)`` matrix (a ``(D,)`` vector becomes one row), checked:
    numeric, 2-D, ``D == dim`` when given, every value finite; :class:`InputError` otherwise."""
    if hasattr(embeddings, "detach"):  # a torch tensor
        embeddings = embeddings.detach().cpu().numpy()
    try:
        x = np.asarray(embeddings)
        if x.dtype == object or not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise TypeError(x.dtype)
        x = x.astype(np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a numeric (N, D) array") from None
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise InputError(f"{what} must be (N, D), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise InputError(f"{what} have dimension {x.shape[1]}, the gallery holds dimension {dim}; "
                         "use the same model for enrolment and queries")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        rows = np.nonzero(bad)[0]
        raise InputError(f"{what} contain NaN or infinite values (rows {', '.join(map(str, rows[:5]))}"
                         f"{'...' if len(rows) > 5 else ''}); refusing them")
    return x


def faiss_available() -> bool:
    """Whether the optional faiss package imports."""
    try:
        import faiss  # noqa: F401  (only whether it imports)
    except ImportError:
        return False
    return True


_BLAS_CONTROLLER: Any = None


def _blas_limit():
    """Limit BLAS threads for a search: the product is memory-bound, and OpenBLAS's threads cost
    far more than they give on a busy edge CPU (measured: 1000 x 256 entries, 8 queries: 0.3 ms
    with 1 thread vs 7 ms with 2 threads on a loaded 2-core machine). The controller (which scans
    the loaded libraries, milliseconds) is made once."""
    global _BLAS_CONTROLLER
    if SEARCH_BLAS_THREADS is None:
        return contextlib.nullcontext()
    if _BLAS_CONTROLLER is None:
        from threadpoolctl import ThreadpoolController  # installed with scikit-learn

        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=SEARCH_BLAS_THREADS, user_api="blas")


def topk_numpy(q: np.ndarray, emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product: ``(Q, D) x (N, D) -> (Q, k)`` similarities and row indices,
    best first. ``1 <= k <= N``."""
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


def build_faiss_index(kind: str, emb: np.ndarray, k: int):
    """A faiss inner-product index over ``emb (N, D)``: ``"flat"`` (exact) or ``"hnsw"``
    (approximate, sub-linear: for 10^6+ entries). Extend it with ``index.add(rows)``."""
    try:
        import faiss
    except ImportError as exc:
        raise RuntimeError("backend 'faiss' needs the faiss package: pip install faiss-cpu "
                           "(or use backend='numpy')") from exc
    dim = emb.shape[1]
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(64, 2 * k)
    elif kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        raise InputError(f"faiss_index must be 'flat' or 'hnsw', got {kind!r}")
    index.add(np.ascontiguousarray(emb))
    return index


def top_k(q: np.ndarray, emb: np.ndarray, k: int, backend: str, faiss_kind: str, cache: dict[str, Any],
          key: str) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows of ``emb (N, D)`` for unit queries ``q (Q, D)``: ``(Q, k)`` similarities and
    row indices (``-1`` where an approximate index found fewer), best first.

    ``backend`` "numpy" (exact), "faiss" (the ``faiss_kind`` index, built once and kept in
    ``cache[key]``), or "auto": numpy, except faiss HNSW from :data:`FAISS_AUTO_MIN_ENTRIES`
    rows when ``faiss_kind`` is "hnsw" and faiss is installed.
    """
    use_faiss = backend == "faiss" or (backend == "auto" and faiss_kind == "hnsw"
                                       and len(emb) >= FAISS_AUTO_MIN_ENTRIES and faiss_available())
    if not use_faiss:
        return topk_numpy(q, emb, k)
    index = cache.get(key)
    if index is None:
        index = cache[key] = build_faiss_index(faiss_kind, emb, k)
    return index.search(np.ascontiguousarray(q), k)
