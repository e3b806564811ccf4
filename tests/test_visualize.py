"""Visualisations: each writes a non-empty PNG of the expected size on small random models."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from spot_edge.model import SPOT, preset
from spot_edge.visualize import (activation_maps, asr_attention_received, model_inputs, node_partition, plot_tsne,
                                 rank_gallery, save_cam_panel, save_parts_panel, save_retrieval_panel,
                                 synthetic_people)
from spot_edge.visualize.common import overlay_map, write_png

TILE = (64, 32)
PAD = 4


def _expected_grid(rows: int, cols: int, tile=TILE, header=12) -> tuple[int, int]:
    th = tile[0] + header
    return PAD + rows * (th + PAD), PAD + cols * (tile[1] + PAD)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(1)
    return {"baseline": SPOT(preset("baseline-small", num_classes=6)).eval(),
            "SPOT": SPOT(preset("spot-small", num_classes=6)).eval()}


@pytest.fixture(scope="module")
def people():
    return synthetic_people(num_ids=3, per_modality=1, height=128, width=64, seed=2)


def _read(path):
    image = cv2.imread(str(path))
    assert image is not None and path.stat().st_size > 0
    assert image.std() > 0  # not blank
    return image


@pytest.mark.parametrize("method", ["mean", "gradcam"])
def test_activation_maps_are_normalised_at_input_size(models, people, method):
    crops, maps, ids, modalities = people
    model = models["SPOT"]
    images, heatmaps = model_inputs(model, crops, maps)
    cams = activation_maps(model, images, heatmaps, "infrared", method=method)
    assert cams.shape == (len(crops), 128, 64)
    assert torch.isfinite(cams).all() and cams.min() >= 0 and cams.max() <= 1 + 1e-6
    assert cams.flatten(1).max(dim=1).values.min() > 0.99   # each map reaches 1
    assert "feature_maps" not in vars(model)                 # the capture hook is removed


def test_gradcam_targets_are_checked(models, people):
    crops, maps, _, _ = people
    model = models["SPOT"]
    images, heatmaps = model_inputs(model, crops, maps)
    with pytest.raises(ValueError, match="identity classes"):
        activation_maps(model, images, heatmaps, "visible", method="gradcam", targets=[99] * len(crops))
    with pytest.raises(ValueError, match="unknown CAM method"):
        activation_maps(model, images, heatmaps, "visible", method="nope")


def test_cam_panel_baseline_vs_spot(tmp_path, models, people):
    crops, maps, _, modalities = people
    path = save_cam_panel(tmp_path / "cam.png", models, crops, maps, modalities, method="gradcam", tile=TILE)
    assert _read(path).shape[:2] == _expected_grid(len(crops), 3)


def test_model_needing_pose_maps_without_them_is_a_clear_error(models, people):
    crops, _, _, _ = people
    with pytest.raises(ValueError, match="pose maps"):
        model_inputs(models["SPOT"], crops, None)
    images, heatmaps = model_inputs(models["baseline"], crops, None)   # the baseline needs none
    assert heatmaps is None and images.shape == (len(crops), 3, 128, 64)


def test_parts_panel(tmp_path, models, people):
    crops, maps, _, modalities = people
    path = save_parts_panel(tmp_path / "parts.png", models["SPOT"], crops, maps, modalities, tile=TILE)
    p = models["SPOT"].config.num_parts
    assert _read(path).shape[:2] == _expected_grid(len(crops), 2 + p + 1)   # + the ASR attention column
    with pytest.raises(ValueError, match="no TPI"):
        save_parts_panel(tmp_path / "x.png", models["baseline"], crops, maps)


def test_asr_attention_received(models, people):
    crops, maps, _, _ = people
    attention = asr_attention_received(models["SPOT"], crops, maps, "visible")
    assert attention.shape == (len(crops), 8, 4)       # the 128x64 model's final 8x4 grid
    assert np.allclose(attention.sum(axis=(1, 2)), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match="no ASR"):
        asr_attention_received(models["baseline"], crops, maps)


def test_node_partition_is_argmax(rng):
    maps = rng.random((2, 5, 4, 3))
    part = node_partition(maps)
    assert part.shape == (2, 4, 3) and part.max() < 5
    assert np.array_equal(part, maps.argmax(axis=1))


def test_tsne_on_40_points(tmp_path, rng):
    ids = np.repeat(np.arange(10), 4)
    centres = rng.normal(size=(10, 32))
    emb = centres[ids] + 0.1 * rng.normal(size=(40, 32))
    modalities = ["visible", "infrared"] * 20
    path = plot_tsne(emb, ids, modalities, tmp_path / "tsne.png", figsize=(4, 3), dpi=50, max_iter=250)
    assert _read(path).shape[:2] == (150, 200)
    with pytest.raises(ValueError, match="modalit"):
        plot_tsne(emb, ids, ["thermal"] * 40, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="identities"):
        plot_tsne(emb, ids[:-1], modalities, tmp_path / "bad.png")


def test_rank_gallery_cosine(rng):
    gallery = rng.normal(size=(6, 8))
    query = gallery[[4, 1]] * 3.0
    top, sims = rank_gallery(query, gallery, k=3)
    assert top[:, 0].tolist() == [4, 1]
    assert np.allclose(sims[:, 0], 1.0, atol=1e-5) and (np.diff(sims, axis=1) <= 1e-6).all()
    assert rank_gallery(query, gallery, k=50)[0].shape == (2, 6)
    with pytest.raises(ValueError, match="empty"):
        rank_gallery(query, gallery[:0])


def test_retrieval_panel(tmp_path, rng):
    g_images = [rng.integers(0, 255, (40 + i, 20 + i, 3), dtype=np.uint8) for i in range(6)]
    g_ids = np.array([0, 0, 1, 1, 2, 2])
    g_emb = rng.normal(size=(6, 16))
    q_images = [rng.integers(0, 255, (50, 25), dtype=np.uint8) for _ in range(2)]   # gray infrared
    path = save_retrieval_panel(tmp_path / "ret.png", q_images, [0, 2], g_emb[[0, 5]] + 0.01,
                                g_images, g_ids, g_emb, k=4, tile=TILE)
    image = _read(path)
    assert image.shape[:2] == _expected_grid(2, 5)
    # the rank-1 tile of query 0 is correct: its frame is green
    y, x = PAD + 12, PAD + TILE[1] + PAD
    assert tuple(image[y + 1, x + 1]) == (0, 170, 0)
    with pytest.raises(ValueError, match="must agree"):
        save_retrieval_panel(tmp_path / "bad.png", q_images, [0], g_emb[:2], g_images, g_ids, g_emb)


def test_png_writing_and_overlay(tmp_path, rng):
    image = rng.integers(0, 255, (32, 16, 3), dtype=np.uint8)
    blended = overlay_map(image, rng.random((4, 2)), alpha=0.5)
    assert blended.shape == image.shape
    path = write_png(tmp_path / "sub" / "o.png", blended)
    assert _read(path).shape == (32, 16, 3)
    assert not list((tmp_path / "sub").glob("*.tmp"))
    with pytest.raises(ValueError, match=".png"):
        write_png(tmp_path / "o.jpg", blended)
    with pytest.raises(FileNotFoundError):
        overlay_map(str(tmp_path / "missing.png"), rng.random((4, 2)))


def test_gradcam_under_no_grad_with_frozen_weights(models, people):
    crops, maps, _, _ = people
    model = models["SPOT"]
    images, heatmaps = model_inputs(model, crops, maps)
    model.requires_grad_(False)
    try:
        with torch.no_grad():
            cams = activation_maps(model, images, heatmaps, "infrared", method="gradcam", targets=[0, 1, 2, 3, 4, 5])
    finally:
        model.requires_grad_(True)
    assert cams.shape == (6, 128, 64) and torch.isfinite(cams).all()
