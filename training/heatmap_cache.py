"""Pose heatmaps per image, built once and stored compactly beside a manifest.

SPOT's structure branch reads 56 OpenPose maps per image (18 keypoint confidence maps and 38
part-affinity-field channels, :mod:`spot_edge.pose.skeleton`). Computing
them on the fly (a 42 GMAC pose network per crop) would dominate training, so they are built
once per dataset and stored as one memory-mapped ``.npy`` array ``(N, 56, h, w)``:

- ``uint8`` (default): keypoint maps ``round(255 v)``, PAF channels ``128 + round(127 v)``
  (128 means 0, like the OpenPose binary's PNG files, but symmetric so 0 decodes exactly);
- ``float16``: the values themselves.

``<cache>/manifest.json`` ties entry ``i`` to its image: path relative to the dataset root,
byte size, modification time and SHA-256, the image size, and how the maps were made
(``source``). Image paths given to the cache are absolute, or relative to the dataset root
(the manifest's own keys); the dataset readers of :mod:`spot_edge.training.datasets` return
absolute paths, so a dataset root typed relative to the working directory works as well.
:meth:`HeatmapCache.verify` reports missing images, changed images (stale entries) and images
without an entry; :meth:`HeatmapCache.get` refuses nothing silently: a path without an entry
raises :class:`HeatmapCacheError` naming the path and what to do.

Sources:

- :func:`keypoint_source`: rendered from keypoints (``spot_edge.pose.render``), e.g. the
  ground truth of the synthetic set (:func:`spot_edge.training.synthetic_dataset.load_keypoints`);
- :func:`openpose_png_source`: the OpenPose binary's ``<name>_pose_heatmaps.png`` files;
- :func:`network_source`: any callable ``image (H, W, 3) uint8 BGR -> (56, h', w')`` maps,
  e.g. the pose network of ``spot_edge.pose.network``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import cv2
import numpy as np

from spot_edge.atomic import atomic_path, atomic_write_json
from spot_edge.errors import SpotEdgeError
from spot_edge.hashing import sha256_file
from spot_edge.imageio import read_image
from spot_edge.paths import relative_to_root
from spot_edge.pose.skeleton import NUM_KEYPOINTS, NUM_MAPS

__all__ = [
    "HeatmapCacheError",
    "HeatmapCache",
    "CacheProblem",
    "build_heatmap_cache",
    "encode_maps",
    "decode_maps",
    "keypoint_source",
    "openpose_png_source",
    "network_source",
]

MANIFEST = "manifest.json"
DATA = "heatmaps.npy"
FORMAT = "spot-edge/heatmap-cache-v2"  # v2: SHA-256 fingerprints (v1: SHA-1)
DTYPES = ("uint8", "float16")

# Map source: relative image path, absolute image path -> (56, h, w) float32 at the cache size.
MapSource = Callable[[str, str, tuple[int, int]], np.ndarray]


class HeatmapCacheError(SpotEdgeError, RuntimeError):
    """The heatmap cache is missing, corrupt, stale, or lacks an entry."""


@dataclass(frozen=True)
class CacheProblem:
    """One finding of :meth:`HeatmapCache.verify`: ``kind`` in missing-image, stale, no-entry."""

    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind} ({self.detail})"


# --------------------------------------------------------------------------- encoding


def encode_maps(maps: np.ndarray, dtype: str = "uint8") -> np.ndarray:
    """``(..., 56, h, w)`` float maps -> stored representation of ``dtype``."""
    if dtype == "float16":
        return maps.astype(np.float16)
    if dtype != "uint8":
        raise ValueError(f"heatmap cache dtype must be one of {DTYPES}, got {dtype!r}")
    out = np.empty(maps.shape, np.uint8)
    out[..., :NUM_KEYPOINTS, :, :] = np.clip(np.rint(maps[..., :NUM_KEYPOINTS, :, :] * 255.0), 0, 255)
    out[..., NUM_KEYPOINTS:, :, :] = np.clip(np.rint(maps[..., NUM_KEYPOINTS:, :, :] * 127.0) + 128.0, 1, 255)
    return out


def decode_maps(stored: np.ndarray) -> np.ndarray:
    """Stored maps (uint8 or float16) -> float32 ``(..., 56, h, w)``."""
    if stored.dtype == np.float16:
        return stored.astype(np.float32)
    if stored.dtype != np.uint8:
        raise HeatmapCacheError(f"unexpected stored heatmap dtype {stored.dtype}")
    out = stored.astype(np.float32)
    out[..., :NUM_KEYPOINTS, :, :] *= 1.0 / 255.0
    out[..., NUM_KEYPOINTS:, :, :] = (out[..., NUM_KEYPOINTS:, :, :] - 128.0) * (1.0 / 127.0)
    return out


# --------------------------------------------------------------------------- sources


def _image_size(path: str) -> tuple[int, int]:
    """``(H, W)`` of an image, read by the project's one image reader (which also refuses the
    16-bit images training would refuse)."""
    image = read_image(path)
    return int(image.shape[0]), int(image.shape[1])


def keypoint_source(keypoints: Mapping[str, np.ndarray], **render_kwargs: Any) -> MapSource:
    """Render maps from keypoints ``{relative path: (P, 18, 3)}`` in image pixels.

    ``render_kwargs`` go to :func:`spot_edge.pose.render.render_pose_maps` (``sigma``,
    ``paf_width`` in image pixels). Without them, sigma and PAF width scale with the image
    height relative to OpenPose's 288-pixel-high person crops.
    """
    from spot_edge.pose.render import DEFAULT_PAF_WIDTH, DEFAULT_SIGMA, render_pose_maps

    def source(rel: str, path: str, out_size: tuple[int, int]) -> np.ndarray:
        if rel not in keypoints:
            raise HeatmapCacheError(f"no keypoints for {rel}; the keypoint set does not cover this image")
        size = _image_size(path)
        scale = size[0] / 288.0
        kwargs = {"sigma": DEFAULT_SIGMA * scale, "paf_width": DEFAULT_PAF_WIDTH * scale, **render_kwargs}
        return render_pose_maps(keypoints[rel], size, out_size, **kwargs)

    return source


def openpose_png_source(heatmap_root: str | os.PathLike) -> MapSource:
    """Read the OpenPose binary's ``<stem>_pose_heatmaps.png`` files from ``heatmap_root``
    (same relative folders as the images), resized to the cache size."""
    from spot_edge.pose import openpose_png

    heatmap_root = os.fspath(heatmap_root)

    def source(rel: str, path: str, out_size: tuple[int, int]) -> np.ndarray:
        stem = os.path.splitext(rel)[0]
        png = os.path.join(heatmap_root, stem + "_pose_heatmaps.png")
        if not os.path.isfile(png):
            raise HeatmapCacheError(f"OpenPose heatmap file {png} for image {rel} does not exist")
        maps = np.asarray(openpose_png.read_pose_heatmaps(png), dtype=np.float32)
        return _resize_maps(maps, out_size)

    return source


def network_source(predict: Callable[[np.ndarray], Any]) -> MapSource:
    """Maps from a pose network: ``predict(image (H, W, 3) uint8 BGR) -> (56, h', w')``."""

    def source(rel: str, path: str, out_size: tuple[int, int]) -> np.ndarray:
        maps = predict(read_image(path))
        if hasattr(maps, "detach"):
            maps = maps.detach().cpu().numpy()
        maps = np.asarray(maps, dtype=np.float32)
        if maps.ndim == 4 and maps.shape[0] == 1:
            maps = maps[0]
        return _resize_maps(maps, out_size)

    return source


def _resize_maps(maps: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    if maps.ndim != 3 or maps.shape[0] != NUM_MAPS:
        raise HeatmapCacheError(f"pose maps must be ({NUM_MAPS}, h, w), got {maps.shape}")
    if maps.shape[1:] == tuple(out_size):
        return maps
    h, w = out_size
    return np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in maps])


# --------------------------------------------------------------------------- cache


def _fingerprint(path: str, with_hash: bool = True) -> dict[str, Any]:
    st = os.stat(path)
    out: dict[str, Any] = {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    if with_hash:
        out["sha256"] = sha256_file(path)
    return out


def _rel(root: str, path: str | os.PathLike) -> str:
    """The manifest key of ``path``: an absolute path relative to ``root`` (which is absolute),
    a relative path taken as a key already (relative to ``root``), normalised to ``a/b/c.jpg``."""
    path = os.fspath(path)
    if os.path.isabs(path):
        try:
            return relative_to_root(path, root)
        except SpotEdgeError:
            raise HeatmapCacheError(f"image {path} is outside the dataset root {root} of the heatmap cache") from None
    return os.path.normpath(path).replace(os.sep, "/")


def build_heatmap_cache(cache_dir: str | os.PathLike, image_root: str | os.PathLike, images: Iterable[str],
                        source: MapSource, map_size: tuple[int, int], dtype: str = "uint8",
                        source_name: str = "custom", progress: Callable[[int, int], None] | None = None
                        ) -> "HeatmapCache":
    """Compute maps for ``images`` (paths absolute or relative to ``image_root``) and write the cache.

    The data file and the manifest are written to temporary names and renamed at the end, so
    an interrupted build leaves any earlier cache intact.

    Args:
        cache_dir: output folder (``heatmaps.npy`` + ``manifest.json``).
        image_root: dataset root; the manifest stores paths relative to it.
        images: the images to cover.
        source: map source (:func:`keypoint_source`, :func:`openpose_png_source`, :func:`network_source`).
        map_size: ``(h, w)`` of the stored maps (e.g. stride 8 of the network input).
        dtype: "uint8" (default) or "float16".
        source_name: recorded in the manifest.
    """
    if dtype not in DTYPES:
        raise ValueError(f"heatmap cache dtype must be one of {DTYPES}, got {dtype!r}")
    h, w = int(map_size[0]), int(map_size[1])
    if h < 1 or w < 1:
        raise ValueError(f"map_size must be positive, got {map_size}")
    cache_dir, image_root = os.path.abspath(cache_dir), os.path.abspath(image_root)
    rels = sorted(dict.fromkeys(_rel(image_root, p) for p in images))
    if not rels:
        raise ValueError("no images given to build a heatmap cache for")
    missing = [rel for rel in rels if not os.path.isfile(os.path.join(image_root, rel))]
    if missing:
        raise HeatmapCacheError(f"{len(missing)} of {len(rels)} images do not exist under {image_root}, "
                                f"e.g. {', '.join(missing[:3])}")
    entries = []
    # The data file is written under a temporary name and renamed (spot_edge.atomic), then the
    # manifest: an interrupted build leaves any earlier cache intact, and concurrent builders
    # never collide (a reader that sees the new data before the new manifest refuses it as
    # inconsistent; the manifest's count and dtype are checked against the data).
    with atomic_path(os.path.join(cache_dir, DATA)) as tmp_data:
        data = np.lib.format.open_memmap(tmp_data, mode="w+", dtype=np.dtype(dtype),
                                         shape=(len(rels), NUM_MAPS, h, w))
        for i, rel in enumerate(rels):
            path = os.path.join(image_root, rel)
            maps = np.asarray(source(rel, path, (h, w)), dtype=np.float32)
            if maps.shape != (NUM_MAPS, h, w):
                raise HeatmapCacheError(f"map source returned {maps.shape} for {rel}, expected {(NUM_MAPS, h, w)}")
            if not np.all(np.isfinite(maps)):
                raise HeatmapCacheError(f"map source returned NaN/Inf for {rel}")
            data[i] = encode_maps(maps, dtype)
            entries.append({"path": rel, "image_size": list(_image_size(path)), **_fingerprint(path)})
            if progress:
                progress(i + 1, len(rels))
        data.flush()
        del data
    manifest = {"format": FORMAT, "dtype": dtype, "map_size": [h, w], "num_maps": NUM_MAPS,
                "source": source_name, "count": len(rels), "entries": entries}
    atomic_write_json(os.path.join(cache_dir, MANIFEST), manifest, indent=None)
    return HeatmapCache(cache_dir, image_root)


class HeatmapCache:
    """Read access to a built cache (memory-mapped; safe to share with DataLoader workers).

    Args:
        cache_dir: folder with ``heatmaps.npy`` and ``manifest.json``.
        image_root: dataset root the manifest paths are relative to.
    """

    def __init__(self, cache_dir: str | os.PathLike, image_root: str | os.PathLike) -> None:
        self.cache_dir, self.image_root = os.path.abspath(cache_dir), os.path.abspath(image_root)
        manifest_path = os.path.join(self.cache_dir, MANIFEST)
        data_path = os.path.join(self.cache_dir, DATA)
        if not os.path.isfile(manifest_path) or not os.path.isfile(data_path):
            raise HeatmapCacheError(
                f"no heatmap cache in {self.cache_dir} (need {MANIFEST} and {DATA}); build it first, "
                "e.g. `spot-edge build-heatmaps` or spot_edge.training.heatmap_cache.build_heatmap_cache")
        try:
            with open(manifest_path, encoding="utf-8") as f:
                self.manifest = json.load(f)
            self._data = np.load(data_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise HeatmapCacheError(f"heatmap cache {self.cache_dir} is corrupt: {exc}") from None
        found = self.manifest.get("format") if isinstance(self.manifest, dict) else None
        if found == "spot-edge/heatmap-cache-v1":
            raise HeatmapCacheError(f"heatmap cache {self.cache_dir} was built by an older spot-edge ({found}); "
                                    "rebuild it (spot-edge build-heatmaps)")
        if found != FORMAT:
            raise HeatmapCacheError(f"{manifest_path} is not a spot-edge heatmap cache manifest")
        h, w = self.manifest["map_size"]
        expected = (self.manifest["count"], NUM_MAPS, h, w)
        if self._data.shape != expected or str(self._data.dtype) != self.manifest["dtype"]:
            raise HeatmapCacheError(f"heatmap cache {self.cache_dir}: data {self._data.shape} {self._data.dtype} "
                                    f"does not match its manifest {expected} {self.manifest['dtype']}; rebuild it")
        self.entries: list[dict[str, Any]] = self.manifest["entries"]
        self._index = {e["path"]: i for i, e in enumerate(self.entries)}

    @property
    def map_size(self) -> tuple[int, int]:
        return tuple(self.manifest["map_size"])  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, path: str) -> bool:
        try:
            return _rel(self.image_root, path) in self._index
        except HeatmapCacheError:
            return False

    def index_of(self, path: str) -> int:
        rel = _rel(self.image_root, path)
        try:
            return self._index[rel]
        except KeyError:
            raise HeatmapCacheError(f"the heatmap cache {self.cache_dir} has no entry for {rel}; "
                                    "rebuild the cache over the current image list") from None

    def get(self, path: str) -> np.ndarray:
        """``(56, h, w)`` float32 maps of one image (absolute or relative path)."""
        return decode_maps(np.asarray(self._data[self.index_of(path)]))

    def get_batch(self, paths: Sequence[str]) -> np.ndarray:
        """``(B, 56, h, w)`` float32."""
        idx = [self.index_of(p) for p in paths]
        return decode_maps(np.asarray(self._data[idx]))

    def get_by_index(self, indices: Sequence[int]) -> np.ndarray:
        """``(B, 56, h, w)`` float32 maps of entries ``indices`` (see :meth:`index_of`)."""
        return decode_maps(np.asarray(self._data[np.asarray(indices, dtype=np.int64)]))

    def verify(self, images: Iterable[str] | None = None, check_hash: bool = True) -> list[CacheProblem]:
        """Report entries whose image is gone or changed, and ``images`` without an entry.

        An image is stale when its size differs, or its modification time differs and (with
        ``check_hash``) its SHA-1 differs too (a touched but identical file is fine).
        """
        problems: list[CacheProblem] = []
        for e in self.entries:
            path = os.path.join(self.image_root, e["path"])
            if not os.path.isfile(path):
                problems.append(CacheProblem(e["path"], "missing-image", "the image no longer exists"))
                continue
            fp = _fingerprint(path, with_hash=False)
            if fp["bytes"] != e["bytes"]:
                problems.append(CacheProblem(e["path"], "stale", f"size {e['bytes']} -> {fp['bytes']} bytes"))
            elif fp["mtime_ns"] != e["mtime_ns"]:
                if not check_hash or _fingerprint(path)["sha256"] != e.get("sha256"):
                    problems.append(CacheProblem(e["path"], "stale", "content changed since the cache was built"))
        if images is not None:
            for p in images:
                rel = _rel(self.image_root, p)
                if rel not in self._index:
                    problems.append(CacheProblem(rel, "no-entry", "image not in the cache"))
        return problems

    def require_fresh(self, images: Iterable[str] | None = None, check_hash: bool = True) -> None:
        """Raise :class:`HeatmapCacheError` listing the problems :meth:`verify` finds."""
        problems = self.verify(images, check_hash)
        if problems:
            shown = "; ".join(str(p) for p in problems[:5])
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise HeatmapCacheError(f"heatmap cache {self.cache_dir} does not match the images: {shown}{more}. "
                                    "Rebuild the cache.")
