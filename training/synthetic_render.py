"""Rendering one synthetic person image: a 3-D stick-and-box body model drawn with OpenCV.

Per image: walking phase (leg and arm swing), viewpoint (rotation about the vertical axis:
front / back / sides, with depth-ordered drawing so far limbs are occluded), scale, position
jitter, lighting, background clutter, an occasional occluder.

Visible cameras 1, 2, 4, 5 render colour images (per-camera colour cast and background
style). Infrared cameras 3, 6 render thermal images: one intensity channel replicated to
three, the body warmer than the background, skin warmest, clothing texture only weakly
visible, random contrast / gamma, blur and sensor noise.

Keypoints are ``(P, 18, 3)`` with ``P = 1``: pixel coordinates (x right, y down, pixel centres
at integers) of the returned image in OpenPose COCO order (``spot_edge.pose.skeleton``) and a
visibility flag (0 for face points turned away from the camera and points outside the image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from spot_edge.pose.skeleton import KEYPOINT_NAMES, NUM_KEYPOINTS
from spot_edge.training.synthetic_identity import INFRARED_CAMERAS, Identity

__all__ = ["render_person"]

_K = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Label map values of the rendered figure.
BG, SKIN, HAIR, TOP, BOTTOM, SHOES, ACCESSORY = range(7)


def _skeleton_3d(ident: Identity, phase: float) -> dict[str, np.ndarray]:
    """Joint positions in the body frame, units of stature: x to the person's left,
    y up from the floor, z forward (the direction the person faces)."""
    s = ident
    hip_y = s.leg_fraction
    neck_y = 0.82
    sh_y = neck_y - 0.025
    sw, hw = s.shoulder_width / 2, s.hip_width / 2
    amp = s.gait_amplitude
    pts: dict[str, np.ndarray] = {}
    pts["neck"] = np.array([0.0, neck_y, 0.0])
    pts["nose"] = np.array([0.0, 0.905, s.head_radius * 0.95])
    for side, sx in (("right", -1.0), ("left", 1.0)):
        pts[f"{side}_eye"] = np.array([sx * 0.3 * s.head_radius, 0.925, s.head_radius * 0.85])
        pts[f"{side}_ear"] = np.array([sx * s.head_radius, 0.915, -0.1 * s.head_radius])
        pts[f"{side}_shoulder"] = np.array([sx * sw, sh_y, 0.0])
        pts[f"{side}_hip"] = np.array([sx * hw, hip_y, 0.0])
        # Legs swing in the y-z plane, right and left in opposite phase; the knee bends on
        # the back swing.
        swing = amp * math.sin(phase) * (1 if side == "right" else -1)
        upper, lower = hip_y * 0.5, hip_y * 0.5 - 0.035
        knee = pts[f"{side}_hip"] + upper * np.array([0.0, -math.cos(swing), math.sin(swing)])
        bend = max(0.0, -swing) * 1.2 + 0.05
        ankle = knee + lower * np.array([0.0, -math.cos(swing - bend), math.sin(swing - bend)])
        pts[f"{side}_knee"], pts[f"{side}_ankle"] = knee, ankle
        # Arms swing opposite to the leg of the same side, elbows slightly bent forward.
        arm_swing = -0.7 * swing
        ua, la = s.arm_length * 0.5, s.arm_length * 0.5
        elbow = pts[f"{side}_shoulder"] + ua * np.array([sx * 0.08, -math.cos(arm_swing), math.sin(arm_swing)])
        fore = arm_swing + 0.25
        wrist = elbow + la * np.array([sx * 0.04, -math.cos(fore), math.sin(fore)])
        pts[f"{side}_elbow"], pts[f"{side}_wrist"] = elbow, wrist
    return pts


def _rotate(points: np.ndarray, yaw: float) -> np.ndarray:
    """Rotate body-frame points (..., 3) about the vertical axis; yaw 0 faces the camera.
    Returns camera-frame points: x image-left-to-right, y up, z toward the viewer."""
    c, s = math.cos(yaw), math.sin(yaw)
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    # Facing the camera the person's left (+x body) appears on the image right.
    return np.stack([c * x + s * z, y, -s * x + c * z], axis=-1)


def _pattern(kind: str, h: int, w: int, period_px: float, phase: tuple[float, float]) -> np.ndarray:
    """Binary texture (h, w) float32 in {0, 1}."""
    if kind == "solid":
        return np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    p = max(period_px, 2.0)
    hs = ((yy + phase[0]) // (p / 2)) % 2
    vs = ((xx + phase[1]) // (p / 2)) % 2
    if kind == "hstripes":
        return hs
    if kind == "vstripes":
        return vs
    if kind == "checks":
        return np.abs(hs - vs)
    return (((xx + yy + phase[0]) // (p / 2)) % 2).astype(np.float32)


@dataclass
class _Part:
    depth: float
    draw: Callable[[np.ndarray, int], None]
    label: int


def render_person(ident: Identity, camera: int, rng: np.random.Generator, height: int = 128,
                  width: int = 64, supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Render one image of ``ident`` seen by ``camera``.

    Returns:
        ``image`` (height, width, 3) uint8 **BGR** (OpenCV order), infrared cameras give three
        identical channels; ``keypoints`` (1, 18, 3) float32 (x, y, visibility) in pixels of
        the returned image.
    """
    ss = supersample
    H, W = height * ss, width * ss
    infrared = camera in INFRARED_CAMERAS

    # Viewpoint: each camera has a preferred direction, plus spread; yaw 0 front, pi back.
    cam_pref = {1: 0.0, 2: math.pi / 2, 3: 0.0, 4: math.pi, 5: -math.pi / 2, 6: math.pi}[camera]
    yaw = cam_pref + rng.normal(0, 0.9) if rng.random() < 0.7 else rng.uniform(-math.pi, math.pi)
    phase = rng.uniform(0, 2 * math.pi)
    stature_px = ident.stature * H * rng.uniform(0.9, 1.05)
    feet_y = H * rng.uniform(0.955, 0.995)
    cx = W * (0.5 + rng.normal(0, 0.05))

    joints = _skeleton_3d(ident, phase)
    names = list(KEYPOINT_NAMES)
    body = np.stack([joints[n] for n in names])
    cam3d = _rotate(body, yaw)

    def project(p3: np.ndarray) -> np.ndarray:
        return np.stack([cx + p3[..., 0] * stature_px, feet_y - p3[..., 1] * stature_px], axis=-1)

    xy = project(cam3d)
    depth = cam3d[:, 2]
    k = _K

    label = np.zeros((H, W), np.uint8)
    shade = np.ones((H, W), np.float32)
    parts: list[_Part] = []
    thick = ident.build * stature_px

    def ipt(p: np.ndarray) -> tuple[int, int]:
        return int(round(float(p[0]))), int(round(float(p[1])))

    def limb(a: int, b: int, width_frac: float, lab: int, dshade: float) -> _Part:
        pa, pb = xy[a].copy(), xy[b].copy()
        t = max(1, int(round(width_frac * thick)))

        def draw(img: np.ndarray, value: int) -> None:
            cv2.line(img, ipt(pa), ipt(pb), value, t, cv2.LINE_8)
            cv2.circle(img, ipt(pb), max(1, t // 2), value, -1, cv2.LINE_8)

        return _Part(float((depth[a] + depth[b]) / 2) + dshade, draw, lab)

    # Torso: convex hull of a box between shoulders and hips.
    half_d = ident.torso_depth / 2
    box = []
    for jn in ("right_shoulder", "left_shoulder", "right_hip", "left_hip"):
        for dz in (-half_d, half_d):
            box.append(joints[jn] + np.array([0.0, 0.0, dz]))
    torso_poly = project(_rotate(np.stack(box), yaw)).astype(np.int32)
    hull = cv2.convexHull(torso_poly)

    def draw_poly(poly: np.ndarray) -> Callable[[np.ndarray, int], None]:
        return lambda img, value: cv2.fillConvexPoly(img, poly, value, cv2.LINE_8)

    parts.append(_Part(0.0, draw_poly(hull), TOP))
    # Head and neck.
    head_c3 = _rotate(np.array([0.0, 0.915, 0.0]), yaw)
    head_c = project(head_c3)
    head_r = max(2, int(round(ident.head_radius * stature_px)))
    neck_top = project(_rotate(np.array([0.0, 0.88, 0.0]), yaw))
    parts.append(_Part(0.001, lambda img, v: cv2.line(img, ipt(xy[k["neck"]]), ipt(neck_top),
                                                        v, max(1, int(0.045 * thick)), cv2.LINE_8), SKIN))
    facing = math.cos(yaw)  # 1 facing the camera, -1 back to it
    if ident.long_hair:
        hair_poly = np.array([ipt(head_c + np.array([-head_r * 1.1, 0])), ipt(head_c + np.array([head_r * 1.1, 0])),
                              ipt(head_c + np.array([head_r * 1.2, head_r * 2.4])),
                              ipt(head_c + np.array([-head_r * 1.2, head_r * 2.4]))], np.int32)
        parts.append(_Part(-0.05 if facing > -0.3 else 0.05, draw_poly(hair_poly), HAIR))
    parts.append(_Part(0.002, lambda img, v: cv2.circle(img, ipt(head_c), head_r, v, -1, cv2.LINE_8), SKIN))
    # Hair cap: the back half of the head (shifted away from the face direction).
    back_dir = -math.sin(yaw)  # image-x direction of the back of the head
    cap_c = head_c + np.array([back_dir * head_r * 0.35, -head_r * (0.35 + 0.3 * max(facing, 0))])
    cap_r = int(head_r * (1.0 if facing < -0.3 else 0.85))
    parts.append(_Part(0.003, lambda img, v: cv2.circle(img, ipt(cap_c), cap_r, v, -1, cv2.LINE_8), HAIR))
    if ident.accessory == "cap":
        brim = head_c + np.array([math.sin(yaw) * head_r * 0.6, -head_r * 0.55])
        parts.append(_Part(0.004, lambda img, v: cv2.ellipse(img, ipt(brim), (int(head_r * 1.15), max(1, int(head_r * 0.45))),
                                                             0, 0, 360, v, -1, cv2.LINE_8), ACCESSORY))
        parts.append(_Part(0.0041, lambda img, v: cv2.circle(img, ipt(head_c + np.array([0, -head_r * 0.45])),
                                                             int(head_r * 0.8), v, -1, cv2.LINE_8), ACCESSORY))

    sleeve_lower = TOP if ident.long_sleeves else SKIN
    for side in ("right", "left"):
        sh, el, wr = k[f"{side}_shoulder"], k[f"{side}_elbow"], k[f"{side}_wrist"]
        hp, kn, an = k[f"{side}_hip"], k[f"{side}_knee"], k[f"{side}_ankle"]
        parts.append(limb(sh, el, 0.085, TOP, 0.01))
        parts.append(limb(el, wr, 0.07, sleeve_lower, 0.011))
        hand = xy[wr].copy()
        parts.append(_Part(float(depth[wr]) + 0.012,
                           lambda img, v, hand=hand: cv2.circle(img, ipt(hand), max(1, int(0.035 * thick)), v, -1), SKIN))
        upper_leg = BOTTOM if ident.legwear != "skirt" else SKIN
        lower_leg = BOTTOM if ident.legwear == "trousers" else SKIN
        parts.append(limb(hp, kn, 0.11, upper_leg, -0.02))
        parts.append(limb(kn, an, 0.085, lower_leg, -0.021))
        foot = xy[an] + np.array([math.sin(yaw) * 0.04 * stature_px, 0.01 * stature_px])
        parts.append(_Part(float(depth[an]) - 0.019,
                           lambda img, v, foot=foot: cv2.ellipse(img, ipt(foot), (max(1, int(0.045 * thick)), max(1, int(0.022 * thick))),
                                                                 0, 0, 360, v, -1), SHOES))
    # Pelvis (legwear waist) and skirt.
    pelvis = []
    for jn in ("right_hip", "left_hip"):
        for dz in (-half_d, half_d):
            for dy in (0.0, 0.05):
                pelvis.append(joints[jn] + np.array([0.0, dy, dz]))
    if ident.legwear == "skirt":
        for jn in ("right_knee", "left_knee"):
            for dz in (-half_d, half_d):
                pelvis.append(joints[jn] * np.array([1.6, 1.0, 1.0]) + np.array([0.0, 0.02, dz]))
    pelvis_hull = cv2.convexHull(project(_rotate(np.stack(pelvis), yaw)).astype(np.int32))
    parts.append(_Part(0.0005, draw_poly(pelvis_hull), BOTTOM))
    # Accessories carried on the body.
    if ident.accessory == "backpack":
        bp = []
        for dx in (-0.8, 0.8):
            for dy in (0.6, 0.77):
                for dz in (-half_d, -half_d - 0.08):
                    bp.append(np.array([dx * ident.shoulder_width / 2, dy, dz]))
        bp_hull = cv2.convexHull(project(_rotate(np.stack(bp), yaw)).astype(np.int32))
        parts.append(_Part(float(_rotate(np.array([0, 0.7, -half_d - 0.04]), yaw)[2]), draw_poly(bp_hull), ACCESSORY))
    elif ident.accessory == "bag":
        bag = []
        for dx in (0.0, 0.09):
            for dy in (0.46, 0.58):
                for dz in (-0.05, 0.05):
                    bag.append(np.array([ident.hip_width / 2 + 0.03 + dx, dy, dz]))
        bag_hull = cv2.convexHull(project(_rotate(np.stack(bag), yaw)).astype(np.int32))
        bag_depth = float(_rotate(np.array([ident.hip_width / 2 + 0.07, 0.5, 0.0]), yaw)[2])
        strap_a, strap_b = xy[k["right_shoulder"]], project(_rotate(np.array([ident.hip_width / 2 + 0.07, 0.58, 0.0]), yaw))
        parts.append(_Part(bag_depth + 0.03, draw_poly(bag_hull), ACCESSORY))
        parts.append(_Part(0.02 if facing > 0 else -0.02, lambda img, v: cv2.line(
            img, ipt(strap_a), ipt(strap_b), v, max(1, int(0.02 * thick))), ACCESSORY))

    for part in sorted(parts, key=lambda p: p.depth):
        part.draw(label, part.label)
        # Far parts a little darker (self-shadowing), near parts a little brighter.
        s = float(np.clip(1.0 + 1.5 * part.depth, 0.75, 1.12))
        part.draw(shade, s)  # type: ignore[arg-type]

    # Occluder in front of the lower body now and then.
    occluder = None
    if rng.random() < 0.12:
        ow, oh = int(W * rng.uniform(0.3, 0.7)), int(H * rng.uniform(0.12, 0.3))
        ox = int(rng.uniform(-0.2, 0.8) * W)
        occluder = (ox, H - oh, ox + ow, H)

    period_px = ident.texture_period * stature_px
    tex_phase = (float(rng.uniform(0, period_px)), float(rng.uniform(0, period_px)))
    top_tex = _pattern(ident.top_texture, H, W, period_px, tex_phase)
    bottom_tex = _pattern(ident.bottom_texture, H, W, period_px * 1.3, tex_phase)

    if infrared:
        image = _thermal(ident, camera, label, shade, top_tex, bottom_tex, occluder, rng)
    else:
        image = _colour_image(ident, camera, label, shade, top_tex, bottom_tex, occluder, rng)
    if ss > 1:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    image = _finish(image, infrared, rng)

    # Keypoints in output pixels (pixel centres at integers).
    out_xy = (xy + 0.5) / ss - 0.5
    vis = np.ones(NUM_KEYPOINTS, np.float32)
    face = _rotate(body, yaw)[:, 2]
    for name in ("nose", "right_eye", "left_eye"):
        if face[_K[name]] <= 0.2 * ident.head_radius:
            vis[_K[name]] = 0.0
    for name in ("right_ear", "left_ear"):
        if face[_K[name]] < -0.6 * ident.head_radius:
            vis[_K[name]] = 0.0
    outside = (out_xy[:, 0] < 0) | (out_xy[:, 0] > width - 1) | (out_xy[:, 1] < 0) | (out_xy[:, 1] > height - 1)
    vis[outside] = 0.0
    keypoints = np.concatenate([out_xy, vis[:, None]], axis=1)[None].astype(np.float32)
    return image, keypoints


def _background_colour(camera: int, rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """Cluttered RGB background (H, W, 3) float32 in [0, 1] with a per-camera style."""
    style = {1: (0.62, 0.58, 0.52), 2: (0.45, 0.47, 0.52), 4: (0.55, 0.6, 0.5), 5: (0.5, 0.5, 0.55)}[camera]
    base = np.clip(np.array(style) + rng.normal(0, 0.08, 3), 0, 1).astype(np.float32)
    yy = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(base * (0.8 + 0.4 * yy * rng.uniform(-0.5, 1)), (H, W, 3)).copy()
    floor_y = int(H * rng.uniform(0.7, 0.9))
    img[floor_y:] = np.clip(base * rng.uniform(0.5, 0.9) + rng.normal(0, 0.05, 3), 0, 1)
    for _ in range(int(rng.integers(2, 7))):
        colour = np.clip(rng.uniform(0, 1, 3) * 0.8 + 0.1, 0, 1).tolist()
        x0, y0 = int(rng.uniform(-0.2, 1) * W), int(rng.uniform(-0.2, 0.9) * H)
        x1, y1 = x0 + int(rng.uniform(0.1, 0.6) * W), y0 + int(rng.uniform(0.05, 0.5) * H)
        if rng.random() < 0.6:
            cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        else:
            cv2.line(img, (x0, y0), (x1, y1), colour, max(1, int(rng.uniform(0.01, 0.05) * W)))
    return img


def _colour_image(ident: Identity, camera: int, label: np.ndarray, shade: np.ndarray, top_tex: np.ndarray,
                  bottom_tex: np.ndarray, occluder: Any, rng: np.random.Generator) -> np.ndarray:
    H, W = label.shape
    img = _background_colour(camera, rng, H, W)
    colours = np.zeros((7, 3), np.float32)
    colours[SKIN], colours[HAIR] = ident.skin, ident.hair
    colours[SHOES], colours[ACCESSORY] = ident.shoe_colour, ident.accessory_colour
    person = colours[label]
    t0, t1 = (np.array(c, np.float32) for c in ident.top_colours)
    b0, b1 = (np.array(c, np.float32) for c in ident.bottom_colours)
    top = t0 + (t1 - t0) * top_tex[..., None]
    bottom = b0 + (b1 - b0) * bottom_tex[..., None]
    person = np.where((label == TOP)[..., None], top, person)
    person = np.where((label == BOTTOM)[..., None], bottom, person)
    # Directional light across the body.
    light = 1.0 + rng.uniform(-0.15, 0.15) * np.linspace(-1, 1, W, dtype=np.float32)[None, :]
    person = person * (shade * light)[..., None]
    img = np.where((label != BG)[..., None], person, img)
    if occluder is not None:
        x0, y0, x1, y1 = occluder
        cv2.rectangle(img, (x0, y0), (x1, y1), np.clip(rng.uniform(0, 1, 3), 0.1, 0.9).tolist(), -1)
    # Camera colour cast and exposure.
    cast = {1: (1.05, 1.0, 0.92), 2: (0.95, 1.0, 1.08), 4: (1.0, 1.04, 0.95), 5: (0.97, 0.97, 1.0)}[camera]
    img = img * np.array(cast, np.float32) * rng.uniform(0.7, 1.2) * (1 + rng.normal(0, 0.04, 3)).astype(np.float32)
    rgb = np.clip(img, 0, 1)
    return np.ascontiguousarray((rgb[..., ::-1] * 255.0).astype(np.float32))  # BGR


def _luminance(rgb: tuple[float, float, float]) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def _thermal(ident: Identity, camera: int, label: np.ndarray, shade: np.ndarray, top_tex: np.ndarray,
             bottom_tex: np.ndarray, occluder: Any, rng: np.random.Generator) -> np.ndarray:
    """Temperature-like intensity: background cool, skin warmest, clothes by insulation."""
    H, W = label.shape
    ambient = rng.uniform(0.12, 0.3) if camera == 3 else rng.uniform(0.2, 0.4)
    yy = np.linspace(0, 1, H, dtype=np.float32)[:, None]
    bg = np.full((H, W), ambient, np.float32) + 0.08 * yy * rng.uniform(-1, 1)
    for _ in range(int(rng.integers(1, 5))):  # warm and cold objects
        x0, y0 = int(rng.uniform(-0.2, 1) * W), int(rng.uniform(-0.2, 0.9) * H)
        x1, y1 = x0 + int(rng.uniform(0.1, 0.5) * W), y0 + int(rng.uniform(0.05, 0.4) * H)
        cv2.rectangle(bg, (x0, y0), (x1, y1), float(np.clip(ambient + rng.normal(0.05, 0.18), 0, 1)), -1)
    temp = np.zeros(7, np.float32)
    temp[SKIN] = 0.95
    temp[HAIR] = 0.55
    temp[SHOES] = 0.35
    temp[ACCESSORY] = ambient + 0.1
    # Garment intensity: the garment's own warmth (fabric, layers) mixed with how its dye
    # reflects / emits, which correlates loosely with the visible luminance: a weak
    # cross-modality link, no colour.
    top_lum, top_lum2 = (_luminance(c) for c in ident.top_colours)
    bottom_lum, bottom_lum2 = (_luminance(c) for c in ident.bottom_colours)
    temp[TOP] = 0.3 + 0.35 * ident.top_warmth + 0.3 * top_lum
    temp[BOTTOM] = 0.3 + 0.35 * ident.bottom_warmth + 0.3 * bottom_lum
    body = temp[label]
    # Texture only weakly visible: its contrast follows the luminance contrast of its two dyes.
    top_amp = 0.03 + 0.25 * abs(top_lum2 - top_lum)
    bottom_amp = 0.03 + 0.25 * abs(bottom_lum2 - bottom_lum)
    body = body + np.where(label == TOP, top_amp * (top_tex - 0.5), 0) + np.where(label == BOTTOM, bottom_amp * (bottom_tex - 0.5), 0)
    body = body * (0.9 + 0.1 * shade)
    img = np.where(label != BG, body, bg)
    if occluder is not None:
        x0, y0, x1, y1 = occluder
        cv2.rectangle(img, (x0, y0), (x1, y1), float(ambient + rng.uniform(-0.05, 0.1)), -1)
    # Sensor response: random gain, offset and gamma (contrast differs from the visible side).
    img = np.clip(img, 0, 1) ** rng.uniform(0.75, 1.35)
    img = np.clip(img * rng.uniform(0.8, 1.1) + rng.uniform(-0.04, 0.1), 0, 1)
    return np.repeat((img * 255.0)[..., None], 3, axis=2)


def _finish(image: np.ndarray, infrared: bool, rng: np.random.Generator) -> np.ndarray:
    """Blur and sensor noise at the output resolution; returns uint8 (H, W, 3) BGR."""
    if infrared:
        sigma = rng.uniform(0.5, 1.0)
        image = cv2.GaussianBlur(image, (0, 0), sigma)
        noise = rng.normal(0, rng.uniform(3, 7), image.shape[:2]).astype(np.float32)[..., None]
        image = image + noise  # same noise on all channels: still one intensity
    else:
        if rng.random() < 0.5:
            image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 0.8))
        image = image + rng.normal(0, rng.uniform(1, 5), image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)

