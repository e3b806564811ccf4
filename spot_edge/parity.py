"""Accuracy of deployable artefacts against the PyTorch fp32 reference (``spot-edge parity``).

For each artefact (fp32 / fp16 / int8 ONNX graphs, TensorRT engines: any :class:`Embedder`):

- embedding agreement with the reference on the same inputs: cosine similarity per image (both
  are L2-normalised; min, mean) and the largest absolute difference;
- the retrieval metrics (R-1, mAP, mINP, %) each artefact reaches on a protocol, beside the
  reference's: the synthetic set's test split or a SYSU-MM01 root (:func:`protocol_parity`, the
  community protocol of ``spot_edge.training.evaluation``), a RegDB root, or a labelled folder of
  crops (:func:`folder_parity`, ``labels.csv``).

:class:`ParityReport` holds one row per embedder (the reference first) and renders as a table
(:meth:`ParityReport.table`) and JSON (:meth:`ParityReport.to_dict`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from spot_edge.backends.base import Embedder
from spot_edge.metrics import l2_normalize

__all__ = ["ParityRow", "ParityReport", "embedding_agreement", "retrieval_metrics", "embed_by_modality",
           "ProtocolEmbedding", "protocol_parity", "folder_parity", "DATASETS"]

DATASETS = ("sysu", "regdb")
METRICS = ("R-1", "mAP", "mINP")


def embedding_agreement(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Cosine similarity (mean, min, 1st percentile) and max abs difference of two ``(N, D)`` arrays."""
    reference = np.asarray(reference, np.float32)
    candidate = np.asarray(candidate, np.float32)
    if reference.shape != candidate.shape:
        raise ValueError(f"embeddings differ in shape: reference {reference.shape}, candidate {candidate.shape}")
    if reference.shape[0] == 0:
        raise ValueError("no embeddings to compare")
    cos = (l2_normalize(reference) * l2_normalize(candidate)).sum(axis=1)
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "cosine_p01": float(np.percentile(cos, 1)), "max_abs_diff": float(np.abs(reference - candidate).max()),
            "num_images": int(reference.shape[0])}


@dataclass
class ParityRow:
    """One embedder: its description, its agreement with the reference (None for the reference
    itself) and ``{protocol: {"R-1", "mAP", "mINP"}}`` in percent."""

    name: str
    backend: dict[str, Any]
    agreement: dict[str, float] | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class ParityReport:
    """Rows for the reference and each candidate on one set of inputs."""

    source: str
    rows: list[ParityRow]

    @property
    def reference(self) -> ParityRow:
        return self.rows[0]

    @property
    def candidates(self) -> list[ParityRow]:
        return self.rows[1:]

    def min_cosine(self) -> float:
        """The lowest per-image cosine of any candidate (1.0 without candidates)."""
        return min((r.agreement["cosine_min"] for r in self.candidates if r.agreement), default=1.0)

    def to_dict(self) -> dict[str, Any]:
        ref = self.reference.metrics
        return {"source": self.source, "reference": self.reference.name, "rows": [
            {"name": r.name, "backend": r.backend, "agreement": r.agreement, "metrics": r.metrics,
             "change": {p: {k: v[k] - ref[p][k] for k in v} for p, v in r.metrics.items() if p in ref}
             if r is not self.reference else None}
            for r in self.rows]}

    def table(self) -> str:
        """A Markdown table: cosine to the reference, then R-1 / mAP / mINP per protocol (%)."""
        protocols = list(self.reference.metrics)
        header = ["artefact", "cosine min", "cosine mean"] + [f"{p} {m}" for p in protocols for m in METRICS]
        lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        for row in self.rows:
            a = row.agreement
            cells = [row.name, f"{a['cosine_min']:.5f}" if a else "reference", f"{a['cosine_mean']:.5f}" if a else ""]
            cells += [f"{row.metrics[p][m]:.2f}" if p in row.metrics else "" for p in protocols for m in METRICS]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


