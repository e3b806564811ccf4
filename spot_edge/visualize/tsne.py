"""t-SNE of embeddings coloured by identity and marked by modality, like the paper's Fig. 9.

scikit-learn's :class:`~sklearn.manifold.TSNE` projects the embeddings to 2-D; matplotlib
(Agg canvas, no display needed, no global pyplot state) draws circles for visible and
triangles for infrared samples, one colour per identity.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from spot_edge.atomic import atomic_path
from spot_edge.modality import MODALITIES, check_modality

MODALITY_MARKERS = dict(zip(MODALITIES, ("o", "^")))   # visible: circles, infrared: triangles
SMALL_PROBLEM = 5000   # points below which t-SNE runs single-threaded


def tsne_2d(embeddings: np.ndarray, perplexity: float | None = None, seed: int = 0,
            max_iter: int = 1000) -> np.ndarray:
    """``(N, D)`` embeddings -> ``(N, 2)`` t-SNE coordinates (cosine metric, PCA initialisation).

    ``perplexity`` defaults to ``min(30, (N - 1) / 3)`` (it must stay below N); ``max_iter``
    is the optimisation length (at least 250).
    """
    from sklearn.manifold import TSNE

    x = np.asarray(embeddings, np.float32)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"t-SNE needs a (N, D) array with N >= 3 embeddings; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings contain NaN or Inf")
    n = x.shape[0]
    if perplexity is None:
        perplexity = float(min(30.0, max(1.0, (n - 1) / 3.0)))
    if not 0 < perplexity < n:
        raise ValueError(f"perplexity must be in (0, {n}) for {n} points; got {perplexity}")
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", metric="cosine", random_state=seed,
                max_iter=max(250, int(max_iter)))
    with _small_problem_threads(n):
        return tsne.fit_transform(x).astype(np.float32)


@contextlib.contextmanager
def _small_problem_threads(n: int):
    """One OpenMP/BLAS thread for small inputs: spinning thread pools cost far more than the
    work for a few thousand points (3 s instead of 30 ms on a busy 2-core machine)."""
    if n >= SMALL_PROBLEM:
        yield
        return
    with threadpool_limits(limits=1):
        yield


def _modality_names(modalities: Sequence, n: int) -> list[str]:
    names = []
    for m in modalities:
        if isinstance(m, (int, np.integer)):
            if int(m) not in (0, 1):
                raise ValueError(f"modality codes are 0 (visible) and 1 (infrared); got {m}")
            names.append(MODALITIES[int(m)])
        else:
            names.append(check_modality(str(m) if isinstance(m, np.str_) else m))
    if len(names) != n:
        raise ValueError(f"{len(names)} modalities for {n} embeddings")
    return names


def plot_tsne(embeddings: np.ndarray, identities: Sequence[int], modalities: Sequence,
              path: str | os.PathLike, title: str = "t-SNE of embeddings", points: np.ndarray | None = None,
              figsize: tuple[float, float] = (6.0, 6.0), dpi: int = 100, perplexity: float | None = None,
              seed: int = 0, max_iter: int = 1000) -> Path:
    """Write the t-SNE scatter plot as a PNG of ``figsize * dpi`` pixels; returns the path.

    ``identities``: ``(N,)`` labels (colour); ``modalities``: ``"visible"``/``"infrared"`` or 0/1
    per sample (marker). ``points``: precomputed ``(N, 2)`` coordinates (skips t-SNE);
    ``perplexity``, ``seed``, ``max_iter``: see :func:`tsne_2d`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    x = np.asarray(embeddings)
    ids = np.asarray(identities)
    n = x.shape[0]
    if ids.shape != (n,):
        raise ValueError(f"{ids.shape[0] if ids.ndim else 0} identities for {n} embeddings")
    names = _modality_names(modalities, n)
    coords = tsne_2d(x, perplexity, seed, max_iter) if points is None else np.asarray(points, np.float32)
    if coords.shape != (n, 2):
        raise ValueError(f"points must have shape ({n}, 2); got {coords.shape}")

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"output must be a .png file, got {path}")
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    unique = np.unique(ids)
    cmap = __import__("matplotlib").colormaps["tab20" if len(unique) > 10 else "tab10"]
    colour_of = {pid: cmap(i % cmap.N) for i, pid in enumerate(unique)}
    colours = np.array([colour_of[p] for p in ids])
    for modality, marker in MODALITY_MARKERS.items():
        rows = np.array([m == modality for m in names])
        if rows.any():
            ax.scatter(coords[rows, 0], coords[rows, 1], c=colours[rows], marker=marker, s=28,
                       edgecolors="black", linewidths=0.3)
    handles = [Line2D([], [], marker=mk, linestyle="", color="gray", label=m) for m, mk in MODALITY_MARKERS.items()]
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.set_title(f"{title} ({len(unique)} identities, {n} samples)", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path
