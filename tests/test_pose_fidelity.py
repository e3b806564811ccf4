"""The numpy parser against a literal model of the original OpenPose post-processing.

tests/pose_reference.py upsamples the maps to the frame with OpenCV, blurs with SciPy and runs
the original's loops; spot_edge.pose.parse never builds the full-resolution maps. On generated
multi-person scenes (rendered, noisy, against the frame edges, values above 1, soft network-like
maps; padded and resized frames) both must find the same people with keypoints within 1 px and
the same confidences and person scores.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from pose_reference import assert_same_people, reference_parse, reference_peaks, upsample
from pose_scenes import SCENE_KINDS, scene
from spot_edge.pose.parse import ParseConfig, parse_pose_maps
from spot_edge.pose.peaks import find_peaks
from spot_edge.pose.resample import MapGeometry

FRAME = (368, 656)


@pytest.mark.parametrize("valid, output", [(None, None), ((362, 650), None), ((362, 650), (720, 1296)),
                                           (None, (184, 328))])
def test_axis_operators_equal_opencv_resizes_and_scipy_blur(rng, valid, output):
    maps = rng.standard_normal((46, 82))
    geometry = MapGeometry.create((46, 82), FRAME, valid, output)
    ay, ax = geometry.axis(0), geometry.axis(1)
    up = upsample(maps[None], FRAME, valid, output)[0]
    np.testing.assert_allclose(ay.values @ maps @ ax.values.T, up, atol=1e-4)
    np.testing.assert_allclose(ay.smooth @ maps @ ax.smooth.T, gaussian_filter(up, 3.0), atol=1e-4)
    # the sparse band of A reproduces the dense rows
    rows = ay.tap_start[:, None] + np.arange(ay.taps.shape[1])
    dense = np.zeros_like(ay.values)
    np.put_along_axis(dense, rows, ay.taps, axis=1)
    np.testing.assert_allclose(dense, ay.values, atol=1e-12)


def test_single_resize_matches_cv2_for_any_factor(rng):
    from spot_edge.pose.resample import resize_matrix

    x = rng.standard_normal((13, 7)).astype(np.float32)
    for size in [(13, 7), (104, 56), (30, 21), (9, 5)]:
        ref = cv2.resize(x, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        np.testing.assert_allclose(resize_matrix(13, size[0]) @ x @ resize_matrix(7, size[1]).T, ref, atol=2e-5)


@pytest.mark.parametrize("kind", SCENE_KINDS)
@pytest.mark.parametrize("seed, people", [(1, 3), (7, 12)])
def test_peaks_are_exactly_the_originals(kind, seed, people):
    maps, _ = scene(kind, seed, n=people)
    mine = find_peaks(maps[:18], MapGeometry.create(maps.shape[1:], FRAME), 0.1, 128, subpixel=False)
    ref = reference_peaks(upsample(maps[:18], FRAME))
    for part in range(18):
        got = [tuple(p) for p in mine.xy[mine.of_part(part)].tolist()]
        assert got == [(x, y) for x, y, _ in ref[part]], f"part {part}"
        np.testing.assert_allclose(mine.score[mine.of_part(part)], [c for *_, c in ref[part]], atol=1e-5)


@pytest.mark.parametrize("kind", SCENE_KINDS)
@pytest.mark.parametrize("seed, people", [(2, 5), (7, 12)])
def test_parser_finds_the_originals_people(kind, seed, people):
    maps, _ = scene(kind, seed, n=people)
    ref_kp, ref_scores = reference_parse(maps, FRAME)
    assert len(ref_kp) >= people - 2  # the scenes are meaningful: the original finds most people
    assert_same_people(parse_pose_maps(maps, FRAME), ref_kp, ref_scores)
    exact = parse_pose_maps(maps, FRAME, ParseConfig(subpixel=False))  # the original's integer pixels
    assert_same_people(exact, ref_kp, ref_scores, px=1e-6)


@pytest.mark.parametrize("kind, valid, output", [("rendered", (362, 650), None), ("edge", (362, 650), (543, 975)),
                                                  ("edge", (365, 651), None), ("noisy", None, (276, 492))])
def test_parser_follows_padding_and_resized_frames(kind, valid, output):
    maps, _ = scene(kind, 4, n=6)
    ref_kp, ref_scores = reference_parse(maps, FRAME, valid, output)
    found = parse_pose_maps(maps, FRAME, valid_size=valid, output_size=output)
    assert_same_people(found, ref_kp, ref_scores)


def test_what_the_old_parser_got_wrong(rng):
    """The issue's three defects, each against the reference: confidence at the refined peak
    (not the nearest map pixel), keypoints on the frame edge (not pulled inward), maps above 1
    (not clamped first)."""
    maps, truth = scene("edge", 11, n=4)
    ref_kp, ref_scores = reference_parse(maps, FRAME)
    found = parse_pose_maps(maps, FRAME)
    assert_same_people(found, ref_kp, ref_scores)
    edge = found.keypoints[..., 2] > 0
    xs = found.keypoints[..., 0][edge]
    assert xs.min() < 1.0  # a keypoint on the left edge stays there (the old parser: >= 3.5 - 0.5)
    strong = maps.copy()
    strong[:18] *= 1.5
    ref_kp2, ref_scores2 = reference_parse(strong, FRAME)
    found2 = parse_pose_maps(strong, FRAME)
    assert_same_people(found2, ref_kp2, ref_scores2)
    assert found2.keypoints[..., 2].max() > 1.2  # read as they are, not clamped
