"""A synthetic cross-modality person ReID dataset in the SYSU-MM01 layout.

Person-like figures (:mod:`.synthetic_identity` for who they are, :mod:`.synthetic_render` for
how one image of them is drawn) are written to disk (``root``)::

    cam1..cam6/<4-digit id>/<4-digit n>.jpg
    exp/train_id.txt, exp/val_id.txt, exp/test_id.txt
    keypoints/cam<c>/<4-digit id>.json   {"image_size": [H, W], "keypoint_names": [...],
                                          "keypoints": {"0001.jpg": [[[x, y, v] x 18]], ...}}
    synthetic.json                      generator settings (written last)

Every image is a pure function of ``(seed, camera, id, n)``: generation is deterministic and
independent of order or worker count.

Writing is all or nothing: the set is generated in a hidden temporary folder beside ``root``
(``.<name>.<random>.partial``) and renamed into place at the end, so ``root`` is always either
absent, a complete set, or what it was before. The target rules (``force``):

- a missing or empty folder is written;
- a folder holding a synthetic set (its ``synthetic.json`` written by this generator) is
  refused unless ``force``, which replaces the whole old tree (nothing of it stays mixed in);
- any other non-empty folder is refused even with ``force``: it is not ours to delete;
- a symbolic link is refused (replacing it would replace the link, not the folder).

A killed run may leave its hidden ``.partial`` folder behind; it is never read and can be deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from spot_edge.atomic import atomic_write_json, fsync_dir
from spot_edge.errors import SpotEdgeError
from spot_edge.pose.skeleton import KEYPOINT_NAMES, NUM_KEYPOINTS
from spot_edge.training.synthetic_identity import INFRARED_CAMERAS, VISIBLE_CAMERAS, make_identity
from spot_edge.training.synthetic_render import render_person

__all__ = [
    "SyntheticConfig",
    "SyntheticTargetError",
    "generate_sysu_like",
    "is_synthetic_set",
    "check_synthetic_target",
    "load_keypoints",
    "keypoints_for_image",
]

GENERATOR = "spot_edge.training.synthetic_dataset"
GENERATOR_VERSION = 2
SUMMARY = "synthetic.json"


class SyntheticTargetError(SpotEdgeError, FileExistsError):
    """The output folder of :func:`generate_sysu_like` may not be written (or replaced)."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of :func:`generate_sysu_like` (all stored in ``synthetic.json``).

    Attributes:
        num_train, num_val, num_test: identities of each split (ids 1..N, split at random).
        images_per_camera: inclusive range of images per (identity, camera) folder.
        camera_presence: probability that an identity appears in a given camera (at least
            one visible and one infrared camera always).
        height, width: saved image size.
        supersample: internal drawing scale (anti-aliasing).
        jpeg_quality: JPEG quality of the saved images.
        seed: master seed.
    """

    num_train: int = 120
    num_val: int = 20
    num_test: int = 60
    images_per_camera: tuple[int, int] = (4, 8)
    camera_presence: float = 0.75
    height: int = 128
    width: int = 64
    supersample: int = 2
    jpeg_quality: int = 92
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.num_train, self.num_test) < 1 or self.num_val < 0:
            raise ValueError("need at least one training and one test identity (num_val may be 0)")
        if self.num_train + self.num_val + self.num_test > 9999:
            raise ValueError("SYSU-MM01 layout uses 4-digit ids: at most 9999 identities")
        lo, hi = self.images_per_camera
        if not 1 <= lo <= hi <= 9999:
            raise ValueError(f"images_per_camera must be 1 <= lo <= hi <= 9999, got {self.images_per_camera}")
        if not 0.0 < self.camera_presence <= 1.0:
            raise ValueError("camera_presence must be in (0, 1]")
        if self.height < 32 or self.width < 16:
            raise ValueError(f"image size {self.height}x{self.width} is too small (>= 32x16)")
        if self.supersample not in (1, 2, 3, 4):
            raise ValueError("supersample must be 1..4")
        if not 0 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be 0..100, got {self.jpeg_quality}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        object.__setattr__(self, "images_per_camera", (int(lo), int(hi)))


# --------------------------------------------------------------------------- writing


def _split_ids(config: SyntheticConfig) -> tuple[list[int], list[int], list[int]]:
    total = config.num_train + config.num_val + config.num_test
    ids = np.random.default_rng([config.seed, 104729]).permutation(np.arange(1, total + 1))
    train = sorted(int(i) for i in ids[: config.num_train])
    val = sorted(int(i) for i in ids[config.num_train: config.num_train + config.num_val])
    test = sorted(int(i) for i in ids[config.num_train + config.num_val:])
    return train, val, test


def _write_file(path: str, data: bytes) -> None:
    # Plain writes: the whole tree is made in a temporary folder and renamed into place at the
    # end (the atomic step, :func:`_replace_tree`); per-file temporary names would add nothing.
    with open(path, "wb") as f:
        f.write(data)


def _write_identity(args: tuple[SyntheticConfig, str, int]) -> int:
    config, root, pid = args
    ident = make_identity(pid, config.seed, config.camera_presence)
    count_rng = np.random.default_rng([config.seed, 31337, pid])
    written = 0
    for cam in ident.cameras:
        n_images = int(count_rng.integers(config.images_per_camera[0], config.images_per_camera[1] + 1))
        folder = os.path.join(root, f"cam{cam}", f"{pid:04d}")
        os.makedirs(folder, exist_ok=True)
        entries: dict[str, Any] = {}
        for n in range(1, n_images + 1):
            rng = np.random.default_rng([config.seed, cam, pid, n])
            image, kp = render_person(ident, cam, rng, config.height, config.width, config.supersample)
            name = f"{n:04d}.jpg"
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
            if not ok:
                raise RuntimeError(f"OpenCV could not encode {folder}/{name}")
            _write_file(os.path.join(folder, name), buf.tobytes())
            entries[name] = np.round(kp, 2).tolist()
            written += 1
        kp_dir = os.path.join(root, "keypoints", f"cam{cam}")
        os.makedirs(kp_dir, exist_ok=True)
        doc = {"image_size": [config.height, config.width], "keypoint_names": list(KEYPOINT_NAMES), "keypoints": entries}
        _write_file(os.path.join(kp_dir, f"{pid:04d}.json"), json.dumps(doc).encode())
    return written


def _write_tree(root: str, config: SyntheticConfig, workers: int,
                progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    for cam in VISIBLE_CAMERAS + INFRARED_CAMERAS:
        os.makedirs(os.path.join(root, f"cam{cam}"), exist_ok=True)
    train, val, test = _split_ids(config)
    os.makedirs(os.path.join(root, "exp"), exist_ok=True)
    for name, ids in (("train", train), ("val", val), ("test", test)):
        _write_file(os.path.join(root, "exp", f"{name}_id.txt"), (",".join(str(i) for i in ids) + "\n").encode())
    all_ids = sorted(train + val + test)
    jobs = [(config, root, pid) for pid in all_ids]
    total = 0
    if workers <= 1:
        for i, job in enumerate(jobs, 1):
            total += _write_identity(job)
            if progress:
                progress(i, len(jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for i, n in enumerate(pool.map(_write_identity, jobs, chunksize=4), 1):
                total += n
                if progress:
                    progress(i, len(jobs))
    summary = {
        "generator": GENERATOR, "version": GENERATOR_VERSION,
        "config": asdict(config), "num_images": total, "num_ids": len(all_ids),
        "train_ids": train, "val_ids": val, "test_ids": test,
    }
    atomic_write_json(os.path.join(root, SUMMARY), summary, indent=1)
    return summary


def is_synthetic_set(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds a set written by this generator (its ``synthetic.json``)."""
    path = os.path.join(os.fspath(folder), SUMMARY)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("generator") == GENERATOR


