"""``spot-edge visualize``: activation overlays (Fig. 8), part maps, t-SNE (Fig. 9), retrievals.

Inputs: crops from ``--image`` (files or folders) or, with no images, synthetic people
(``--synthetic N`` identities, each seen by a visible and an infrared camera). Pose maps come
from a synthetic tree's ground-truth keypoints (``--keypoints-root``), the OpenPose network
(``--pose-weights``), or the synthetic renderer. Models come from checkpoints; ``--preset``
builds a randomly initialised one (the picture then shows the machinery, not a trained model).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from spot_edge.cli.common import CliApp, CliError, check_range, console, note, optional_user_path, user_path
from spot_edge.imageio import IMAGE_SUFFIXES
from spot_edge.modality import check_modality, modality_index

app = CliApp(help="Pictures: class-activation overlays, part maps, t-SNE, top-k retrievals.", no_args_is_help=True)


# ----------------------------------------------------------------------------- shared helpers


def load_models(checkpoints: List[str], presets: List[str], num_classes: int = 8) -> dict:
    """``{label: SPOT}`` in eval mode from ``[LABEL=]PATH`` checkpoints (paths as the user typed
    them) and random-weight presets."""
    from spot_edge.model import SPOT, load_checkpoint, preset

    models = {}
    for item in checkpoints:
        label, path = "", item
        if "=" in item and not user_path(item).exists():   # LABEL=PATH (a path may hold '=' too)
            label, path = item.split("=", 1)
        path = user_path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        models[label or path.stem] = load_checkpoint(path).eval()
    for name in presets:
        note(f"preset {name!r} has random weights: the picture shows the method, not a trained model")
        models[name] = SPOT(preset(name, num_classes=num_classes)).eval()
    return models


def png_output(out: Path) -> Path:
    """The ``--out`` picture as an absolute path; it must be a .png file (checked before any work)."""
    out = user_path(out)
    if out.suffix.lower() != ".png":
        raise CliError(f"--out must be a .png file, got {out}")
    return out


def image_files(items: List[Path]) -> list[Path]:
    """Image files from files and folders (folders: sorted, recursive)."""
    files: list[Path] = []
    for item in items:
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"image or folder not found: {item}")
    if not files:
        raise CliError(f"no images found in {', '.join(map(str, items))}")
    return files


def pose_maps_for(files: list[Path], crops: list[np.ndarray], map_size: tuple[int, int],
                  keypoints_root: Optional[Path], pose_weights: Optional[Path]) -> Optional[np.ndarray]:
    """``(B, 56, h, w)`` maps for image files: rendered from a synthetic tree's keypoints, or
    estimated by the OpenPose network; None when neither source is given."""
    import cv2

    if keypoints_root is not None:
        from spot_edge.training.synthetic_dataset import keypoints_for_image
        from spot_edge.visualize import pose_maps_from_keypoints

        keypoints = [keypoints_for_image(keypoints_root, os.path.relpath(f, keypoints_root)) for f in files]
        return pose_maps_from_keypoints(keypoints, [c.shape[:2] for c in crops], map_size)
    if pose_weights is not None:
        from spot_edge.backends.pose_estimators import create_pose_estimator

        estimator = create_pose_estimator(pose_weights)
        maps = []
        for crop in crops:
            m = estimator(crop)[0].cpu().numpy()                    # (56, ceil(H/8), ceil(W/8))
            maps.append(np.stack([cv2.resize(c, (map_size[1], map_size[0]), interpolation=cv2.INTER_LINEAR)
                                  for c in m]))
        return np.stack(maps).astype(np.float32)
    return None


def gather_inputs(images: List[Path], synthetic: int, modality: str, keypoints_root: Optional[Path],
                  pose_weights: Optional[Path], map_size: tuple[int, int], per_modality: int = 1, seed: int = 0):
    """``(crops, pose_maps, ids, modalities, captions)`` from files or synthetic people."""
    from spot_edge.visualize.common import as_bgr_image

    check_modality(modality)
    check_range("--synthetic", synthetic, 1)
    check_range("--per-modality", per_modality, 1)
    if images:
        files = image_files(images)
        crops = [as_bgr_image(f) for f in files]
        maps = pose_maps_for(files, crops, map_size, keypoints_root, pose_weights)
        return crops, maps, np.arange(len(crops)), [modality] * len(crops), [f.stem for f in files]
    from spot_edge.visualize import synthetic_people

    crops, maps, ids, modalities = synthetic_people(synthetic, per_modality, seed=seed, map_size=map_size)
    return crops, maps, ids, modalities, [f"id {i} {m[:3]}" for i, m in zip(ids, modalities)]


def check_images(images: List[Path]) -> None:
    """Fail early (before building models) on missing, empty or undecodable image inputs."""
    from spot_edge.visualize.common import as_bgr_image

    for f in image_files(images) if images else []:
        as_bgr_image(f)


def _done(path: Path) -> None:
    console.print(f"wrote {path}")


# Options used by several commands.
_CHECKPOINT = typer.Option([], "--checkpoint", help="A checkpoint, optionally LABEL=PATH; repeat for several.")
_IMAGES = typer.Option([], "--image", "-i", help="Person crop file or folder; repeat. Default: synthetic people.")
_SYNTHETIC = typer.Option(4, "--synthetic", help="Synthetic identities when no --image is given.")
_MODALITY = typer.Option("infrared", help="Modality of the --image crops (visible or infrared).")
_KEYPOINTS = typer.Option(None, "--keypoints-root", help="Synthetic tree whose keypoints give the --image pose "
                          "maps.")
_POSE = typer.Option(None, "--pose-weights", help="OpenPose weights to estimate the --image pose maps.")


def _map_size(models: dict) -> tuple[int, int]:
    return next(iter(models.values())).config.preprocessing.heatmap_size


# ----------------------------------------------------------------------------- commands


@app.command("cam")
def cam(
    checkpoint: List[str] = _CHECKPOINT,
    preset_names: List[str] = typer.Option([], "--preset", help="A random-weight preset; repeat. Default with no "
                                           "checkpoint: baseline-small and spot-small."),
    images: List[Path] = _IMAGES,
    synthetic: int = _SYNTHETIC,
    modality: str = _MODALITY,
    keypoints_root: Optional[Path] = _KEYPOINTS,
    pose_weights: Optional[Path] = _POSE,
    method: str = typer.Option("mean", help="mean (channel-mean activation) or gradcam (identity logit)."),
    out: Path = typer.Option(Path("cam.png"), "--out", "-o", help="Output PNG."),
) -> None:
    """Class-activation overlays, one column per model (baseline vs SPOT, like the paper's Fig. 8).

    Repeat --checkpoint (LABEL=PATH) to compare models side by side.

    Examples:
      spot-edge visualize cam --checkpoint SPOT=s.safetensors -i crops/
      spot-edge visualize cam --method gradcam --synthetic 4 -o cam.png
    """
    from spot_edge.visualize import CAM_METHODS, save_cam_panel

    out, images = png_output(out), [user_path(i) for i in images]
    if method not in CAM_METHODS:
        raise CliError(f"--method must be one of {', '.join(CAM_METHODS)}, got {method!r}")
    check_modality(modality)
    check_range("--synthetic", synthetic, 1)
    keypoints_root, pose_weights = optional_user_path(keypoints_root), optional_user_path(pose_weights)
    check_images(images)
    if not checkpoint and not preset_names:
        preset_names = ["baseline-small", "spot-small"]
    models = load_models(checkpoint, preset_names)
    crops, maps, _, modalities, captions = gather_inputs(images, synthetic, modality, keypoints_root,
                                                         pose_weights, _map_size(models))
    _done(save_cam_panel(out, models, crops, maps, modalities, method=method, captions=captions))


@app.command("parts")
def parts(
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="A SPOT checkpoint with TPI."),
    preset_name: str = typer.Option("spot-small", "--preset", help="Random-weight preset when no checkpoint."),
    images: List[Path] = _IMAGES,
    synthetic: int = _SYNTHETIC,
    modality: str = _MODALITY,
    keypoints_root: Optional[Path] = _KEYPOINTS,
    pose_weights: Optional[Path] = _POSE,
    out: Path = typer.Option(Path("parts.png"), "--out", "-o", help="Output PNG."),
) -> None:
    """TPI part maps per person (eq. 8) and the argmax node partition, overlaid on each crop.

    Examples:
      spot-edge visualize parts -i data/synth/cam3 --keypoints-root data/synth
      spot-edge visualize parts --synthetic 3 -o parts.png
    """
    from spot_edge.visualize import save_parts_panel

    out, images = png_output(out), [user_path(i) for i in images]
    check_modality(modality)
    check_range("--synthetic", synthetic, 1)
    keypoints_root, pose_weights = optional_user_path(keypoints_root), optional_user_path(pose_weights)
    check_images(images)
    models = load_models([checkpoint] if checkpoint else [], [] if checkpoint else [preset_name])
    model = next(iter(models.values()))
    if model.tpi is None:
        raise CliError(f"{next(iter(models))} has no TPI branch, so it has no part maps; use a SPOT or TPI model")
    crops, maps, _, modalities, captions = gather_inputs(images, synthetic, modality, keypoints_root,
                                                         pose_weights, _map_size(models))
    if maps is None:
        raise CliError("part maps need pose maps: give --keypoints-root or --pose-weights with --image")
    _done(save_parts_panel(out, model, crops, maps, modalities, captions=captions))


def _embed(model, crops, maps, modalities, batch: int = 32) -> np.ndarray:
    import torch

    from spot_edge.visualize import model_inputs

    out = []
    with torch.no_grad():
        for start in range(0, len(crops), batch):
            sl = slice(start, start + batch)
            images, heatmaps = model_inputs(model, crops[sl], None if maps is None else maps[sl])
            codes = torch.tensor([modality_index(m) for m in modalities[sl]])
            out.append(model(images, heatmaps, codes).float().cpu().numpy())
    return np.concatenate(out)


def _load_npz(path: Path) -> dict:
    path = user_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file not found: {path}")
    try:
        data = dict(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise CliError(f"{path} is not a readable .npz file: {exc}") from None
    missing = {"embeddings", "ids", "modalities"} - set(data)
    if missing:
        raise CliError(f"{path} lacks arrays {sorted(missing)} (needs embeddings (N, D), ids (N,), "
                       "modalities (N,) as 'visible'/'infrared' or 0/1)")
    return data


@app.command("tsne")
def tsne(
    embeddings: Optional[Path] = typer.Option(None, help="An .npz with embeddings (N, D), ids (N,), modalities (N,)."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Embed synthetic people with this model."),
    preset_name: str = typer.Option("spot-small", "--preset", help="Random-weight preset when neither is given."),
    synthetic: int = typer.Option(10, "--synthetic", help="Synthetic identities to embed."),
    per_modality: int = typer.Option(2, help="Images per identity and modality."),
    perplexity: Optional[float] = typer.Option(None, help="t-SNE perplexity (default min(30, (N-1)/3))."),
    iterations: int = typer.Option(1000, help="t-SNE optimisation steps (at least 250)."),
    out: Path = typer.Option(Path("tsne.png"), "--out", "-o", help="Output PNG."),
) -> None:
    """t-SNE of embeddings, colour = identity, marker = modality (like the paper's Fig. 9).

    Examples:
      spot-edge visualize tsne --embeddings results/test.npz -o tsne.png
      spot-edge visualize tsne --checkpoint runs/spot/best.safetensors
    """
    from spot_edge.visualize import plot_tsne

    out = png_output(out)
    check_range("--iterations", iterations, 250)
    check_range("--synthetic", synthetic, 1)
    check_range("--per-modality", per_modality, 1)
    if perplexity is not None and not perplexity > 0:   # also refuses NaN
        raise CliError(f"--perplexity must be positive, got {perplexity:g}")
    if embeddings is not None:
        data = _load_npz(embeddings)
        emb, ids, mods = data["embeddings"], data["ids"], list(data["modalities"].tolist())
        title = f"t-SNE of {embeddings.name}"
    else:
        models = load_models([checkpoint] if checkpoint else [], [] if checkpoint else [preset_name])
        model = next(iter(models.values()))
        crops, maps, ids, mods, _ = gather_inputs([], synthetic, "infrared", None, None, _map_size(models),
                                                  per_modality=per_modality)
        with console.status(f"embedding {len(crops)} crops"):
            emb = _embed(model, crops, maps, mods)
        title = "t-SNE of synthetic people"
    with console.status("t-SNE"):
        _done(plot_tsne(emb, ids, mods, out, title=title, perplexity=perplexity, max_iter=iterations))


@app.command("retrieval")
def retrieval(
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="The model (default: random spot-small)."),
    preset_name: str = typer.Option("spot-small", "--preset", help="Random-weight preset when no checkpoint."),
    dataset_root: Optional[Path] = typer.Option(None, help="A SYSU-MM01-like tree (e.g. a synthetic set): infrared "
                                                "queries vs the visible gallery of the test split."),
    synthetic: int = typer.Option(8, "--synthetic", help="Synthetic identities when no --dataset-root."),
    queries: int = typer.Option(4, help="Infrared queries to show (distinct identities)."),
    k: int = typer.Option(5, "-k", help="Retrievals per query."),
    pose_weights: Optional[Path] = _POSE,
    out: Path = typer.Option(Path("retrieval.png"), "--out", "-o", help="Output PNG."),
) -> None:
    """Top-k visible-gallery retrievals for a few infrared queries (green: same identity, red: not).

    Examples:
      spot-edge visualize retrieval --dataset-root data/synth -k 5
      spot-edge visualize retrieval --synthetic 8 --queries 4
    """
    from spot_edge.visualize import save_retrieval_panel
    from spot_edge.visualize.common import as_bgr_image

    out = png_output(out)
    check_range("--queries", queries, 1)
    check_range("-k", k, 1)
    check_range("--synthetic", synthetic, 1)
    dataset_root, pose_weights = optional_user_path(dataset_root), optional_user_path(pose_weights)
    if dataset_root is not None and not dataset_root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {dataset_root}")
    models = load_models([checkpoint] if checkpoint else [], [] if checkpoint else [preset_name])
    model = next(iter(models.values()))
    size = _map_size(models)
    if dataset_root is not None:
        from spot_edge.training.datasets import sysu_gallery, sysu_query

        q_list, g_list = sysu_query(dataset_root, "all"), sysu_gallery(dataset_root, "all", 0)
        first = {}
        for i, pid in enumerate(q_list.pids.tolist()):
            first.setdefault(pid, i)
        q_rows = list(first.values())[:queries]
        q_files = [Path(q_list.paths[i]) for i in q_rows]
        g_files = [Path(p) for p in g_list.paths]
        q_crops = [as_bgr_image(f) for f in q_files]
        g_crops = [as_bgr_image(f) for f in g_files]
        keypoints_root = dataset_root if (dataset_root / "keypoints").is_dir() else None
        q_maps = pose_maps_for(q_files, q_crops, size, keypoints_root, pose_weights)
        g_maps = pose_maps_for(g_files, g_crops, size, keypoints_root, pose_weights)
        q_ids, g_ids = q_list.pids[q_rows], g_list.pids
    else:
        crops, maps, ids, mods, _ = gather_inputs([], synthetic, "infrared", None, None, size, per_modality=2)
        ir = [i for i, m in enumerate(mods) if m == "infrared"][::2][:queries]
        vis = [i for i, m in enumerate(mods) if m == "visible"]
        q_crops, g_crops = [crops[i] for i in ir], [crops[i] for i in vis]
        q_maps, g_maps = maps[ir], maps[vis]
        q_ids, g_ids = ids[ir], ids[vis]
    with console.status(f"embedding {len(q_crops)} queries and {len(g_crops)} gallery crops"):
        q_emb = _embed(model, q_crops, q_maps, ["infrared"] * len(q_crops))
        g_emb = _embed(model, g_crops, g_maps, ["visible"] * len(g_crops))
    _done(save_retrieval_panel(out, q_crops, q_ids, q_emb, g_crops, g_ids, g_emb, k=k))


__all__ = ["app", "cam", "parts", "tsne", "retrieval", "load_models", "gather_inputs", "pose_maps_for"]
