"""Accuracy of a backend against the PyTorch fp32 reference (``spot-edge parity``).

Two measures:

- per image: cosine similarity between the candidate's and the reference's embedding (both are
  L2-normalised, so it is their dot product), and the largest absolute difference;
- on a labelled set (``labels.csv``, see :mod:`spot_edge.backends.image_folder`): R-1, mAP and
  mINP of query-vs-gallery retrieval with each backend's embeddings
  (:func:`spot_edge.metrics.evaluate`) and their change.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spot_edge.backends.base import Embedder


def embedding_agreement(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Cosine similarity (mean, min, 1st percentile) and max abs difference of two ``(N, D)`` arrays."""
    reference = np.asarray(reference, np.float32)
    candidate = np.asarray(candidate, np.float32)
    if reference.shape != candidate.shape:
        raise ValueError(f"embeddings differ in shape: reference {reference.shape}, candidate {candidate.shape}")
    if reference.shape[0] == 0:
        raise ValueError("no embeddings to compare")
    ref = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    cand = candidate / np.maximum(np.linalg.norm(candidate, axis=1, keepdims=True), 1e-12)
    cos = (ref * cand).sum(axis=1)
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "cosine_p01": float(np.percentile(cos, 1)), "max_abs_diff": float(np.abs(reference - candidate).max()),
            "num_images": int(reference.shape[0])}


def retrieval_metrics(embeddings: np.ndarray, files: list[str], labels: dict[str, dict[str, str]],
                      protocol: str = "regdb") -> dict[str, float]:
    """R-1 / mAP / mINP of the labelled query-vs-gallery split (percent)."""
    from spot_edge.metrics import evaluate

    index = {f: i for i, f in enumerate(files)}
    missing = [f for f in labels if f not in index]
    if missing:
        raise ValueError(f"labels.csv names files that are not in the folder: {missing[:5]}")
    query = [f for f, row in labels.items() if row["split"] == "query"]
    gallery = [f for f, row in labels.items() if row["split"] == "gallery"]
    if not query or not gallery:
        raise ValueError("labels.csv needs at least one query and one gallery image")
    q = embeddings[[index[f] for f in query]]
    g = embeddings[[index[f] for f in gallery]]
    distmat = 1.0 - q @ g.T
    as_int = lambda files_, key: np.asarray([int(labels[f][key]) for f in files_])  # noqa: E731
    result = evaluate(distmat, as_int(query, "pid"), as_int(gallery, "pid"), as_int(query, "camid"),
                      as_int(gallery, "camid"), protocol=protocol, max_rank=max(1, min(20, len(gallery))))
    return {"R1": 100.0 * float(result["cmc"][0]), "mAP": 100.0 * result["mAP"], "mINP": 100.0 * result["mINP"]}


def embed_by_modality(embedder: Embedder, images: np.ndarray, heatmaps: np.ndarray,
                      modalities: list[str]) -> np.ndarray:
    """Embed images whose modality differs per image, keeping their order."""
    out = np.zeros((images.shape[0], embedder.embedding_dim), np.float32)
    modalities_arr = np.asarray(modalities)
    for modality in sorted(set(modalities)):
        rows = np.flatnonzero(modalities_arr == modality)
        out[rows] = embedder.embed(images[rows], heatmaps[rows], modality)
    return out


def parity_report(reference: Embedder, candidate: Embedder, images: np.ndarray, heatmaps: np.ndarray,
                  modalities: str | list[str], files: list[str] | None = None,
                  labels: dict[str, dict[str, str]] | None = None, protocol: str = "regdb") -> dict[str, Any]:
    """Compare ``candidate`` with ``reference`` on the same inputs; see the module docstring."""
    if reference.embedding_dim != candidate.embedding_dim:
        raise ValueError(f"embedding widths differ: reference {reference.embedding_dim}, candidate "
                         f"{candidate.embedding_dim}: they come from different models")
    if reference.config_fingerprint and candidate.config_fingerprint and \
            reference.config_fingerprint != candidate.config_fingerprint:
        raise ValueError(f"reference and candidate come from different configurations (fingerprints "
                         f"{reference.config_fingerprint} vs {candidate.config_fingerprint})")
    reference.preprocessing.check_matches(candidate.preprocessing, f"{candidate.name} backend")
    if isinstance(modalities, str):
        modalities = [modalities] * images.shape[0]
    if labels is not None and files is not None:
        modalities = [labels[f]["modality"] if f in labels else m for f, m in zip(files, modalities)]
    ref = embed_by_modality(reference, images, heatmaps, modalities)
    cand = embed_by_modality(candidate, images, heatmaps, modalities)
    report: dict[str, Any] = {"reference": reference.describe(), "candidate": candidate.describe(),
                              "agreement": embedding_agreement(ref, cand)}
    if labels is not None:
        if files is None:
            raise ValueError("labels need the file names of the images")
        before = retrieval_metrics(ref, files, labels, protocol)
        after = retrieval_metrics(cand, files, labels, protocol)
        report["retrieval"] = {"protocol": protocol, "reference": before, "candidate": after,
                               "change": {k: after[k] - before[k] for k in before}}
    return report
