"""The in-memory rows of one modality: embeddings in a growable buffer, with their entries."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from spot_edge.gallery.entries import GalleryEntry

__all__ = ["ModalityRows"]


class ModalityRows:
    """The entries of one modality: a growable ``(capacity, D)`` float32 buffer (amortised appends,
    so the pipeline can add observations one by one), their metadata, and their insertion order
    (a number per entry, to merge the two modalities back into one order)."""

    def __init__(self, dim: int) -> None:
        self.buf = np.zeros((0, dim), np.float32)
        self.n = 0
        self.entries: list[GalleryEntry] = []
        self.order: list[int] = []

    @property
    def emb(self) -> np.ndarray:
        """``(n, D)`` view of the rows in use."""
        return self.buf[:self.n]

    def append(self, x: np.ndarray, entries: list[GalleryEntry], order: Sequence[int]) -> None:
        """Append rows ``x (k, D)`` with their ``k`` entries and order numbers."""
        need = self.n + len(x)
        if need > len(self.buf):
            grown = np.zeros((max(need, 2 * len(self.buf), 64), x.shape[1]), np.float32)
            grown[:self.n] = self.buf[:self.n]
            self.buf = grown
        self.buf[self.n:need] = x
        self.n = need
        self.entries.extend(entries)
        self.order.extend(order)

    def keep(self, mask: np.ndarray) -> None:
        """Keep the rows where ``mask (n,)`` is true."""
        self.buf = np.ascontiguousarray(self.emb[mask])
        self.n = len(self.buf)
        self.entries = [e for e, k in zip(self.entries, mask) if k]
        self.order = [o for o, k in zip(self.order, mask) if k]
