"""Images, pose maps and cross-modality batches for training and evaluation.

- :class:`ImageStore`: decodes images with OpenCV and resizes them to the network input
  (``PreprocessSpec``), optionally all at once into memory (``preload``).
- :class:`TrainBatches`: a map-style dataset whose item ``i`` is batch ``i`` of an epoch plan
  of :class:`~spot_edge.training.sampler.IdentitySampler`, augmented with a generator seeded by
  ``(seed, epoch, i)``: identical whatever the number of DataLoader workers or ranks.
  Use it with ``DataLoader(batch_size=None)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from spot_edge.imageio import read_image  # the project's one image reader (re-exported here)
from spot_edge.modality import MODALITIES, modality_index
from spot_edge.preprocessing import PreprocessSpec
from spot_edge.training.augment import flip_pair, pad_crop_pair, random_erase
from spot_edge.training.config import AugmentConfig
from spot_edge.training.datasets import TrainSet
from spot_edge.training.heatmap_cache import HeatmapCache
from spot_edge.training.sampler import IdentitySampler

__all__ = ["ImageStore", "TrainBatches", "read_image"]


class ImageStore:
    """Images of a path list at network size, ``(height, width, 3)`` uint8 BGR."""

    def __init__(self, paths: Sequence[str], spec: PreprocessSpec, preload: bool = False) -> None:
        self.paths, self.spec = list(paths), spec
        self._images: np.ndarray | None = None
        if preload:
            self._images = np.stack([spec.resize_bgr(read_image(p)) for p in self.paths]) if self.paths else None

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, index: int) -> np.ndarray:
        if self._images is not None:
            return self._images[index]
        return self.spec.resize_bgr(read_image(self.paths[index]))


class TrainBatches(torch.utils.data.Dataset):
    """Augmented cross-modality batches of one epoch for one rank.

    Item ``i`` is the plan's batch ``rank + i * world_size`` as a dict of tensors:
    ``images (2NK, 3, H, W)`` float32 normalised, ``heatmaps (2NK, 56, h, w)`` float32 (absent
    without a cache), ``labels (2NK,)`` int64, ``modality (2NK,)`` int64 (0 visible first half,
    1 infrared second half).
    """

    def __init__(self, train: TrainSet, visible: ImageStore, infrared: ImageStore, sampler: IdentitySampler,
                 epoch: int, augment: AugmentConfig, cache: HeatmapCache | None = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        self.train, self.visible, self.infrared = train, visible, infrared
        self.augment, self.cache, self.seed, self.epoch = augment, cache, seed, epoch
        self.plan = sampler.epoch_plan(epoch)
        per_rank = len(self.plan) // world_size
        if per_rank == 0:
            raise ValueError(f"{len(self.plan)} batches per epoch cannot feed {world_size} ranks")
        self.batch_ids = [rank + i * world_size for i in range(per_rank)]
        self.spec = visible.spec
        self._cache_index = None
        if cache is not None:
            self._cache_index = (np.array([cache.index_of(p) for p in train.visible.paths]),
                                 np.array([cache.index_of(p) for p in train.infrared.paths]))

    def __len__(self) -> int:
        return len(self.batch_ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        b = self.batch_ids[i]
        batch = self.plan[b]
        rng = np.random.default_rng([self.seed, self.epoch, b, 7])
        images, maps = [], []
        for side, store, idx in ((modality_index("visible"), self.visible, batch.visible),
                                 (modality_index("infrared"), self.infrared, batch.infrared)):
            stored = None
            if self._cache_index is not None:
                stored = self.cache.get_by_index(self._cache_index[side][idx])
            for n, j in enumerate(idx):
                img = store.get(int(j))
                m = stored[n] if stored is not None else None
                if rng.random() < self.augment.flip:
                    img, m = flip_pair(img, m)
                img, m = pad_crop_pair(img, m, self.augment.pad, rng)
                images.append(img)
                if m is not None:
                    maps.append(m)
        x = self.spec.normalize(np.stack(images))
        if self.augment.erasing > 0:
            lo, hi = self.augment.erasing_area
            for n in range(len(x)):
                if rng.random() < self.augment.erasing:
                    random_erase(x[n], rng, (lo, hi), fill=self.augment.erasing_fill)
        k = len(batch.labels)
        out = {
            "images": torch.from_numpy(x),
            "labels": torch.from_numpy(np.concatenate([batch.labels, batch.labels])),
            "modality": torch.cat([torch.full((k,), modality_index(m), dtype=torch.long) for m in MODALITIES]),
        }
        if maps:
            out["heatmaps"] = torch.from_numpy(np.ascontiguousarray(np.stack(maps), dtype=np.float32))
        return out