def check_synthetic_target(root: str | os.PathLike, force: bool = False) -> None:
    """Raise :class:`SyntheticTargetError` when ``root`` may not be written (or, with ``force``,
    replaced) by :func:`generate_sysu_like`; see the module docstring for the rules."""
    root = Path(os.path.abspath(os.fspath(root)))
    if os.path.islink(root):
        raise SyntheticTargetError(f"{root} is a symbolic link; give the folder itself (or a new folder)")
    if not root.exists():
        return
    if not root.is_dir():
        raise SyntheticTargetError(f"{root} exists and is not a folder")
    if not any(root.iterdir()):
        return
    if is_synthetic_set(root):
        if force:
            return
        raise SyntheticTargetError(f"{root} already holds a synthetic set; use --force to replace it "
                                   "(the old tree is deleted), or choose another folder")
    raise SyntheticTargetError(f"{root} is not empty and is not a synthetic set; refusing to write there, "
                               "even with --force (its contents would be deleted): choose an empty or new folder")


def _replace_tree(new: Path, root: Path) -> None:
    """Rename the finished tree ``new`` to ``root``, replacing (and deleting) what was there."""
    old = None
    if root.exists():
        old = root.with_name(f".{root.name}.{uuid.uuid4().hex[:8]}.replaced")
        os.rename(root, old)
    os.rename(new, root)
    fsync_dir(root.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def generate_sysu_like(root: str | os.PathLike, config: SyntheticConfig = SyntheticConfig(), workers: int = 1,
                       progress: Callable[[int, int], None] | None = None, force: bool = False) -> dict[str, Any]:
    """Write a synthetic dataset in the SYSU-MM01 layout under ``root``.

    Args:
        root: output folder (absolute, or relative to the working directory): missing or empty,
            or, with ``force``, an earlier synthetic set (replaced entirely).
        config: generator settings.
        workers: processes to use (output is identical for any value).
        progress: optional callback ``(identities_done, identities_total)``.
        force: replace an earlier synthetic set at ``root``.

    Returns:
        Summary dict: ``num_images``, ``num_ids``, id splits and the config.

    Raises:
        SyntheticTargetError: ``root`` may not be written (see the module docstring).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    root = Path(os.path.abspath(os.fspath(root)))
    check_synthetic_target(root, force)
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = root.with_name(f".{root.name}.{uuid.uuid4().hex[:8]}.partial")
    partial.mkdir()
    try:
        summary = _write_tree(str(partial), config, workers, progress)
        check_synthetic_target(root, force)  # nothing appeared meanwhile that may not be replaced
        _replace_tree(partial, root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return summary


# --------------------------------------------------------------------------- reading


def load_keypoints(root: str | os.PathLike) -> dict[str, np.ndarray]:
    """All ground-truth keypoints of a synthetic tree: ``{"cam1/0001/0001.jpg": (P, 18, 3)}``."""
    root = os.path.abspath(os.fspath(root))
    kp_root = os.path.join(root, "keypoints")
    if not os.path.isdir(kp_root):
        raise FileNotFoundError(f"{kp_root} does not exist: {root} has no ground-truth keypoints "
                                "(only synthetic sets written by `make-synthetic` have them)")
    out: dict[str, np.ndarray] = {}
    for cam_dir in sorted(os.listdir(kp_root)):
        if not os.path.isdir(os.path.join(kp_root, cam_dir)):
            continue
        for fname in sorted(os.listdir(os.path.join(kp_root, cam_dir))):
            if not fname.endswith(".json"):
                continue
            path = os.path.join(kp_root, cam_dir, fname)
            try:
                with open(path, encoding="utf-8") as f:
                    doc = json.load(f)
                for name, kp in doc["keypoints"].items():
                    arr = np.asarray(kp, dtype=np.float32)
                    if arr.ndim != 3 or arr.shape[1:] != (NUM_KEYPOINTS, 3):
                        raise ValueError(f"entry {name!r} has shape {arr.shape}, expected (P, 18, 3)")
                    out[f"{cam_dir}/{fname[:-5]}/{name}"] = arr
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
                raise ValueError(f"corrupt keypoint file {path}: {exc}") from None
    return out


def keypoints_for_image(root: str | os.PathLike, image_path: str | os.PathLike) -> np.ndarray:
    """Keypoints ``(P, 18, 3)`` of one image of a synthetic tree (path absolute or relative to
    ``root``; only its last three parts ``cam<c>/<id>/<name>`` are used)."""
    root = os.path.abspath(os.fspath(root))
    rel = os.path.relpath(os.path.join(root, os.fspath(image_path)), root).replace(os.sep, "/")
    cam, pid, name = rel.split("/")[-3:]
    path = os.path.join(root, "keypoints", cam, f"{pid}.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no keypoint file {path} for image {rel}")
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if name not in doc.get("keypoints", {}):
        raise KeyError(f"{path} has no keypoints for {name}")
    return np.asarray(doc["keypoints"][name], dtype=np.float32)
