"""SYSU-MM01 and RegDB readers that reproduce the community protocol (``docs/evaluation-protocol.md``).

SYSU-MM01 official layout::

    root/cam1 .. cam6/<4-digit id>/<4-digit n>.jpg
    root/exp/train_id.txt, val_id.txt, test_id.txt     (one line of comma-separated ids)

Visible cameras 1, 2, 4, 5; infrared cameras 3, 6.

- :func:`sysu_query`: every infrared image of the test ids, order sorted ids -> cameras
  [3, 6] -> sorted file names (same for both modes).
- :func:`sysu_gallery`: ``random.seed(trial)``, then for every sorted id and every camera of
  the mode ([1, 2, 4, 5] all-search, [1, 2] indoor-search) with a folder,
  ``random.choice(sorted(file names))``. This call order is what makes galleries identical
  to the ones behind published numbers.
- :func:`sysu_train`: train + val ids merged, labels 0..N-1 by sorted id.

RegDB: ``root/idx/{train,test}_{visible,thermal}_{split}.txt`` with lines
``<relative path> <label>``, ``split`` in 1..10.

Paths are returned as absolute strings ``os.path.join(abspath(root), <relative path>)``: a
root given relative to the working directory is resolved once, here. Only image files
(``.jpg``, ``.jpeg``, ``.png``, ``.bmp``: the protocol's own filter, deliberately narrower than
``spot_edge.imageio.IMAGE_SUFFIXES``) are listed, so side files never shift a gallery draw.

:func:`check_sysu_test_set` and :func:`missing_images` let the evaluation refuse an incomplete
test set (the protocol would otherwise silently drop the queries of identities it cannot match).
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

__all__ = [
    "SYSU_VISIBLE_CAMERAS",
    "SYSU_INFRARED_CAMERAS",
    "SYSU_GALLERY_CAMERAS",
    "IMAGE_EXTENSIONS",
    "DatasetLayoutError",
    "ImageList",
    "TrainSet",
    "read_sysu_ids",
    "check_sysu_test_set",
    "missing_images",
    "sysu_query",
    "sysu_gallery",
    "sysu_train",
    "regdb_list",
    "regdb_train",
    "regdb_test",
    "hold_out_identities",
]

SYSU_VISIBLE_CAMERAS = (1, 2, 4, 5)
SYSU_INFRARED_CAMERAS = (3, 6)
SYSU_GALLERY_CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
REGDB_SPLITS = range(1, 11)
REGDB_MODALITIES = ("visible", "thermal")


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder does not have the expected layout (missing or partial tree)."""


class ImageList(NamedTuple):
    """Images of one side of a protocol: ``paths`` (list of str), ``pids`` (N,) int64,
    ``cams`` (N,) int64. For training lists ``pids`` holds the 0-based labels."""

    paths: list[str]
    pids: np.ndarray
    cams: np.ndarray


@dataclass(frozen=True)
class TrainSet:
    """A cross-modality training set.

    Attributes:
        visible: visible images, ``pids`` are labels 0..num_classes-1.
        infrared: infrared (or thermal) images, same label space.
        label_to_id: original dataset identity of every label (sorted ascending).
    """

    visible: ImageList
    infrared: ImageList
    label_to_id: tuple[int, ...]

    @property
    def num_classes(self) -> int:
        return len(self.label_to_id)


def _subset(images: ImageList, keep: np.ndarray, remap: np.ndarray) -> ImageList:
    rows = np.flatnonzero(keep[images.pids])
    return ImageList([images.paths[i] for i in rows], remap[images.pids[rows]], images.cams[rows])


def hold_out_identities(train: TrainSet, count: int, seed: int = 0) -> tuple[TrainSet, TrainSet]:
    """Split a training set by identity: ``(trained, held_out)``.

    ``count`` identities are drawn with ``numpy.random.default_rng(seed)`` (without
    replacement, from the sorted labels); neither part shares an identity with the other, and
    each is relabelled 0..N-1 in the order of its original identities (``label_to_id``).
    At least two identities must remain to train on.
    """
    total = train.num_classes
    if not 0 < count <= total - 2:
        raise ValueError(f"cannot hold out {count} of {total} training identities as a validation split "
                         f"(1..{max(total - 2, 0)} possible: at least 2 must remain to train on)")
    chosen = np.zeros(total, dtype=bool)
    chosen[np.random.default_rng(seed).choice(total, size=count, replace=False)] = True
    parts = []
    for keep in (~chosen, chosen):
        remap = np.full(total, -1, dtype=np.int64)
        remap[keep] = np.arange(int(keep.sum()))
        ids = tuple(train.label_to_id[label] for label in np.flatnonzero(keep))
        parts.append(TrainSet(_subset(train.visible, keep, remap), _subset(train.infrared, keep, remap), ids))
    return parts[0], parts[1]


