"""A slow, literal float64 model of the original OpenPose post-processing, for tests only.

It follows the procedure of the original Python/Matlab demo (the one the PyTorch port of
``body_pose_model.pth`` reproduces; see docs/pose-maps.md) step by step, at full frame
resolution and with plain loops, using OpenCV and SciPy for the image operations so that it
shares nothing with spot_edge.pose's fast operators:

1. every map is resized bicubically (``cv2.INTER_CUBIC``) to the image it covers, the padding is
   cut off, and the result is resized bicubically to the output frame;
2. each keypoint map is blurred (``scipy.ndimage.gaussian_filter``, sigma 3); a pixel is a peak
   when it is >= its four neighbours (0 beyond the frame) and above the threshold; the peak's
   confidence is the unblurred map at that pixel;
3. each limb's candidate pairs are scored by sampling its two PAF channels at 10 rounded points
   from a to b, projecting on the unit vector a -> b, averaging, and adding
   ``min(0.5 * frame_height / |b - a| - 1, 0)``; a pair needs more than 80% of samples above
   0.05 and a positive score;
4. per limb, pairs are accepted best first while both ends are unused, at most min(nA, nB);
5. people are assembled limb by limb (see spot_edge.pose.grouping for the rules) and people
   with fewer than 4 parts or a mean score below 0.4 are dropped.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

# The COCO-18 model's limbs (part a, part b) and their PAF channel pairs within the 38 PAF maps,
# written out again here on purpose (independent of spot_edge.pose.skeleton).
REF_LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
             (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17)]
REF_PAF = [(12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9),
           (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19), (26, 27)]


def upsample(maps: np.ndarray, image_size, valid_size=None, output_size=None) -> np.ndarray:
    """``(C, h, w)`` maps -> ``(C, H_o, W_o)`` float64 at frame resolution (step 1)."""
    hc, wc = image_size
    hv, wv = valid_size or image_size
    ho, wo = output_size or (hv, wv)
    out = []
    for channel in np.asarray(maps, np.float64):
        up = cv2.resize(channel, (wc, hc), interpolation=cv2.INTER_CUBIC)[:hv, :wv]
        if (ho, wo) != (hv, wv):
            up = cv2.resize(np.ascontiguousarray(up), (wo, ho), interpolation=cv2.INTER_CUBIC)
        out.append(up)
    return np.stack(out)


def reference_peaks(heat: np.ndarray, threshold: float = 0.1, sigma: float = 3.0) -> list[list[tuple]]:
    """Per part the list of ``(x, y, confidence)`` in raster order (step 2)."""
    result = []
    for channel in heat:
        blurred = gaussian_filter(channel, sigma=sigma)
        padded = np.pad(blurred, 1, constant_values=0.0)
        h, w = blurred.shape
        is_peak = blurred > threshold
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            is_peak &= blurred >= padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        ys, xs = np.nonzero(is_peak)
        result.append([(int(x), int(y), float(channel[y, x])) for y, x in zip(ys, xs)])
    return result


def reference_limb_pairs(paf: np.ndarray, cand_a, cand_b, frame_height: int, num_samples: int = 10,
                         paf_threshold: float = 0.05, above: float = 0.8) -> list[tuple[int, int, float]]:
    """Accepted pairs ``(i, j, score)`` of one limb, best first (steps 3 and 4)."""
    scored = []
    for i, (xa, ya, _) in enumerate(cand_a):
        for j, (xb, yb, _) in enumerate(cand_b):
            dx, dy = xb - xa, yb - ya
            norm = max(math.hypot(dx, dy), 0.001)
            ux, uy = dx / norm, dy / norm
            xs = np.linspace(xa, xb, num_samples)
            ys = np.linspace(ya, yb, num_samples)
            proj = []
            for x, y in zip(xs, ys):
                px, py = int(round(float(x))), int(round(float(y)))
                proj.append(paf[0][py, px] * ux + paf[1][py, px] * uy)
            proj = np.array(proj)
            score = sum(proj) / len(proj) + min(0.5 * frame_height / norm - 1.0, 0.0)
            if np.count_nonzero(proj > paf_threshold) > above * len(proj) and score > 0:
                scored.append((i, j, float(score)))
    scored.sort(key=lambda item: item[2], reverse=True)  # stable: ties keep (i, j) order
    kept, used_a, used_b = [], set(), set()
    for i, j, s in scored:
        if i in used_a or j in used_b:
            continue
        kept.append((i, j, s))
        used_a.add(i)
        used_b.add(j)
        if len(kept) >= min(len(cand_a), len(cand_b)):
            break
    return kept


def reference_parse(maps: np.ndarray, image_size, valid_size=None, output_size=None, threshold: float = 0.1,
                    min_parts: int = 4, min_mean: float = 0.4):
    """People of ``(56, h, w)`` maps: ``(keypoints (P, 18, 3), mean scores (P,))``; keypoint
    (x, y) are integer frame pixels, absent ones (0, 0, 0)."""
    up = upsample(maps, image_size, valid_size, output_size)
    heat, paf = up[:18], up[18:]
    peaks = reference_peaks(heat, threshold)
    ids, candidates = [], []
    for part_peaks in peaks:
        ids.append(list(range(len(candidates), len(candidates) + len(part_peaks))))
        candidates.extend(part_peaks)
    # person: [18 slots of global ids (-1 absent), total score, part count]
    people: list[list] = []
    for limb, (a, b) in enumerate(REF_LIMBS):
        if not peaks[a] or not peaks[b]:
            continue
        cx, cy = REF_PAF[limb]
        for i, j, s in reference_limb_pairs((paf[cx], paf[cy]), peaks[a], peaks[b], up.shape[1]):
            ga, gb = ids[a][i], ids[b][j]
            rows = [p for p in people if p[0][a] == ga or p[0][b] == gb]
            if len(rows) == 1:
                p = rows[0]
                if p[0][b] != gb:
                    p[0][b] = gb
                    p[2] += 1
                    p[1] += candidates[gb][2] + s
            elif len(rows) == 2:
                p1, p2 = rows
                if not any(x >= 0 and y >= 0 for x, y in zip(p1[0], p2[0])):
                    p1[0] = [x if x >= 0 else y for x, y in zip(p1[0], p2[0])]
                    p1[1] += p2[1] + s
                    p1[2] += p2[2]
                    people.remove(p2)
                else:
                    p1[0][b] = gb
                    p1[2] += 1
                    p1[1] += candidates[gb][2] + s
            elif len(rows) > 2:
                raise AssertionError("the original would fail here (three people share a candidate)")
            elif limb < 17:
                slots = [-1] * 18
                slots[a], slots[b] = ga, gb
                people.append([slots, candidates[ga][2] + candidates[gb][2] + s, 2])
    kept = [p for p in people if p[2] >= min_parts and p[1] / p[2] >= min_mean]
    keypoints = np.zeros((len(kept), 18, 3))
    for n, (slots, _, _) in enumerate(kept):
        for part, g in enumerate(slots):
            if g >= 0:
                keypoints[n, part] = candidates[g]
    scores = np.array([p[1] / p[2] for p in kept])
    return keypoints, scores


def match_people(found_kp: np.ndarray, ref_kp: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (found index, reference index) by the smallest mean distance over shared keypoints."""
    pairs, used = [], set()
    for f in range(len(found_kp)):
        best, best_d = None, np.inf
        for r in range(len(ref_kp)):
            if r in used:
                continue
            both = (found_kp[f, :, 2] > 0) & (ref_kp[r, :, 2] > 0)
            if not both.any():
                continue
            d = np.linalg.norm(found_kp[f, both, :2] - ref_kp[r, both, :2], axis=1).mean()
            if d < best_d:
                best, best_d = r, d
        if best is not None:
            used.add(best)
            pairs.append((f, best))
    return pairs


