"""Top-k retrievals for a few queries (e.g. infrared) against a gallery (e.g. visible).

A row per query: the query crop, then its k nearest gallery crops by cosine similarity, each
framed green (same identity) or red (another identity) and captioned with its similarity.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from spot_edge.metrics import l2_normalize
from spot_edge.visualize.common import add_border, add_caption, as_bgr_image, grid, resize_tile, write_png

CORRECT = (0, 170, 0)      # BGR green
WRONG = (0, 0, 220)        # BGR red
QUERY = (200, 120, 0)      # BGR blue


def rank_gallery(query_embeddings: np.ndarray, gallery_embeddings: np.ndarray, k: int = 5
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Cosine top-k: ``(Q, D), (G, D) -> indices (Q, k), similarities (Q, k)`` best first."""
    q = np.asarray(query_embeddings, np.float32)
    g = np.asarray(gallery_embeddings, np.float32)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"query and gallery embeddings must be (Q, D) and (G, D); got {q.shape} and {g.shape}")
    if g.shape[0] == 0:
        raise ValueError("the gallery is empty")
    k = int(min(max(1, k), g.shape[0]))
    sim = l2_normalize(q) @ l2_normalize(g).T
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return top, np.take_along_axis(sim, top, axis=1)


def retrieval_panel(query_images: Sequence, query_ids: Sequence[int], query_embeddings: np.ndarray,
                    gallery_images: Sequence, gallery_ids: Sequence[int], gallery_embeddings: np.ndarray,
                    k: int = 5, tile: tuple[int, int] = (128, 64), border: int = 4) -> np.ndarray:
    """The top-k picture (``(H, W, 3)`` uint8 BGR). Images are arrays or file paths."""
    query_ids = np.asarray(query_ids)
    gallery_ids = np.asarray(gallery_ids)
    if len(query_images) != len(query_ids) or len(query_images) != len(query_embeddings):
        raise ValueError(f"queries: {len(query_images)} images, {len(query_ids)} ids, "
                         f"{len(query_embeddings)} embeddings (must agree)")
    if len(gallery_images) != len(gallery_ids) or len(gallery_images) != len(gallery_embeddings):
        raise ValueError(f"gallery: {len(gallery_images)} images, {len(gallery_ids)} ids, "
                         f"{len(gallery_embeddings)} embeddings (must agree)")
    if len(query_images) == 0:
        raise ValueError("no queries to show")
    top, sims = rank_gallery(query_embeddings, gallery_embeddings, k)
    header = max(12, tile[0] // 9)
    rows = []
    for qi in range(len(query_images)):
        q = add_border(resize_tile(as_bgr_image(query_images[qi]), tile), QUERY, border)
        row = [add_caption(q, f"query id {query_ids[qi]}", header)]
        for rank, (gi, s) in enumerate(zip(top[qi], sims[qi]), start=1):
            hit = gallery_ids[gi] == query_ids[qi]
            g = add_border(resize_tile(as_bgr_image(gallery_images[gi]), tile), CORRECT if hit else WRONG, border)
            row.append(add_caption(g, f"#{rank} {s:.2f}", header, colour=CORRECT if hit else WRONG))
        rows.append(row)
    return grid(rows)


def save_retrieval_panel(path: str | os.PathLike, *args, **kwargs) -> Path:
    """:func:`retrieval_panel` written as a PNG; returns the path."""
    return write_png(path, retrieval_panel(*args, **kwargs))