# --------------------------------------------------------------------------- SYSU-MM01


def _check_root(root: str | os.PathLike) -> str:
    """``root`` as an absolute path (relative to the working directory), checked to be a folder."""
    if not os.fspath(root):
        raise DatasetLayoutError("no dataset root given")
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise DatasetLayoutError(f"dataset root {root} does not exist or is not a folder")
    return root


def _examples(items: list[str], count: int = 5) -> str:
    return ", ".join(items[:count]) + (" ..." if len(items) > count else "")


def missing_images(paths: list[str], what: str) -> None:
    """Raise :class:`DatasetLayoutError` naming how many of ``paths`` (the images a protocol
    lists) are not files, with a few examples."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DatasetLayoutError(f"{len(missing)} of the {len(paths)} {what} images do not exist, e.g. "
                                 f"{_examples(missing, 3)}; the dataset is incomplete (interrupted copy?)")


def _check_mode(mode: str) -> tuple[int, ...]:
    if mode not in SYSU_GALLERY_CAMERAS:
        raise ValueError(f"unknown SYSU-MM01 search mode {mode!r}; use 'all' or 'indoor'")
    return SYSU_GALLERY_CAMERAS[mode]


def read_sysu_ids(root: str | os.PathLike, split: str, allow_empty: bool = False) -> list[int]:
    """Identities listed in ``root/exp/<split>_id.txt`` (``split`` in train, val, test)."""
    root = _check_root(root)
    path = os.path.join(root, "exp", f"{split}_id.txt")
    if not os.path.isfile(path):
        raise DatasetLayoutError(
            f"missing {path}: a SYSU-MM01 root needs exp/train_id.txt, exp/val_id.txt and exp/test_id.txt "
            "(the official release ships them; `spot-edge make-synthetic` writes them too)"
        )
    with open(path, encoding="utf-8") as f:
        text = f.read()
    tokens = [t for t in re.split(r"[,\s]+", text) if t]
    try:
        ids = [int(t) for t in tokens]
    except ValueError as exc:
        raise ValueError(f"{path} must hold comma-separated integer ids: {exc}") from None
    if not ids and not allow_empty:
        raise ValueError(f"{path} lists no identities")
    return ids


def _image_names(folder: str) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))


def _id_folder(root: str, cam: int, pid: int) -> str:
    return os.path.join(root, f"cam{cam}", f"{pid:04d}")


def _require_cameras(root: str, cams: tuple[int, ...]) -> None:
    missing = [c for c in cams if not os.path.isdir(os.path.join(root, f"cam{c}"))]
    if missing:
        raise DatasetLayoutError(
            f"{root} is not a complete SYSU-MM01 tree: missing camera folders "
            f"{', '.join(f'cam{c}' for c in missing)}"
        )


def _to_list(paths: list[str], pids: list[int], cams: list[int]) -> ImageList:
    return ImageList(list(paths), np.asarray(pids, dtype=np.int64), np.asarray(cams, dtype=np.int64))


def sysu_query(root: str | os.PathLike, mode: str = "all", ids: Sequence[int] | None = None) -> ImageList:
    """SYSU-MM01 query set: all infrared images of the test ids.

    Order: sorted ids, then cameras [3, 6], then sorted file names. ``mode`` ("all" or
    "indoor") is validated but does not change the query set. ``ids``: other identities than
    the test list's (a validation split of training identities), same rules.

    Returns:
        ``(paths, pids, cams)``.
    """
    root = _check_root(root)
    _check_mode(mode)
    _require_cameras(root, SYSU_INFRARED_CAMERAS)
    paths, pids, cams = [], [], []
    for pid in sorted(read_sysu_ids(root, "test") if ids is None else ids):
        for cam in SYSU_INFRARED_CAMERAS:
            folder = _id_folder(root, cam, pid)
            if os.path.isdir(folder):
                for name in _image_names(folder):
                    paths.append(os.path.join(folder, name))
                    pids.append(pid)
                    cams.append(cam)
    if not paths:
        raise DatasetLayoutError(f"no infrared test images under {root} (cam3/<id>, cam6/<id> for exp/test_id.txt)")
    return _to_list(paths, pids, cams)


def sysu_gallery(root: str | os.PathLike, mode: str = "all", trial: int = 0,
                 ids: Sequence[int] | None = None) -> ImageList:
    """SYSU-MM01 single-shot visible gallery of one trial.

    ``random.seed(trial)``; then for each sorted test id, for each camera of the mode
    ([1, 2, 4, 5] for "all", [1, 2] for "indoor") whose ``cam<c>/<id>`` folder exists,
    one ``random.choice`` over the sorted image names. A folder without images is skipped
    (``random.choice`` on it would consume no random numbers either). Python's global
    ``random`` state is saved and restored around the draw. ``ids``: other identities than the
    test list's (a validation split of training identities), same rules.

    Returns:
        ``(paths, pids, cams)``.
    """
    root = _check_root(root)
    cameras = _check_mode(mode)
    _require_cameras(root, cameras)
    ids = sorted(read_sysu_ids(root, "test") if ids is None else ids)
    saved_state = random.getstate()
    try:
        random.seed(trial)
        paths, pids, cams = [], [], []
        for pid in ids:
            for cam in cameras:
                folder = _id_folder(root, cam, pid)
                if os.path.isdir(folder):
                    names = _image_names(folder)
                    if not names:
                        continue
                    paths.append(os.path.join(folder, random.choice(names)))
                    pids.append(pid)
                    cams.append(cam)
    finally:
        random.setstate(saved_state)
    if not paths:
        raise DatasetLayoutError(f"no visible test images under {root} for mode {mode!r}")
    return _to_list(paths, pids, cams)


def check_sysu_test_set(root: str | os.PathLike) -> None:
    """Refuse an incomplete SYSU-MM01 test set: every test identity needs an infrared image
    (cam3/cam6, its queries) and a visible image (cam1/2/4/5, its gallery candidates).

    The protocol skips queries without a true match in the gallery, so a test identity whose
    visible folders are missing would silently disappear from the figures (the same check the
    training set gets in :func:`sysu_train`). Indoor search legitimately has identities without
    cam1/cam2 images; it is their absence from every visible camera that is refused.

    Raises:
        DatasetLayoutError: naming how many identities are incomplete, with a few examples.
    """
    root = _check_root(root)
    incomplete = []
    for pid in sorted(set(read_sysu_ids(root, "test"))):
        for side, cameras in (("infrared", SYSU_INFRARED_CAMERAS), ("visible", SYSU_VISIBLE_CAMERAS)):
            folders = [_id_folder(root, cam, pid) for cam in cameras]
            if not any(os.path.isdir(f) and _image_names(f) for f in folders):
                incomplete.append(f"{pid:04d} ({side})")
    if incomplete:
        raise DatasetLayoutError(
            f"{len(incomplete)} test identities of {root} have no image of one modality: {_examples(incomplete)}. "
            "The evaluation would silently drop their queries; the tree is incomplete (interrupted copy?)")


def sysu_train(root: str | os.PathLike) -> TrainSet:
    """SYSU-MM01 training set: train + val ids merged, labels 0..N-1 by sorted id.

    Images are listed per sorted id, cameras in ascending order, sorted file names.

    Raises:
        DatasetLayoutError: missing id files or camera folders, or an identity with no
            image of one modality (cross-modality batches need both).
    """
    root = _check_root(root)
    _require_cameras(root, SYSU_VISIBLE_CAMERAS + SYSU_INFRARED_CAMERAS)
    ids = sorted(set(read_sysu_ids(root, "train")) | set(read_sysu_ids(root, "val", allow_empty=True)))
    label_of = {pid: label for label, pid in enumerate(ids)}
    sides: dict[str, tuple[list, list, list]] = {"visible": ([], [], []), "infrared": ([], [], [])}
    incomplete: list[str] = []
    for pid in ids:
        for side, cameras in (("visible", SYSU_VISIBLE_CAMERAS), ("infrared", SYSU_INFRARED_CAMERAS)):
            paths, labels, cams = sides[side]
            before = len(paths)
            for cam in cameras:
                folder = _id_folder(root, cam, pid)
                if os.path.isdir(folder):
                    for name in _image_names(folder):
                        paths.append(os.path.join(folder, name))
                        labels.append(label_of[pid])
                        cams.append(cam)
            if len(paths) == before:
                incomplete.append(f"{pid:04d} ({side})")
    if incomplete:
        raise DatasetLayoutError(
            f"{len(incomplete)} training identities of {root} have no image of one modality: {_examples(incomplete, 10)}. "
            "The tree is incomplete (interrupted copy or extraction?)"
        )
    return TrainSet(
        visible=_to_list(*sides["visible"]),
        infrared=_to_list(*sides["infrared"]),
        label_to_id=tuple(ids),
    )


# --------------------------------------------------------------------------- RegDB


def _check_split(split: int) -> int:
    if int(split) not in REGDB_SPLITS:
        raise ValueError(f"RegDB split must be 1..10, got {split}")
    return int(split)


def regdb_list(root: str | os.PathLike, split: int, part: str, modality: str) -> ImageList:
    """One RegDB index file ``idx/{part}_{modality}_{split}.txt``.

    Args:
        part: "train" or "test".
        modality: "visible" or "thermal".

    Returns:
        ``(paths, labels, cams)`` in file order; ``cams`` is 1 for visible, 2 for thermal.
    """
    root = _check_root(root)
    split = _check_split(split)
    if part not in ("train", "test"):
        raise ValueError(f"RegDB part must be 'train' or 'test', got {part!r}")
    if modality not in REGDB_MODALITIES:
        raise ValueError(f"RegDB modality must be 'visible' or 'thermal', got {modality!r}")
    path = os.path.join(root, "idx", f"{part}_{modality}_{split}.txt")
    if not os.path.isfile(path):
        raise DatasetLayoutError(f"missing RegDB index file {path} (expected idx/{{train,test}}_{{visible,thermal}}_{{1..10}}.txt)")
    paths, labels = [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(f"{path}:{lineno}: expected '<relative path> <label>', got {line!r}")
            try:
                labels.append(int(parts[1]))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: label {parts[1]!r} is not an integer") from None
            paths.append(os.path.join(root, parts[0]))
    if not paths:
        raise ValueError(f"{path} lists no images")
    cam = 1 if modality == "visible" else 2
    return _to_list(paths, labels, [cam] * len(paths))


def regdb_train(root: str | os.PathLike, split: int) -> TrainSet:
    """RegDB training set of one split; labels are remapped to 0..N-1 by sorted label."""
    visible = regdb_list(root, split, "train", "visible")
    thermal = regdb_list(root, split, "train", "thermal")
    ids = sorted(set(visible.pids.tolist()) | set(thermal.pids.tolist()))
    missing = sorted(set(visible.pids.tolist()) ^ set(thermal.pids.tolist()))
    if missing:
        raise DatasetLayoutError(f"RegDB split {split}: identities {missing[:10]} are in only one modality")
    remap = np.zeros(max(ids) + 1, dtype=np.int64)
    remap[ids] = np.arange(len(ids))
    return TrainSet(
        visible=ImageList(visible.paths, remap[visible.pids], visible.cams),
        infrared=ImageList(thermal.paths, remap[thermal.pids], thermal.cams),
        label_to_id=tuple(ids),
    )


def regdb_test(root: str | os.PathLike, split: int, direction: str = "visible-to-thermal") -> tuple[ImageList, ImageList]:
    """RegDB ``(query, gallery)`` of one split.

    ``direction`` "visible-to-thermal" (query visible, gallery thermal) or
    "thermal-to-visible". The query side goes through its own modality path when embedded.
    """
    visible = regdb_list(root, split, "test", "visible")
    thermal = regdb_list(root, split, "test", "thermal")
    if direction == "visible-to-thermal":
        return visible, thermal
    if direction == "thermal-to-visible":
        return thermal, visible
    raise ValueError(f"unknown RegDB direction {direction!r}; use 'visible-to-thermal' or 'thermal-to-visible'")