# ------------------------------------------------------------------------- protocol parity
class ProtocolEmbedding:
    """An embedding function ``(paths, modality) -> (N, D)`` for ``spot_edge.training.evaluation``
    over any :class:`Embedder`, memoised per ``(path, modality)`` (galleries repeat images)."""

    def __init__(self, embedder: Embedder, inputs, batch: int = 64) -> None:
        self.embedder = embedder
        self.inputs = inputs  # a spot_edge.dataset_inputs.DatasetInputs
        self.batch = int(batch)
        self.memo: dict[tuple[str, str], np.ndarray] = {}

    def __call__(self, paths: Sequence[str], modality: str) -> np.ndarray:
        todo = [p for p in dict.fromkeys(paths) if (p, modality) not in self.memo]
        for start in range(0, len(todo), self.batch):
            chunk = todo[start:start + self.batch]
            images, heatmaps = self.inputs(chunk)
            for p, e in zip(chunk, self.embedder.embed(images, heatmaps, modality)):
                self.memo[(p, modality)] = e
        if not paths:
            return np.zeros((0, self.embedder.embedding_dim), np.float32)
        return np.stack([self.memo[(p, modality)] for p in paths])


def _check_compatible(reference: Embedder, candidates: Mapping[str, Embedder]) -> None:
    for name, cand in candidates.items():
        if reference.embedding_dim != cand.embedding_dim:
            raise ValueError(f"{name}: embedding width {cand.embedding_dim}, the reference has "
                             f"{reference.embedding_dim}: they come from different models")
        if reference.config_fingerprint and cand.config_fingerprint and \
                reference.config_fingerprint != cand.config_fingerprint:
            raise ValueError(f"{name} comes from another configuration than the reference (fingerprints "
                             f"{cand.config_fingerprint} vs {reference.config_fingerprint})")
        reference.preprocessing.check_matches(cand.preprocessing, f"{name} ({cand.name} backend)")


def _percent(result: Mapping[str, Any]) -> dict[str, float]:
    return {m: 100.0 * float(result[m]) for m in METRICS}


def _run_protocol(embed, root, dataset: str, mode: str, trials: int, regdb_split: int) -> dict[str, dict[str, float]]:
    from spot_edge.training.evaluation import evaluate_regdb, evaluate_sysu

    if dataset == "sysu":
        return {f"SYSU-MM01 {mode}-search": _percent(evaluate_sysu(embed, root, mode, range(trials)))}
    results = evaluate_regdb(lambda split: embed, root, splits=[regdb_split])
    return {f"RegDB {direction}": _percent(r) for direction, r in results.items()}


def protocol_parity(reference: Embedder, candidates: Mapping[str, Embedder], root: str | os.PathLike, *,
                    dataset: str = "sysu", mode: str = "all", trials: int = 10, regdb_split: int = 1,
                    heatmap_cache: str | os.PathLike | None = None, batch: int = 64,
                    reference_name: str = "pytorch fp32") -> ParityReport:
    """Every candidate against the reference on a dataset's test protocol.

    Args:
        reference: the PyTorch fp32 embedder of the checkpoint the artefacts came from.
        candidates: ``{name: embedder}`` (e.g. ``{"onnx int8": ...}``), in table order.
        root: a SYSU-MM01-layout root (the official set or ``spot-edge make-synthetic``: its test
            split) or, with ``dataset="regdb"``, a RegDB root.
        mode: SYSU search mode, ``"all"`` or ``"indoor"``; ``trials``: galleries (1..10).
        regdb_split: the RegDB split (1..10).
        heatmap_cache: pose-map cache of the test images (default: the root's, else keypoints).
    """
    from spot_edge.dataset_inputs import DatasetInputs

    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    if not 1 <= trials <= 10:
        raise ValueError(f"trials must be 1..10, got {trials}")
    _check_compatible(reference, candidates)
    inputs = DatasetInputs(root, reference.preprocessing, heatmap_cache)
    ref_embed = ProtocolEmbedding(reference, inputs, batch)
    rows = [ParityRow(reference_name, reference.describe(),
                      metrics=_run_protocol(ref_embed, root, dataset, mode, trials, regdb_split))]
    keys = list(ref_embed.memo)
    for name, cand in candidates.items():
        embed = ProtocolEmbedding(cand, inputs, batch)
        metrics = _run_protocol(embed, root, dataset, mode, trials, regdb_split)
        agreement = embedding_agreement(np.stack([ref_embed.memo[k] for k in keys]),
                                        np.stack([embed.memo[k] for k in keys]))
        rows.append(ParityRow(name, cand.describe(), agreement, metrics))
    where = f"{dataset} root {root} ({mode}-search, {trials} trials)" if dataset == "sysu" else \
        f"regdb root {root} (split {regdb_split})"
    return ParityReport(f"{where}; pose maps: {inputs.source}", rows)


