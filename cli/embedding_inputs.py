"""Embedding inputs shared by ``run``, ``gallery`` and ``match``: the model, crops folders, embedding files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from spot_edge.cli.common import CliError

__all__ = ["load_embedder", "check_modality_option", "embed_image_folder", "load_embedding_file", "identities_from",
           "MODALITY_HELP"]

MODALITY_HELP = "visible or infrared."


def load_embedder(model: str, backend: str, device: str, batch: Optional[int] = None):
    try:
        from spot_edge.backends import create_embedder
    except ImportError as exc:  # pragma: no cover - the backends package ships with spot-edge
        raise CliError(f"the SPOT backends are unavailable: {exc}") from exc
    if not model:
        raise CliError("give the SPOT model with --model (a checkpoint, an ONNX export or TensorRT engine(s))")
    from spot_edge.backends.artifacts import classify

    runs_engine = backend == "tensorrt" or (backend == "auto" and classify(model) == "engine")
    options = {"max_batch": batch} if batch and not runs_engine else {}  # engines: batch from their profiles
    return create_embedder(model, backend=backend, device=device, **options)


def check_modality_option(modality: str) -> str:
    from spot_edge.gallery import check_modality

    return check_modality(modality)


def embed_image_folder(folder: Path, embedder, modality: str, pose_weights: Optional[Path]):
    """Person crops of a folder -> ``(N, D)`` embeddings, the file names and ``labels.csv`` rows.

    Pose maps come from ``<image>.npy`` beside each image (heatmaps or keypoints, see
    ``spot_edge.backends.image_folder``), or from the OpenPose network run on each crop
    (``--pose-weights``).
    """
    import numpy as np

    from spot_edge.backends.image_folder import list_images, load_image_folder, read_labels

    if pose_weights is None:
        data = load_image_folder(folder, embedder.preprocessing, getattr(embedder, "num_pose_maps", 56))
        return embedder.embed(data.images, data.heatmaps, modality), data.files, data.labels
    import cv2

    from spot_edge.pipeline.pose_sources import OpenPoseSource, Person, PoseResult
    from spot_edge.pipeline.sources import as_bgr_frame
    from spot_edge.pipeline.stages import crop_frame

    pose = OpenPoseSource.from_weights(pose_weights, max_height=None)
    images, heatmaps, files = [], [], []
    for path in list_images(folder):
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(f"cannot read image {path} (corrupt or not an image)")
        image = as_bgr_frame(raw)
        maps = pose.estimator(image)[0].float().cpu().numpy()
        h, w = image.shape[:2]
        whole = PoseResult(people=[Person(box=np.array([0, 0, w, h], np.float32))], maps=maps, stride=8.0)
        im, hm = crop_frame(image, whole, embedder.preprocessing)
        images.append(im)
        heatmaps.append(hm)
        files.append(path.name)
    emb = embedder.embed(np.concatenate(images), np.concatenate(heatmaps), modality)
    return emb, files, read_labels(folder)


def load_embedding_file(path: Path):
    """``(N, D)`` embeddings and per-row metadata from ``.npy`` (+ ``.npy.json`` of ``spot-edge embed``)
    or ``.npz`` (``embeddings`` and optional ``identities``, ``modalities``, ``cameras``)."""
    import numpy as np

    if not path.exists():
        raise FileNotFoundError(f"embedding file not found: {path}")
    meta: dict[str, list] = {}
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "embeddings" not in data:
                raise ValueError(f"{path} has no 'embeddings' array (has {sorted(data.files)})")
            emb = data["embeddings"]
            for key in ("identities", "modalities", "cameras", "files"):
                if key in data:
                    meta[key] = [str(v) for v in data[key].tolist()]
    else:
        emb = np.load(path, allow_pickle=False)
        sidecar = path.with_name(path.name + ".json")
        if sidecar.exists():
            info = json.loads(sidecar.read_text())
            if "files" in info:
                meta["files"] = list(info["files"])
            if "modality" in info:
                meta["modalities"] = [info["modality"]] * len(emb)
    emb = np.asarray(emb, np.float32)
    if emb.ndim != 2:
        raise ValueError(f"{path} holds shape {emb.shape}; expected (N, D) embeddings")
    for key, values in meta.items():
        if len(values) != len(emb):
            raise ValueError(f"{path}: {len(values)} {key} for {len(emb)} embeddings")
    return emb, meta


def identities_from(meta: dict, labels, identity: Optional[str], n: int) -> list[str]:
    if identity:
        return [identity] * n
    if "identities" in meta:
        return meta["identities"]
    if labels and "files" in meta:
        missing = [f for f in meta["files"] if f not in labels]
        if missing:
            raise ValueError(f"labels.csv has no row for {missing[:3]}")
        return [labels[f]["pid"] for f in meta["files"]]
    raise CliError("say who this is: --identity NAME, or a labels.csv (file,pid,...) beside the images, or "
                   "'identities' in the .npz")
