"""Skeleton layout, rendering, flipping and the render -> parse round trip."""

from __future__ import annotations

import numpy as np
import pytest

from spot_edge.pose.parse import ParseConfig, parse_pose_maps
from spot_edge.pose.peaks import find_peaks
from spot_edge.pose.resample import MapGeometry
from spot_edge.pose.render import render_pose_maps
from spot_edge.pose.skeleton import (
    KEYPOINT_NAMES,
    LIMBS,
    NUM_MAPS,
    PAF_CHANNELS,
    PAF_OFFSET,
    flip_keypoints,
    flip_permutation,
    flip_pose_maps,
)
from spot_edge.pose.synthetic_skeletons import standing_people

def make_people(rng, centres_x, tops, heights, jitter=1.5) -> np.ndarray:
    """(P, 18, 3) keypoints of standing people with random jitter, all visible."""
    return standing_people(centres_x, tops, heights, rng=rng, jitter=jitter)


def match_people(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Index into ``truth`` of the person nearest (by neck) to each found person."""
    return np.array([np.argmin(np.linalg.norm(truth[:, 1, :2] - f[1, :2], axis=1)) for f in found])


def test_layout_constants():
    assert len(KEYPOINT_NAMES) == 18 and KEYPOINT_NAMES[:2] == ("nose", "neck")
    assert len(LIMBS) == 19 and len(PAF_CHANNELS) == 19
    assert sorted(c for pair in PAF_CHANNELS for c in pair) == list(range(38))
    # pytorch-openpose port: mapIdx [31, 32] (57-channel layout, 1-based limbs) for limb neck-rshoulder
    assert LIMBS[0] == (1, 2) and PAF_CHANNELS[0] == (31 - 19, 32 - 19)
    # OpenPose doc/advanced/heatmap_output.md: map 19 (x) and 20 (y) are the PAF from part 1 to 8,
    # 21 and 22 from 8 to 9; x channels are the odd ones of the 57-channel blob (even here).
    assert PAF_CHANNELS[LIMBS.index((1, 8))] == (0, 1)
    assert PAF_CHANNELS[LIMBS.index((8, 9))] == (2, 3)
    assert all(cx % 2 == 0 and cy == cx + 1 for cx, cy in PAF_CHANNELS)


def test_render_shapes_ranges_and_empty(rng):
    kp = make_people(rng, [60, 140], [20, 30], [150, 140])
    maps = render_pose_maps(kp, (200, 200), (25, 25))
    assert maps.shape == (NUM_MAPS, 25, 25) and maps.dtype == np.float32
    assert 0.0 <= maps[:18].min() and maps[:18].max() <= 1.0
    assert -1.0 <= maps[18:].min() and maps[18:].max() <= 1.0
    # PAF vectors are unit length where only one limb is present
    for cx, cy in PAF_CHANNELS:
        mag = np.hypot(maps[PAF_OFFSET + cx], maps[PAF_OFFSET + cy])
        assert mag.max() <= 1.0 + 1e-5
    assert not render_pose_maps(np.zeros((0, 18, 3)), (100, 80), (13, 10)).any()
    # any output resolution, including ones that do not divide the image
    assert render_pose_maps(kp, (200, 200), (7, 131)).shape == (56, 7, 131)
    absent = kp.copy()
    absent[..., 2] = 0
    assert not render_pose_maps(absent, (200, 200), (25, 25)).any()


def test_render_rejects_bad_input():
    with pytest.raises(ValueError, match="keypoints"):
        render_pose_maps(np.ones((2, 17, 3)), (100, 100), (10, 10))
    with pytest.raises(ValueError, match="out_size"):
        render_pose_maps(np.ones((1, 18, 3)), (100, 100), (0, 10))
    with pytest.raises(ValueError, match="image_size"):
        render_pose_maps(np.ones((1, 18, 3)), (100, 100, 5)[:1], (10, 10))


def test_flip_permutation_is_an_involution():
    perm, negate = flip_permutation()
    assert sorted(perm) == list(range(56))
    assert [perm[p] for p in perm] == list(range(56))
    assert len(negate) == 19 and all(c >= 18 for c in negate)


def test_flip_twice_is_identity_numpy_and_torch(rng):
    torch = pytest.importorskip("torch")
    maps = rng.standard_normal((2, 56, 9, 7)).astype(np.float32)
    np.testing.assert_array_equal(flip_pose_maps(flip_pose_maps(maps)), maps)
    t = torch.from_numpy(maps)
    flipped = flip_pose_maps(t)
    assert isinstance(flipped, torch.Tensor)
    np.testing.assert_allclose(flipped.numpy(), flip_pose_maps(maps), atol=0)
    torch.testing.assert_close(flip_pose_maps(flipped), t)
    with pytest.raises(ValueError):
        flip_pose_maps(maps[:, :55])


@pytest.mark.parametrize("out_size", [(46, 38), (36, 18), (23, 50)])
def test_flip_of_rendering_equals_rendering_of_mirrored_people(rng, out_size):
    img_h, img_w = 368, 300
    kp = make_people(rng, [90, 200], [30, 50], [280, 250], jitter=3.0)
    maps = render_pose_maps(kp, (img_h, img_w), out_size)
    mirrored = render_pose_maps(flip_keypoints(kp, img_w), (img_h, img_w), out_size)
    np.testing.assert_allclose(flip_pose_maps(maps), mirrored, atol=1e-5)


def test_round_trip_render_parse_multi_person(rng):
    img_h, img_w = 368, 432
    truth = make_people(rng, [80, 205, 335], [40, 30, 60], [300, 320, 280])
    maps = render_pose_maps(truth, (img_h, img_w), (img_h // 8, img_w // 8))
    found = parse_pose_maps(maps, image_size=(img_h, img_w))
    assert len(found) == 3
    assert (found.num_parts == 18).all()
    idx = match_people(found.keypoints, truth)
    assert sorted(idx) == [0, 1, 2]
    err = np.abs(found.keypoints[..., :2] - truth[idx, :, :2]).max()
    assert err < 1.0, err  # image pixels, maps at stride 8
    assert (found.keypoints[..., 2] > 0.5).all()
    # boxes enclose the keypoints
    for box, kp in zip(found.boxes, found.keypoints):
        assert box[0] <= kp[:, 0].min() + 1e-4 and kp[:, 0].max() <= box[2] + 1e-4
        assert box[1] <= kp[:, 1].min() + 1e-4 and kp[:, 1].max() <= box[3] + 1e-4


def test_round_trip_with_missing_keypoints_and_torch_input(rng):
    torch = pytest.importorskip("torch")
    truth = make_people(rng, [70, 190], [30, 40], [260, 250])
    truth[0, [4, 7, 16], 2] = 0  # wrists and an ear not visible
    truth[1, [10, 13], 2] = 0  # ankles cut off
    maps = render_pose_maps(truth, (320, 256), (40, 32))
    found = parse_pose_maps(torch.from_numpy(maps)[None], image_size=(320, 256))
    assert len(found) == 2
    idx = match_people(found.keypoints, truth)
    for f, t in zip(found.keypoints, truth[idx]):
        np.testing.assert_array_equal(f[:, 2] > 0, t[:, 2] > 0)
        vis = t[:, 2] > 0
        assert np.abs(f[vis, :2] - t[vis, :2]).max() < 1.0


def test_swapped_paf_assignment_breaks_the_round_trip(rng):
    """The PAF channel table matters: exchanging two limbs' channels loses the skeleton."""
    truth = make_people(rng, [100], [20], [300])
    maps = render_pose_maps(truth, (368, 200), (46, 25))
    (ax, ay), (bx, by) = PAF_CHANNELS[0], PAF_CHANNELS[6]  # neck-rshoulder vs neck-rhip
    swapped = maps.copy()
    swapped[[PAF_OFFSET + ax, PAF_OFFSET + ay, PAF_OFFSET + bx, PAF_OFFSET + by]] = \
        maps[[PAF_OFFSET + bx, PAF_OFFSET + by, PAF_OFFSET + ax, PAF_OFFSET + ay]]
    good = parse_pose_maps(maps, (368, 200))
    bad = parse_pose_maps(swapped, (368, 200))
    assert len(good) == 1 and good.num_parts[0] == 18
    assert len(bad) != 1 or bad.num_parts[0] < 18


def test_parse_empty_and_noise(rng):
    empty = parse_pose_maps(np.zeros((56, 20, 16), np.float32), image_size=(160, 128))
    assert len(empty) == 0 and empty.keypoints.shape == (0, 18, 3) and empty.boxes.shape == (0, 4)
    noise = rng.uniform(-0.05, 0.05, (56, 30, 30)).astype(np.float32)
    assert len(parse_pose_maps(noise)) == 0
    with pytest.raises(ValueError, match="56"):
        parse_pose_maps(np.zeros((57, 10, 10)))
    with pytest.raises(ValueError, match="one image at a time"):
        parse_pose_maps(np.zeros((2, 56, 10, 10)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_map_values_read_as_nothing(rng, bad):
    """A non-finite value (a broken network output) is read as 0, by both parsers."""
    import torch

    from spot_edge.pose.device_parse import parse_pose_maps_torch

    truth = make_people(rng, [100], [20], [300])
    maps = render_pose_maps(truth, (368, 200), (46, 25))
    clean = parse_pose_maps(maps, (368, 200))
    spoiled = maps.copy()
    spoiled[3, 40, 2] = bad  # far from the person
    spoiled[30, 0, 24] = bad
    torch_found = parse_pose_maps_torch(torch.from_numpy(spoiled), (368, 200))[0]
    for found in (parse_pose_maps(spoiled, (368, 200)), torch_found):
        assert len(found) == len(clean) == 1
        np.testing.assert_allclose(found.keypoints, clean.keypoints, atol=1e-4)


def test_find_peaks_locates_a_blob_between_pixels_and_at_the_edge():
    """One rendered keypoint between map pixels, one on the frame edge: each gives one peak at its
    position (frame pixels), its confidence read at the peak (not at the nearest map pixel)."""
    truth = np.zeros((2, 18, 3))
    truth[0, 0] = (101.3, 57.8, 1)  # between map pixel centres (8 j + 3.5)
    truth[1, 0] = (0.0, 120.0, 1)  # on the left edge
    maps = render_pose_maps(truth, (160, 200), (20, 25))
    geometry = MapGeometry.create((20, 25), (160, 200))
    peaks = find_peaks(maps[:18], geometry, threshold=0.1)
    assert list(peaks.counts) == [2] + [0] * 17
    pos = peaks.xy + peaks.offset
    order = np.argsort(pos[:, 0])
    np.testing.assert_allclose(pos[order], truth[::-1, 0, :2], atol=0.6)
    # confidence at the peak: above every map pixel around it (those sit up to 4 px away)
    inner = order[1]
    assert peaks.score[inner] > maps[0, 4:11, 9:16].max() + 0.02


def test_parse_config_thresholds(rng):
    truth = make_people(rng, [100], [20], [300])
    maps = render_pose_maps(truth, (368, 200), (46, 25))
    assert len(parse_pose_maps(maps, config=ParseConfig(min_parts=19))) == 0
    assert len(parse_pose_maps(maps, config=ParseConfig(peak_threshold=1.01))) == 0


def test_parse_batch(rng):
    from spot_edge.pose.parse import parse_pose_maps_batch

    maps = np.stack([render_pose_maps(make_people(rng, [100], [20], [300]), (368, 200), (46, 25)),
                     np.zeros((56, 46, 25), np.float32)])
    found = parse_pose_maps_batch(maps, image_size=(368, 200))
    assert [len(f) for f in found] == [1, 0]
