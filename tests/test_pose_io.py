"""OpenPose heatmap PNG interop, person cropping, ONNX export parity, cost table."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch

from spot_edge.pose.crop import CropSpec, crop_people, fit_boxes_to_aspect, keypoints_to_crop
from spot_edge.pose.info import PUBLISHED_GMAC, PUBLISHED_PARAMS, cost_table, count_cost
from spot_edge.pose.network import OpenPoseBody, PoseNetConfig, RandomWeightsWarning
from spot_edge.pose.openpose_png import (
    HeatmapFileError,
    decode_pose_heatmaps,
    encode_pose_heatmaps,
    heatmaps_png_name,
    read_pose_heatmaps_png,
    write_pose_heatmaps_png,
)
from spot_edge.pose.parse import parse_pose_maps
from spot_edge.pose.render import render_pose_maps
from spot_edge.pose.synthetic_skeletons import standing_people


def make_people(rng, xs, tops, heights):
    return standing_people(xs, tops, heights, rng=rng)


@pytest.fixture
def scene(rng):
    kp = make_people(rng, [90, 250], [30, 60], [300, 250])
    return kp, render_pose_maps(kp, (368, 360), (46, 45))


# ------------------------------------------------------------------------------------ PNG interop

def test_png_round_trip(tmp_path, scene):
    _, maps = scene
    path = write_pose_heatmaps_png(tmp_path / heatmaps_png_name("frames/cam1_0001.jpg"), maps)
    assert path.name == "cam1_0001_pose_heatmaps.png"
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint8 and raw.shape == (46, 56 * 45)
    back = read_pose_heatmaps_png(path)
    assert back.shape == maps.shape
    assert np.abs(back[:18] - maps[:18]).max() <= 0.5 / 255 + 1e-6
    assert np.abs(back[18:] - maps[18:]).max() <= 2 / 128.5 + 1e-6  # saturation at +1
    assert (back[18:][maps[18:] == 0] == 0).all()  # zero PAF reads back as exactly zero


def test_png_matches_openpose_scaling_and_tiling():
    maps = np.zeros((56, 2, 3), np.float32)
    maps[0, 0, 0] = 1.0
    maps[1, 1, 2] = 0.5
    maps[18, 0, 1] = -1.0
    maps[19, 0, 0] = 1.0
    img = encode_pose_heatmaps(maps)
    assert img[0, 0] == 255 and img[1, 3 + 2] == 128  # tile 1 starts at column w=3; round(127.5) -> 128
    assert img[0, 18 * 3 + 1] == 0 and img[0, 19 * 3] == 255  # PAF -1 -> 0, +1 -> 257 saturated
    assert img[1, 18 * 3] == 129  # OpenPose writes PAF 0 as intRound(128.5)


def test_png_with_background_tile_and_colour_copy(tmp_path, scene):
    _, maps = scene
    img = encode_pose_heatmaps(maps, include_background=True)
    assert img.shape == (46, 57 * 45)
    np.testing.assert_allclose(decode_pose_heatmaps(img), decode_pose_heatmaps(encode_pose_heatmaps(maps)))
    colour = np.repeat(img[..., None], 3, axis=2)  # a viewer re-saved it as RGB
    np.testing.assert_allclose(decode_pose_heatmaps(colour), decode_pose_heatmaps(img))


def test_png_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_pose_heatmaps_png(tmp_path / "missing_pose_heatmaps.png")
    junk = tmp_path / "junk_pose_heatmaps.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(HeatmapFileError, match="not a readable image"):
        read_pose_heatmaps_png(junk)
    with pytest.raises(HeatmapFileError, match="heatmaps_add_PAFs"):
        decode_pose_heatmaps(np.zeros((4, 18 * 5), np.uint8))  # parts only
    with pytest.raises(HeatmapFileError, match="multiple of 56"):
        decode_pose_heatmaps(np.zeros((4, 101), np.uint8))
    with pytest.raises(ValueError):
        encode_pose_heatmaps(np.zeros((19, 4, 4)))


def test_parse_after_png_round_trip(tmp_path, scene):
    kp, maps = scene
    back = read_pose_heatmaps_png(write_pose_heatmaps_png(tmp_path / "x_pose_heatmaps.png", maps))
    found = parse_pose_maps(back, image_size=(368, 360))
    assert len(found) == 2 and (found.num_parts == 18).all()


# ------------------------------------------------------------------------------------ cropping

def test_fit_boxes_to_aspect():
    r = fit_boxes_to_aspect([[10, 10, 110, 60]], aspect=2.0)  # wide box -> tall region
    w, h = r[0, 2] - r[0, 0], r[0, 3] - r[0, 1]
    assert h / w == pytest.approx(2.0) and w == pytest.approx(100) and (r[0, 0] + r[0, 2]) / 2 == pytest.approx(60)
    r = fit_boxes_to_aspect([[0, 0, 10, 100]], aspect=2.0, expand=0.5)
    assert r[0, 3] - r[0, 1] == pytest.approx(150)
    with pytest.raises(ValueError, match="x1 > x0"):
        fit_boxes_to_aspect([[10, 10, 5, 20]], 2.0)


def test_crop_image_is_exact_when_the_region_is_pixel_aligned(rng):
    frame = rng.integers(0, 256, (400, 300, 3), dtype=np.uint8)
    crops = crop_people(frame, [[20, 30, 164, 318]])  # exactly 144 x 288
    np.testing.assert_array_equal(crops.images[0], frame[30:318, 20:164])
    t = crop_people(torch.from_numpy(frame).permute(2, 0, 1).float(), [[20, 30, 164, 318]])
    torch.testing.assert_close(t.images[0], torch.from_numpy(frame[30:318, 20:164]).permute(2, 0, 1).float(),
                               atol=0.05, rtol=0)  # float32 grid arithmetic


def test_crop_pads_outside_the_frame(rng):
    frame = rng.integers(1, 256, (100, 100, 3), dtype=np.uint8)
    crops = crop_people(frame, [[-50, 0, 22, 144]], spec=CropSpec(pad_value=7))
    assert (crops.images[0, :, :40] == 7).all()  # columns left of the frame (with a bilinear seam)


def test_one_pose_pass_serves_every_person(scene, rng):
    kp, maps = scene
    frame = rng.integers(0, 256, (368, 360, 3), dtype=np.uint8)
    people = parse_pose_maps(maps, image_size=(368, 360))
    crops = crop_people(frame, people.boxes, maps=torch.from_numpy(maps), stride=8, spec=CropSpec(expand=0.1))
    assert crops.images.shape == (2, 288, 144, 3) and crops.maps.shape == (2, 56, 36, 18)
    for i in range(2):
        # the person's skeleton is recovered from its map crop, in crop coordinates
        found = parse_pose_maps(crops.maps[i], image_size=(288, 144))
        assert len(found) >= 1
        expected = keypoints_to_crop(people.keypoints[i], crops.regions[i])[0]
        assert np.abs(found.keypoints[0, :, :2] - expected[:, :2]).max() < 2.0
        # and it agrees with rendering the crop's maps directly from the keypoints
        rendered = render_pose_maps(expected[None], (288, 144), (36, 18))
        assert np.abs(crops.maps[i][:18] - rendered[:18]).max() < 0.35


def test_crop_edge_cases(scene, rng):
    _, maps = scene
    frame = rng.integers(0, 256, (368, 360, 3), dtype=np.uint8)
    none = crop_people(frame, np.zeros((0, 4)), maps=maps)
    assert none.images.shape == (0, 288, 144, 3) and none.maps.shape == (0, 56, 36, 18)
    custom = crop_people(frame, [[0, 0, 50, 100]], maps=maps, spec=CropSpec(height=256, width=128, map_height=64,
                                                                         map_width=32))
    assert custom.images.shape == (1, 256, 128, 3) and custom.maps.shape == (1, 56, 64, 32)
    for source, m in ((frame, maps), (torch.from_numpy(frame).permute(2, 0, 1), torch.from_numpy(maps))):
        away = crop_people(source, [[-500, -900, -400, -700], [900, 0, 990, 180]], maps=m, spec=CropSpec(pad_value=5))
        assert (np.asarray(away.images) == 5).all() and not np.asarray(away.maps).any()  # outside: padding
    with pytest.raises(ValueError, match="wrong stride"):
        crop_people(frame, [[0, 0, 50, 100]], maps=maps, stride=4)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        crop_people(frame[..., 0], [[0, 0, 50, 100]])
    with pytest.raises(ValueError, match="empty frame"):
        crop_people(np.zeros((0, 10, 3), np.uint8), [[0, 0, 5, 5]])


# ------------------------------------------------------------------------------------ ONNX, cost

def test_onnx_export_dynamic_shapes_and_parity(tmp_path):
    pytest.importorskip("onnxruntime")
    from spot_edge.engines.pose_onnx_export import check_onnx_parity, export_pose_onnx, onnxruntime_session

    model = OpenPoseBody(PoseNetConfig(name="test_2stage", num_stages=2)).eval()
    with pytest.warns(RandomWeightsWarning):
        path = export_pose_onnx(model, tmp_path / "pose.onnx", sample_hw=(32, 48), clamp=False)
    sess = onnxruntime_session(path)
    assert [d for d in sess.get_inputs()[0].shape] == ["batch", 3, "height", "width"]
    g = torch.Generator().manual_seed(0)
    inputs = [torch.rand(1, 3, 32, 48, generator=g) - 0.5, torch.rand(3, 3, 56, 24, generator=g) - 0.5]
    assert check_onnx_parity(model, path, inputs, atol=1e-4, clamp=False) <= 1e-4
    # raw-BGR variant with the normalisation inside the graph
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        one_stage = OpenPoseBody(PoseNetConfig(name="test_1stage", num_stages=1)).eval()
        raw = export_pose_onnx(one_stage, tmp_path / "pose_raw.onnx", sample_hw=(32, 32), normalize=True)
    check_onnx_parity(one_stage, raw, [torch.rand(2, 3, 40, 32, generator=g) * 255], normalize=True, atol=1e-4)


def test_cost_table_matches_published_architecture():
    full = count_cost("openpose_coco", (368, 368))
    assert full.params == PUBLISHED_PARAMS
    assert full.macs / 1e9 == pytest.approx(PUBLISHED_GMAC[(368, 368)], rel=0.01)
    assert count_cost("openpose_coco", (288, 144)).macs / 1e9 == pytest.approx(42, rel=0.02)
    assert 0.25 < full.backbone_macs / full.macs < 0.35  # "VGG part about a third"
    lite = count_cost("openpose_coco_lite", (368, 368))
    assert lite.macs < 0.65 * full.macs
    assert sum(p.numel() for p in OpenPoseBody("openpose_coco_lite").parameters()) == lite.params
    assert len(cost_table()) == 4


def test_close_up_people_are_not_aliased_away(rng):
    """People ~900 px tall in a 1080p frame: their maps shrink ~3x into 36x18 without losing limbs."""
    kp = standing_people([400, 1000], [60, 100], [950, 900], rng=rng)
    maps = render_pose_maps(kp, (1080, 1440), (135, 180))
    people = parse_pose_maps(maps, image_size=(1080, 1440))
    crops = crop_people(np.zeros((1080, 1440, 3), np.uint8), people.boxes, maps=maps, spec=CropSpec(expand=0.1))
    for i in range(2):
        found = parse_pose_maps(crops.maps[i], image_size=(288, 144))
        assert len(found) == 1 and found.num_parts[0] == 18
