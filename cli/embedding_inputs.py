"""Embedding inputs shared by ``run``, ``gallery`` and ``match``: the model, crops folders, embedding files.

Embedding files (``--embeddings``):

- ``.npy``: ``(N, D)`` float embeddings, as written by ``spot-edge embed``, with its sidecar
  ``<file>.npy.json`` (``files``, ``modality``, and the model: ``backend`` as
  ``Embedder.describe()`` writes it, or ``model`` as ``ModelIdentity.to_dict()``);
- ``.npz``: ``embeddings`` ``(N, D)`` plus optional ``identities``, ``modalities``, ``cameras``,
  ``files`` (``N`` strings each) and ``model`` (one string: ``ModelIdentity.to_json()``).

What a file says about its model is checked against the gallery's model (see
:mod:`spot_edge.gallery.identity`); a file that says nothing is checked for its dimension only,
with a warning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from spot_edge.cli.common import CliError, user_path
from spot_edge.errors import InputError
from spot_edge.modality import check_modality

if TYPE_CHECKING:  # numpy and the gallery are imported when a command runs (fast --help)
    import numpy as np

    from spot_edge.gallery.identity import ModelIdentity

__all__ = ["load_embedder", "check_modality_option", "embed_image_folder", "EmbeddingFile", "load_embedding_file",
           "identities_from"]

_NPZ_LISTS = ("identities", "modalities", "cameras", "files")


def load_embedder(model, backend: str, device: str, batch: Optional[int] = None):
    """The SPOT embedder of ``--model``: a checkpoint, an ONNX export, TensorRT engine(s) or a
    bundle (a path as the user typed it), or a loaded ``Bundle``."""
    from spot_edge.backends import create_embedder, resolve_backend
    from spot_edge.engines.bundle import Bundle

    if not model:
        raise CliError("give the SPOT model with --model (a checkpoint, an ONNX export, TensorRT engine(s) or a "
                       "bundle from spot-edge export)")
    source = model if isinstance(model, Bundle) else str(user_path(model))
    runs_engine = resolve_backend(source, backend) == "tensorrt"
    options = {"max_batch": batch} if batch and not runs_engine else {}  # engines: batch from their profiles
    return create_embedder(source, backend=backend, device=device, **options)


def check_modality_option(modality: str, option: str = "--modality") -> str:
    """``modality`` if it is one, else a one-line usage error naming the option."""
    try:
        return check_modality(modality)
    except InputError:
        raise CliError(f"{option} must be visible or infrared, got {modality!r}") from None


def embed_image_folder(folder: Path, embedder, modality: str, pose_weights: Optional[Path]):
    """Person crops of a folder -> ``(N, D)`` embeddings, the file names and ``labels.csv`` rows.

    Pose maps come from ``<image>.npy`` beside each image (heatmaps or keypoints, see
    :mod:`spot_edge.image_folder`), or from the OpenPose network run on each crop
    (``--pose-weights``).
    """
    import numpy as np

    from spot_edge.image_folder import load_image_folder, read_labels

    if pose_weights is None:
        data = load_image_folder(folder, embedder.preprocessing, getattr(embedder, "num_pose_maps", 56))
        return embedder.embed(data.images, data.heatmaps, modality), data.files, data.labels
    from spot_edge.imageio import list_images, read_image
    from spot_edge.pipeline.pose_sources import OpenPoseSource, Person, PoseResult
    from spot_edge.pipeline.stages import crop_frame

    pose = OpenPoseSource.from_weights(pose_weights, max_height=None)
    images, heatmaps, files = [], [], []
    for path in list_images(folder):
        image = read_image(path)  # (H, W, 3) uint8 BGR; 16-bit images refused
        maps = pose.estimator(image)[0].float().cpu().numpy()
        h, w = image.shape[:2]
        whole = PoseResult(people=[Person(box=np.array([0, 0, w, h], np.float32))], maps=maps, stride=8.0)
        im, hm = crop_frame(image, whole, embedder.preprocessing)
        images.append(im)
        heatmaps.append(hm)
        files.append(path.name)
    emb = embedder.embed(np.concatenate(images), np.concatenate(heatmaps), modality)
    return emb, files, read_labels(folder)


@dataclass
class EmbeddingFile:
    """What an embedding file holds: ``embeddings (N, D)`` float32 and what it says about them."""

    path: Path
    embeddings: np.ndarray
    files: list[str] | None = None
    identities: list[str] | None = None
    modalities: list[str] | None = None
    cameras: list[str] | None = None
    model: ModelIdentity | None = None

    @property
    def names(self) -> list[str]:
        """A name per row (its file, else ``#<row>``)."""
        return self.files or [f"#{i}" for i in range(len(self.embeddings))]


def load_embedding_file(path: Path) -> EmbeddingFile:
    """Read a ``.npy`` (+ sidecar) or ``.npz`` embedding file (see the module docstring); every
    problem is one clear :class:`InputError` naming the file."""
    import numpy as np

    from spot_edge.gallery.identity import ModelIdentity

    if not path.is_file():
        raise FileNotFoundError(f"embedding file not found: {path}")
    lists: dict[str, list[str]] = {}
    model = None
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                if "embeddings" not in data:
                    raise InputError(f"{path} has no 'embeddings' array (has {sorted(data.files)})")
                emb = data["embeddings"]
                for key in _NPZ_LISTS:
                    if key in data:
                        lists[key] = [str(v) for v in np.atleast_1d(data[key]).tolist()]
                if "model" in data:
                    text = data["model"]
                    if text.ndim != 0 or text.dtype.kind != "U":
                        raise InputError(f"{path}: 'model' must be one string (ModelIdentity JSON)")
                    model = ModelIdentity.from_json(str(text), f"{path}: model")
        except (ValueError, OSError, EOFError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{path} is not a readable .npz file of arrays ({exc})") from None
    elif path.suffix == ".npy":
        try:
            emb = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path} is not a readable .npy file of numbers ({exc})") from None
        lists, model = _read_sidecar(path, len(emb) if getattr(emb, "ndim", 0) else 0)
    else:
        raise InputError(f"{path}: embedding files are .npy (from `spot-edge embed`) or .npz")
    if not isinstance(emb, np.ndarray) or emb.dtype.kind not in "fiu":
        raise InputError(f"{path} holds {getattr(emb, 'dtype', type(emb).__name__)} values; expected float embeddings")
    if emb.ndim != 2 or emb.shape[0] == 0 or emb.shape[1] == 0:
        raise InputError(f"{path} holds shape {emb.shape}; expected (N, D) embeddings with N, D >= 1")
    for key, values in lists.items():
        if len(values) != len(emb):
            raise InputError(f"{path}: {len(values)} {key} for {len(emb)} embeddings")
    for m in lists.get("modalities", []):
        if m not in ("visible", "infrared"):
            raise InputError(f"{path}: unknown modality {m!r} (use visible or infrared)")
    if model is not None and model.embedding_dim and model.embedding_dim != emb.shape[1]:
        raise InputError(f"{path} holds {emb.shape[1]}-d embeddings but says its model gives {model.embedding_dim}-d")
    return EmbeddingFile(path, np.asarray(emb, np.float32), lists.get("files"), lists.get("identities"),
                         lists.get("modalities"), lists.get("cameras"), model)


def _read_sidecar(path: Path, n: int) -> tuple[dict[str, list[str]], ModelIdentity | None]:
    """``files``/``modalities`` and the model of a ``.npy``'s ``.npy.json`` (``spot-edge embed``)."""
    from spot_edge.gallery.identity import ModelIdentity

    sidecar = path.with_name(path.name + ".json")
    if not sidecar.is_file():
        return {}, None
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{sidecar} is not valid JSON ({exc})") from None
    if not isinstance(info, dict):
        raise InputError(f"{sidecar} must hold a JSON object")
    lists: dict[str, list[str]] = {}
    if "files" in info:
        if not isinstance(info["files"], list):
            raise InputError(f"{sidecar}: 'files' must be a list of names")
        lists["files"] = [str(f) for f in info["files"]]
    if "modality" in info:
        lists["modalities"] = [str(info["modality"])] * n
    model = None
    if isinstance(info.get("model"), dict):
        model = ModelIdentity.from_dict(info["model"], f"{sidecar}: model")
    elif isinstance(info.get("backend"), dict):  # Embedder.describe(): fingerprint, D, input size
        backend = info["backend"]
        size = backend.get("input_size")
        pre = {"height": size[0], "width": size[1]} if isinstance(size, list) and len(size) == 2 else {}
        model = ModelIdentity.from_dict({"config_fingerprint": backend.get("config_fingerprint"),
                                         "embedding_dim": backend.get("embedding_dim"), "preprocessing": pre},
                                        f"{sidecar}: backend")
    return lists, model


def identities_from(source: EmbeddingFile | None, labels, identity: Optional[str], files: list[str] | None,
                    n: int) -> list[str]:
    """Who each of ``n`` rows is: ``--identity``, else the file's identities, else ``labels.csv``."""
    if identity is not None:
        if not identity.strip():
            raise CliError("--identity must not be empty")
        return [identity] * n
    if source is not None and source.identities:
        return source.identities
    if labels and files:
        missing = [f for f in files if f not in labels]
        if missing:
            raise InputError(f"labels.csv has no row for {missing[:3]}")
        return [labels[f]["pid"] for f in files]
    raise CliError("say who this is: --identity NAME, or a labels.csv (file,pid,...) beside the images, or "
                   "'identities' in the .npz")