def assert_same_people(found, ref_kp: np.ndarray, ref_scores: np.ndarray, px: float = 1.0,
                       conf_tol: float = 2e-3, score_tol: float = 2e-3) -> None:
    """``found`` (PoseDetections) has the reference's people: same count and keypoint sets,
    keypoints within ``px`` pixels, confidences and person scores within the tolerances
    (relative to max(1, |value|))."""
    assert len(found) == len(ref_kp), f"{len(found)} people found, the reference has {len(ref_kp)}"
    pairs = match_people(found.keypoints, ref_kp)
    assert len(pairs) == len(ref_kp)
    for f, r in pairs:
        got, want = found.keypoints[f], ref_kp[r]
        np.testing.assert_array_equal(got[:, 2] > 0, want[:, 2] > 0, err_msg=f"person {f}: keypoint sets differ")
        vis = want[:, 2] > 0
        err = np.abs(got[vis, :2] - want[vis, :2]).max()
        assert err <= px, f"person {f}: keypoint off by {err:.3f} px"
        tol = conf_tol * np.maximum(1.0, np.abs(want[vis, 2]))
        assert (np.abs(got[vis, 2] - want[vis, 2]) <= tol).all(), (got[vis, 2], want[vis, 2])
        assert abs(found.scores[f] - ref_scores[r]) <= score_tol * max(1.0, abs(ref_scores[r])), \
            (found.scores[f], ref_scores[r])
