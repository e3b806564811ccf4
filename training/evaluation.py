"""Evaluation runners: SYSU-MM01 all/indoor over 10 trials, RegDB both directions over 10 splits.

An *embedding function* ``embed(paths, modality) -> (N, D)`` numpy array maps images to
retrieval embeddings through the modality path given ("visible" or "infrared"; RegDB's thermal
images go through the infrared path). :class:`ModelEmbedder` builds one from a SPOT model,
:func:`checkpoint_embedder` from a checkpoint file, failing loudly when it is missing (a run
that silently evaluated untrained weights is the classic RegDB mistake).

Before embedding anything, the runners refuse an incomplete test set (protocol images
missing, a SYSU-MM01 test identity without images of one modality): the protocol would
otherwise silently drop queries. The protocol decisions are described in
``docs/evaluation-protocol.md``.

Results are fractions; :func:`format_table` prints percentages like the paper's tables
(R-1, R-10, R-20, mAP, mINP).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from spot_edge.atomic import atomic_write_json
from spot_edge.metrics import cosine_distance, evaluate
from spot_edge.modality import MODALITIES, check_modality
from spot_edge.training.datasets import check_sysu_test_set, missing_images, regdb_test, sysu_gallery, sysu_query

__all__ = [
    "EmbedFn",
    "ModelEmbedder",
    "checkpoint_embedder",
    "evaluate_sysu",
    "evaluate_regdb",
    "evaluate_held_out",
    "format_table",
    "save_results",
    "REGDB_DIRECTIONS",
]

EmbedFn = Callable[[Sequence[str], str], np.ndarray]
REGDB_DIRECTIONS = ("visible-to-thermal", "thermal-to-visible")
# Modality paths (query, gallery) of each direction: RegDB's thermal images use the infrared path.
_REGDB_QUERY_GALLERY_MODALITIES = {"visible-to-thermal": MODALITIES, "thermal-to-visible": MODALITIES[::-1]}
_RANKS = (1, 5, 10, 20)


class ModelEmbedder:
    """Embeddings of a SPOT model, memoised per ``(path, modality)``.

    Args:
        model: a :class:`spot_edge.model.SPOT` (put in eval mode here).
        heatmap_cache: a :class:`~spot_edge.training.heatmap_cache.HeatmapCache` covering the
            test images; required when the configuration reads pose maps.
        batch_size: images per forward pass.
        device: torch device of the model (``spot_edge.device.resolve_device`` rule; default:
            where the model is).
        flip: also embed the mirrored image (and mirrored maps) and average (off in the protocol).
    """

    def __init__(self, model, heatmap_cache=None, batch_size: int = 64, device: str | None = None,
                 flip: bool = False) -> None:
        from spot_edge.device import resolve_device

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.cache = heatmap_cache
        self.batch_size = batch_size
        self.device = resolve_device(device) if device else next(model.parameters()).device
        self.flip = flip
        self.spec = model.config.preprocessing
        self.needs_maps = model.config.needs_pose_maps
        if self.needs_maps and heatmap_cache is None:
            raise ValueError("this model configuration reads pose maps: pass a heatmap cache covering the test images "
                             "(spot-edge evaluate --heatmap-cache DIR; spot-edge build-heatmaps makes one)")
        self._memo: dict[tuple[str, str], np.ndarray] = {}

    def __call__(self, paths: Sequence[str], modality: str) -> np.ndarray:
        check_modality(modality)
        todo = [p for p in dict.fromkeys(paths) if (p, modality) not in self._memo]
        if self.needs_maps:
            self._require_maps(todo)
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            for p, f in zip(chunk, self._embed(chunk, modality)):
                self._memo[(p, modality)] = f
        if not paths:
            return np.zeros((0, self.model.embedding_dim), np.float32)
        return np.stack([self._memo[(p, modality)] for p in paths])

    def _require_maps(self, paths: Sequence[str]) -> None:
        """Refuse, before embedding anything, images the pose-map cache has no maps for."""
        from spot_edge.training.heatmap_cache import HeatmapCacheError

        missing = [p for p in paths if p not in self.cache]
        if missing:
            raise HeatmapCacheError(f"the heatmap cache {self.cache.cache_dir} has no maps for {len(missing)} of "
                                    f"{len(paths)} images, e.g. {', '.join(missing[:3])}; build it over the test "
                                    "images too (spot-edge build-heatmaps)")

    def _embed(self, paths: Sequence[str], modality: str) -> np.ndarray:
        import torch

        from spot_edge.pose.skeleton import flip_pose_maps
        from spot_edge.training.data import read_image

        images = torch.from_numpy(self.spec.batch([read_image(p) for p in paths])).to(self.device)
        maps = None
        if self.needs_maps:
            maps = torch.from_numpy(self.cache.get_batch(paths)).to(self.device)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model(images, maps, modality)
                if self.flip:
                    out = out + self.model(images.flip(-1), flip_pose_maps(maps) if maps is not None else None, modality)
                    out = torch.nn.functional.normalize(out, dim=1)
        finally:
            self.model.train(was_training)
        return out.float().cpu().numpy()


def checkpoint_embedder(checkpoint: str | os.PathLike, heatmap_cache=None, device: str = "cpu",
                        batch_size: int = 64) -> ModelEmbedder:
    """A :class:`ModelEmbedder` of a saved model; ``FileNotFoundError`` when the file is missing."""
    from spot_edge.device import resolve_device
    from spot_edge.model import load_checkpoint

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; refusing to evaluate an untrained model")
    device = resolve_device(device)
    model = load_checkpoint(path, map_location=device)
    return ModelEmbedder(model, heatmap_cache, batch_size=batch_size, device=device)


def _summarise(per_trial: list[dict[str, Any]], max_rank: int) -> dict[str, Any]:
    cmc = np.mean([r["cmc"] for r in per_trial], axis=0)
    out: dict[str, Any] = {f"R-{k}": float(cmc[k - 1]) for k in _RANKS if k <= max_rank}
    out.update({
        "mAP": float(np.mean([r["mAP"] for r in per_trial])),
        "mINP": float(np.mean([r["mINP"] for r in per_trial])),
        "cmc": [float(c) for c in cmc],
        "trials": [{"cmc": [float(c) for c in r["cmc"]], "mAP": r["mAP"], "mINP": r["mINP"],
                    "num_valid_queries": r["num_valid_queries"]} for r in per_trial],
    })
    return out


def evaluate_sysu(embed: EmbedFn, root: str | os.PathLike, mode: str = "all", trials: Iterable[int] = range(10),
                  max_rank: int = 20, ids: Sequence[int] | None = None) -> dict[str, Any]:
    """SYSU-MM01 infrared-to-visible single-shot evaluation, mean over ``trials``.

    Query features are computed once; each trial draws its gallery with ``random.seed(t)``.
    An incomplete test set is refused before anything is embedded (:func:`check_sysu_test_set`).
    ``ids``: evaluate these identities instead of the test list (a validation split of
    training identities, whose images :func:`~spot_edge.training.datasets.sysu_train` checked).
    """
    trials = list(trials)
    if not trials:
        raise ValueError("no trials to evaluate")
    if ids is None:
        check_sysu_test_set(root)
    query = sysu_query(root, mode, ids=ids)
    galleries = [sysu_gallery(root, mode, t, ids=ids) for t in trials]
    q_feat = embed(query.paths, "infrared")
    per_trial = []
    for t, gallery in zip(trials, galleries):
        g_feat = embed(gallery.paths, "visible")
        per_trial.append(evaluate(cosine_distance(q_feat, g_feat), query.pids, gallery.pids, query.cams,
                                  gallery.cams, protocol="sysu", max_rank=max_rank))
    out = _summarise(per_trial, max_rank)
    out.update({"dataset": "sysu", "mode": mode, "num_query": len(query.paths), "trial_ids": trials})
    return out


def evaluate_regdb(embed_for_split: Callable[[int], EmbedFn], root: str | os.PathLike,
                   splits: Iterable[int] = range(1, 11), directions: Sequence[str] = REGDB_DIRECTIONS,
                   max_rank: int = 20) -> dict[str, dict[str, Any]]:
    """RegDB over ``splits``: for each split, ``embed_for_split(split)`` (the model trained on
    that split; it must raise when its checkpoint is missing) embeds both test lists.

    Returns ``{direction: summary}``, means over the splits. The test lists of every split are
    checked first: listed images that do not exist are refused (how many, a few examples).
    """
    per_direction: dict[str, list[dict[str, Any]]] = {d: [] for d in directions}
    splits = list(splits)
    if not splits:
        raise ValueError("no RegDB splits to evaluate")
    for direction in directions:
        if direction not in REGDB_DIRECTIONS:
            raise ValueError(f"unknown RegDB direction {direction!r}; use {' or '.join(REGDB_DIRECTIONS)}")
    for split in splits:
        visible, thermal = regdb_test(root, split, "visible-to-thermal")
        missing_images(visible.paths + thermal.paths, f"RegDB split {split} test")
    for split in splits:
        embed = embed_for_split(split)
        for direction in directions:
            query, gallery = regdb_test(root, split, direction)
            q_mod, g_mod = _REGDB_QUERY_GALLERY_MODALITIES[direction]
            dist = cosine_distance(embed(query.paths, q_mod), embed(gallery.paths, g_mod))
            per_direction[direction].append(evaluate(dist, query.pids, gallery.pids, protocol="regdb", max_rank=max_rank))
    out = {}
    for direction, rows in per_direction.items():
        out[direction] = _summarise(rows, max_rank)
        out[direction].update({"dataset": "regdb", "direction": direction, "splits": splits})
    return out


def evaluate_held_out(embed: EmbedFn, held_out, dataset: str, root: str | os.PathLike,
                      trials: Iterable[int] = range(1), max_rank: int = 20) -> dict[str, Any]:
    """The test protocol's code on a validation split of training identities (``held_out``, a
    :class:`~spot_edge.training.datasets.TrainSet`): SYSU-MM01 all-search over ``trials``
    galleries of those identities; RegDB: their thermal images searched among their visible
    images (RegDB rules). Never reads the test split."""
    if dataset == "sysu":
        out = evaluate_sysu(embed, root, "all", trials, max_rank, ids=list(held_out.label_to_id))
        out["split"] = "validation"
        return out
    query, gallery = held_out.infrared, held_out.visible
    dist = cosine_distance(embed(query.paths, "infrared"), embed(gallery.paths, "visible"))
    out = _summarise([evaluate(dist, query.pids, gallery.pids, protocol="regdb", max_rank=max_rank)], max_rank)
    out.update({"dataset": "regdb", "direction": "thermal-to-visible", "split": "validation"})
    return out


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """Plain-text table (percentages) of ``{row label: summary}``."""
    cols = ("R-1", "R-10", "R-20", "mAP", "mINP")
    width = max([len(k) for k in results] + [10])
    lines = [f"{'':{width}}  " + "  ".join(f"{c:>6}" for c in cols)]
    for label, r in results.items():
        cells = [f"{100 * r[c]:6.2f}" if c in r else f"{'-':>6}" for c in cols]
        lines.append(f"{label:{width}}  " + "  ".join(cells))
    return "\n".join(lines)


def save_results(results: dict[str, Any], path: str | os.PathLike) -> None:
    """Write results as JSON (atomically, ``spot_edge.atomic``)."""
    atomic_write_json(path, results, indent=1)
