"""Post-processing where the maps are: the torch parser and tensor crops (run here on the CPU
device) against the numpy parser, the reference model of the original, and the numpy crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pose_reference import assert_same_people, reference_parse
from pose_scenes import SCENE_KINDS, scene
from spot_edge.pose.crop import CropSpec, crop_people
from spot_edge.pose.device_parse import parse_pose_batch, parse_pose_maps_torch
from spot_edge.pose.parse import ParseConfig, parse_pose_maps
from spot_edge.preprocessing import PreprocessSpec

FRAME = (368, 656)


def assert_identical(a, b) -> None:
    assert len(a) == len(b)
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-4)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    np.testing.assert_array_equal(a.num_parts, b.num_parts)


@pytest.mark.parametrize("kind", SCENE_KINDS)
def test_torch_parser_equals_the_numpy_parser_on_a_batch(kind):
    scenes = [scene(kind, seed, n=n)[0] for seed, n in ((1, 1), (2, 6), (3, 12))]
    scenes.append(np.zeros_like(scenes[0]))  # nobody
    found = parse_pose_maps_torch(torch.from_numpy(np.stack(scenes)), FRAME)
    assert len(found) == 4 and len(found[3]) == 0
    for maps, got in zip(scenes, found):
        assert_identical(got, parse_pose_maps(maps, FRAME))


def test_torch_parser_agrees_with_the_original():
    maps, _ = scene("strong", 5, n=8)
    ref_kp, ref_scores = reference_parse(maps, FRAME, (362, 650), (543, 975))
    (found,) = parse_pose_maps_torch(torch.from_numpy(maps), FRAME, valid_size=(362, 650), output_size=(543, 975))
    assert_same_people(found, ref_kp, ref_scores)


@pytest.mark.parametrize("config", [ParseConfig(subpixel=False), ParseConfig(peak_threshold=0.3, min_parts=8),
                                    ParseConfig(max_candidates=2)])
def test_torch_parser_follows_the_config_and_map_pixels(config):
    maps, _ = scene("noisy", 9, n=5)
    (got,) = parse_pose_maps_torch(torch.from_numpy(maps), None, config)
    assert_identical(got, parse_pose_maps(maps, None, config))


def test_parse_pose_batch_uses_numpy_on_the_host_and_checks_shapes():
    maps, _ = scene("rendered", 3, n=4)
    for given in (maps, torch.from_numpy(maps), maps[None]):
        (got,) = parse_pose_batch(given, FRAME)
        assert_identical(got, parse_pose_maps(maps, FRAME))
    with pytest.raises(ValueError, match="56"):
        parse_pose_maps_torch(torch.zeros(1, 55, 8, 8))
    with pytest.raises(TypeError, match="torch tensor"):
        parse_pose_maps_torch(maps)


def test_tensor_crops_equal_numpy_crops_and_network_input(rng):
    maps, _ = scene("rendered", 6, n=3)
    people = parse_pose_maps(maps, FRAME)
    frame = rng.integers(0, 256, (*FRAME, 3), dtype=np.uint8)
    spec = CropSpec(expand=0.1)
    on_host = crop_people(frame, people.boxes, maps=maps, spec=spec)
    frame_t = torch.from_numpy(frame).permute(2, 0, 1).contiguous()
    on_device = crop_people(frame_t, people.boxes, maps=torch.from_numpy(maps), spec=spec)
    diff = np.abs(on_device.images.round().clamp(0, 255).permute(0, 2, 3, 1).numpy() - on_host.images)
    assert diff.max() <= 1 and diff.mean() < 0.01  # OpenCV's 1/32-pixel positions and fixed-point weights
    assert isinstance(on_host.maps, np.ndarray) and isinstance(on_device.maps, torch.Tensor)
    np.testing.assert_allclose(on_device.maps.numpy(), on_host.maps, rtol=0, atol=1e-5)  # both exact
    # the embedder's input straight from the frame: on the host exactly the normalised uint8 crops, on
    # the device the normalised exact crops (the uint8 crops' rounding apart)
    pre = PreprocessSpec()
    level = 1 / 255 / min(pre.std)  # one grey level, normalised
    got = crop_people(frame, people.boxes, spec=spec, preprocessing=pre).images
    assert isinstance(got, np.ndarray) and got.shape == (3, 3, 288, 144) and got.dtype == np.float32
    np.testing.assert_allclose(got, pre.batch(list(on_host.images)), rtol=0, atol=1e-5)
    got = crop_people(frame_t, people.boxes, spec=spec, preprocessing=pre).images.numpy()
    device_uint8 = on_device.images.round().clamp(0, 255).permute(0, 2, 3, 1).numpy().astype(np.uint8)
    assert np.abs(got - pre.batch(list(device_uint8))).max() <= 0.5 * level + 1e-5
    assert crop_people(frame, np.zeros((0, 4)), preprocessing=pre).images.shape == (0, 3, 288, 144)
    # a small frame with a pad value: on the device the frame is normalised before sampling (fewer
    # pixels than the crops)
    small = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    boxes = [[-10, 0, 30, 70], [20, 10, 44, 60]]
    expected = pre.batch(list(crop_people(small, boxes, spec=CropSpec(pad_value=9)).images))
    got = crop_people(small, boxes, spec=CropSpec(pad_value=9), preprocessing=pre).images
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    small_t = torch.from_numpy(small).permute(2, 0, 1)
    got = crop_people(small_t, boxes, spec=CropSpec(pad_value=9), preprocessing=pre).images.numpy()
    assert np.abs(got - expected).max() <= 1.5 * level + 1e-5


def test_shrunk_regions_are_supersampled_alike_on_host_and_device(rng):
    """Close-ups in a large frame (regions shrunk 2-4x, per axis): both paths average the same
    sub-samples."""
    maps, _ = scene("rendered", 3, frame_hw=(368, 656), n=2)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (1104, 1968, 3), dtype=np.uint8), (0, 0), 2.0)
    boxes = np.array([[100, 50, 400, 1000], [900, 0, 1500, 1100], [1700, 900, 1990, 1200]], np.float32)
    spec = CropSpec(height=144, width=72, map_height=18, map_width=9)
    host = crop_people(frame, boxes, maps=maps, stride=(3 * 8, 3 * 8), spec=spec)
    device = crop_people(torch.from_numpy(frame).permute(2, 0, 1), boxes, maps=torch.from_numpy(maps),
                         stride=(24, 24), spec=spec)
    np.testing.assert_allclose(device.maps.numpy(), host.maps, rtol=0, atol=1e-5)
    assert np.abs(device.images.permute(0, 2, 3, 1).numpy() - host.images).max() <= 1.0
    assert host.maps[:, :18].max() > 0.3  # the people are there


def test_map_crops_with_per_axis_strides_equal_maps_of_the_resized_frame():
    """A frame resized with different x and y factors for the network: cropping the original
    frame with (y, x) strides reads the same map pixels as cropping the resized frame."""
    maps, _ = scene("rendered", 8, n=2)  # maps of a 368x656 network input
    people = parse_pose_maps(maps, FRAME)
    sy, sx = 2.0, 1.5  # the original frame was 736x984
    boxes = people.boxes * np.array([sx, sy, sx, sy])
    from_original = crop_people(np.zeros((736, 984, 3), np.uint8), boxes, maps=maps, stride=(8 * sy, 8 * sx),
                                spec=CropSpec(height=288, width=108, map_height=36, map_width=18))  # aspect x sy/sx
    from_resized = crop_people(np.zeros((*FRAME, 3), np.uint8), people.boxes, maps=maps, stride=8,
                               spec=CropSpec(height=288, width=144, map_height=36, map_width=18))
    np.testing.assert_allclose(from_original.regions, from_resized.regions * np.array([sx, sy, sx, sy]), rtol=1e-5)
    np.testing.assert_allclose(from_original.maps, from_resized.maps, atol=1e-4, rtol=0)


def test_map_crops_are_clamped_to_openposes_ranges():
    maps, _ = scene("strong", 2, n=2)
    people = parse_pose_maps(maps, FRAME)
    frame = np.zeros((*FRAME, 3), np.uint8)
    clamped = crop_people(frame, people.boxes, maps=maps).maps
    raw = crop_people(frame, people.boxes, maps=maps, clamp_maps=False).maps
    assert raw[:, :18].max() > 1.05 and clamped[:, :18].max() <= 1.0 and np.abs(clamped[:, 18:]).max() <= 1.0
