"""Calibration data for INT8 graphs: ``(images, heatmaps)`` batches of one modality.

Two sources, both read without the backends or the engines (both import this module):

- a dataset root in the SYSU-MM01 layout (the official set, or ``spot-edge make-synthetic``):
  images of the **training** split (train + val identities, ``spot_edge.training.datasets.sysu_train``)
  of the graph's modality, with their pose maps (:class:`spot_edge.dataset_inputs.DatasetInputs`:
  the dataset's heatmap cache, or a synthetic set's keypoints rendered as training renders them);
- a folder of crops with pose files (:mod:`spot_edge.image_folder`); with a ``labels.csv`` only the
  crops of the graph's modality are used.

The images are an evenly spaced, deterministic subset (``size`` of them), so two exports from the
same data calibrate identically. :attr:`CalibrationSet.description` says where the data came from;
the exporter records it in the graph's metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from spot_edge.errors import InputError
from spot_edge.hashing import sha256_bytes
from spot_edge.modality import check_modality
from spot_edge.preprocessing import PreprocessSpec

__all__ = ["CalibrationSet", "calibration_set", "DEFAULT_CALIBRATION_SIZE", "DEFAULT_CALIBRATION_BATCH",
           "is_sysu_root"]

DEFAULT_CALIBRATION_SIZE = 128
DEFAULT_CALIBRATION_BATCH = 8


@dataclass
class CalibrationSet:
    """``batches``: ``[(images (B, 3, H, W) float32, heatmaps (B, K_S, Hs, Ws) float32), ...]``;
    ``description``: JSON-able record of the source (kind, path, modality, image count, a
    SHA-256 of the image list)."""

    batches: list[tuple[np.ndarray, np.ndarray]]
    description: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    @property
    def num_images(self) -> int:
        return sum(int(images.shape[0]) for images, _ in self.batches)


def is_sysu_root(path: str | os.PathLike) -> bool:
    """True for a folder in the SYSU-MM01 layout (it has ``exp/train_id.txt``)."""
    return (Path(path) / "exp" / "train_id.txt").is_file()


def calibration_set(source: str | os.PathLike, modality: str, spec: PreprocessSpec, num_pose_maps: int = 56,
                    size: int = DEFAULT_CALIBRATION_SIZE, batch: int = DEFAULT_CALIBRATION_BATCH,
                    heatmap_cache: str | os.PathLike | None = None) -> CalibrationSet:
    """Calibration batches of ``modality`` from ``source`` (a SYSU-layout root or a crop folder).

    Args:
        source: dataset root (absolute, or relative to the working directory) or crop folder.
        modality: the graph's modality: only its images are used.
        spec: the model's preprocessing (input size, normalisation, heatmap size).
        num_pose_maps: K_S.
        size: number of images (at most; fewer when the source holds fewer).
        batch: images per batch.
        heatmap_cache: a heatmap cache folder for a dataset root (default: look in the root).
    """
    check_modality(modality)
    if size < 1 or batch < 1:
        raise InputError(f"calibration size and batch must be at least 1, got size={size}, batch={batch}")
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"calibration data not found: {source}")
    if is_sysu_root(source):
        images, heatmaps, names, kind = _from_sysu_root(source, modality, spec, size, heatmap_cache)
    elif source.is_dir():
        images, heatmaps, names, kind = _from_image_folder(source, modality, spec, num_pose_maps, size)
    else:
        raise InputError(f"calibration data {source} is neither a dataset root in the SYSU-MM01 layout "
                         f"(with exp/train_id.txt) nor a folder of crops with pose files")
    if heatmaps.shape[1:] != (num_pose_maps, *spec.heatmap_size):
        raise InputError(f"calibration pose maps from {source} are {heatmaps.shape[1:]}, the model reads "
                         f"{(num_pose_maps, *spec.heatmap_size)}")
    batches = [(images[i:i + batch], heatmaps[i:i + batch]) for i in range(0, len(images), batch)]
    description = {"kind": kind, "path": str(source), "modality": modality, "images": int(len(images)),
                   "images_sha256": sha256_bytes("\n".join(names).encode())}
    return CalibrationSet(batches, description)


def _evenly(items: list, size: int) -> list:
    """``size`` items spread evenly over ``items`` (all of them when there are fewer)."""
    if len(items) <= size:
        return list(items)
    picks = np.linspace(0, len(items) - 1, size).round().astype(int)
    return [items[i] for i in picks]


def _from_sysu_root(root: Path, modality: str, spec: PreprocessSpec, size: int,
                    heatmap_cache: str | os.PathLike | None):
    from spot_edge.dataset_inputs import DatasetInputs
    from spot_edge.training.datasets import sysu_train

    train = sysu_train(root)
    side = train.visible if modality == "visible" else train.infrared
    paths = _evenly(list(side.paths), size)
    images, heatmaps = DatasetInputs(root, spec, heatmap_cache)(paths)
    names = [os.path.relpath(p, root).replace(os.sep, "/") for p in paths]
    return images, heatmaps, names, "sysu-train"


def _from_image_folder(folder: Path, modality: str, spec: PreprocessSpec, num_pose_maps: int, size: int):
    from spot_edge.image_folder import list_images, load_image_folder, read_labels

    labels = read_labels(folder)
    names = [p.name for p in list_images(folder)]
    if labels is not None:
        names = [n for n in names if n in labels and labels[n]["modality"] == modality]
        if not names:
            raise InputError(f"{folder}/labels.csv lists no {modality} crops to calibrate the {modality} graph")
    data = load_image_folder(folder, spec, num_pose_maps, names=_evenly(names, size))
    return data.images, data.heatmaps, data.files, "image-folder"