# ------------------------------------------------------------------------- folder parity
def retrieval_metrics(embeddings: np.ndarray, files: list[str], labels: dict[str, dict[str, str]],
                      protocol: str = "regdb") -> dict[str, float]:
    """R-1 / mAP / mINP (percent) of the labelled query-vs-gallery split of a crop folder."""
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
    # identities are free text (labels.csv is also the gallery's enrolment file): numbered here
    _, pids = np.unique([labels[f]["pid"] for f in query + gallery], return_inverse=True)
    camids = np.asarray([int(labels[f]["camid"]) for f in query + gallery])
    nq = len(query)
    result = evaluate(1.0 - q @ g.T, pids[:nq], pids[nq:], camids[:nq], camids[nq:],
                      protocol=protocol, max_rank=max(1, min(20, len(gallery))))
    return {"R-1": 100.0 * float(result["cmc"][0]), "mAP": 100.0 * result["mAP"], "mINP": 100.0 * result["mINP"]}


def embed_by_modality(embedder: Embedder, images: np.ndarray, heatmaps: np.ndarray,
                      modalities: list[str]) -> np.ndarray:
    """Embed images whose modality differs per image, keeping their order."""
    out = np.zeros((images.shape[0], embedder.embedding_dim), np.float32)
    modalities_arr = np.asarray(modalities)
    for modality in sorted(set(modalities)):
        rows = np.flatnonzero(modalities_arr == modality)
        out[rows] = embedder.embed(images[rows], heatmaps[rows], modality)
    return out


def folder_parity(reference: Embedder, candidates: Mapping[str, Embedder], images: np.ndarray,
                  heatmaps: np.ndarray, modalities: str | list[str], files: list[str] | None = None,
                  labels: dict[str, dict[str, str]] | None = None, protocol: str = "regdb",
                  source: str = "images", reference_name: str = "pytorch fp32") -> ParityReport:
    """Every candidate against the reference on given inputs (a crop folder: ``labels.csv`` rows
    override the modality per image and give the retrieval metrics)."""
    _check_compatible(reference, candidates)
    if isinstance(modalities, str):
        modalities = [modalities] * images.shape[0]
    if labels is not None:
        if files is None:
            raise ValueError("labels need the file names of the images")
        modalities = [labels[f]["modality"] if f in labels else m for f, m in zip(files, modalities)]
    name = "labelled query/gallery"

    def metrics_of(embeddings):
        return {name: retrieval_metrics(embeddings, files, labels, protocol)} if labels is not None else {}

    ref = embed_by_modality(reference, images, heatmaps, modalities)
    rows = [ParityRow(reference_name, reference.describe(), metrics=metrics_of(ref))]
    for cand_name, cand in candidates.items():
        out = embed_by_modality(cand, images, heatmaps, modalities)
        rows.append(ParityRow(cand_name, cand.describe(), embedding_agreement(ref, out), metrics_of(out)))
    return ParityReport(source, rows)
