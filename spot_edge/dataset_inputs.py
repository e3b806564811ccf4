"""Network inputs for images of a dataset root: normalised images and their pose maps.

A dataset root (SYSU-MM01 layout, the synthetic set, RegDB) stores images; the pose maps come from

- a heatmap cache (``spot_edge.training.heatmap_cache``): the one given, else
  ``<root>/heatmap_cache_<h>x<w>_<uint8|float16>`` at the model's map size (what ``spot-edge train``
  and ``build-heatmaps`` write by default);
- else, for a synthetic set, its ground-truth keypoints rendered exactly as training renders them
  (``keypoint_source``).

Used by INT8 calibration (:mod:`spot_edge.calibration_data`) and protocol parity
(:mod:`spot_edge.parity`); it imports neither the backends nor the engines.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from spot_edge.errors import InputError
from spot_edge.imageio import read_image
from spot_edge.preprocessing import PreprocessSpec

__all__ = ["DatasetInputs", "HEATMAP_CACHE_DTYPES"]

HEATMAP_CACHE_DTYPES = ("uint8", "float16")


class DatasetInputs:
    """``inputs(paths) -> (images (N, 3, H, W), heatmaps (N, K_S, Hs, Ws))`` float32 for images of
    ``root`` (absolute paths, as the dataset readers return them).

    Args:
        root: the dataset root.
        spec: the model's preprocessing (input size, normalisation, heatmap size).
        heatmap_cache: a cache folder (default: the root's cache at the map size, else keypoints).
    """

    def __init__(self, root: str | os.PathLike, spec: PreprocessSpec,
                 heatmap_cache: str | os.PathLike | None = None) -> None:
        self.root = Path(root)
        self.spec = spec
        self.source = ""
        self._maps = self._pose_map_source(heatmap_cache)

    def _pose_map_source(self, heatmap_cache) -> Callable[[Sequence[str]], np.ndarray]:
        from spot_edge.training.heatmap_cache import HeatmapCache, HeatmapCacheError, keypoint_source

        h, w = self.spec.heatmap_size
        has_keypoints = (self.root / "keypoints").is_dir()
        folders = [Path(heatmap_cache)] if heatmap_cache else \
            [self.root / f"heatmap_cache_{h}x{w}_{d}" for d in HEATMAP_CACHE_DTYPES]
        for folder in folders:
            if folder.is_dir() or heatmap_cache:
                try:
                    cache = HeatmapCache(folder, self.root)
                except HeatmapCacheError:
                    if heatmap_cache or not has_keypoints:
                        raise
                    continue  # an outdated default cache of a synthetic set: its keypoints give the same maps
                if tuple(cache.map_size) != (h, w):
                    raise InputError(f"heatmap cache {folder} stores {tuple(cache.map_size)} maps, the model reads "
                                     f"{(h, w)}")
                self.source = f"heatmap cache {folder}"
                return cache.get_batch
        if has_keypoints:
            from spot_edge.training.synthetic_dataset import load_keypoints

            render = keypoint_source(load_keypoints(self.root))
            self.source = f"keypoints of {self.root}"

            def rendered(paths: Sequence[str]) -> np.ndarray:
                rels = [os.path.relpath(p, self.root).replace(os.sep, "/") for p in paths]
                return np.stack([render(rel, p, (h, w)) for rel, p in zip(rels, paths)]).astype(np.float32)

            return rendered
        raise FileNotFoundError(f"no pose maps for the images of {self.root}: build a heatmap cache (spot-edge "
                                f"build-heatmaps --root {self.root} --out {self.root}/heatmap_cache_{h}x{w}_uint8) "
                                f"or name one")

    def pose_maps(self, paths: Sequence[str]) -> np.ndarray:
        """``(N, K_S, Hs, Ws)`` float32 pose maps of ``paths``."""
        return np.asarray(self._maps(list(paths)), np.float32)

    def __call__(self, paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        paths = list(paths)
        return self.spec.batch([read_image(p) for p in paths]), self.pose_maps(paths)
