"""A synthetic cross-modality person ReID dataset in the SYSU-MM01 layout.

Person-like figures are drawn with OpenCV from a small 3-D stick-and-box body model:

- per identity: stature, shoulder / hip width, leg and arm proportions, head size, build
  (limb thickness), hair (short / long), sleeves (long / short), trousers / shorts / skirt,
  clothing colours from a shared palette, a texture per garment (solid, horizontal or vertical
  stripes, checks, diagonal), an accessory (none, backpack, shoulder bag, cap) and, for the
  infrared cameras, the thermal insulation of every garment;
- per image: walking phase (leg and arm swing), viewpoint (rotation about the vertical axis:
  front / back / sides, with depth-ordered drawing so far limbs are occluded), scale,
  position jitter, lighting, background clutter, an occasional occluder.

Visible cameras 1, 2, 4, 5 render colour images (per-camera colour cast and background
style). Infrared cameras 3, 6 render thermal images: one intensity channel replicated to
three, the body warmer than the background, skin warmest, clothing texture only weakly
visible, random contrast / gamma, blur and sensor noise.

Written to disk (``root``)::

    cam1..cam6/<4-digit id>/<4-digit n>.jpg
    exp/train_id.txt, exp/val_id.txt, exp/test_id.txt
    keypoints/cam<c>/<4-digit id>.json   {"image_size": [H, W], "keypoint_names": [...],
                                          "keypoints": {"0001.jpg": [[[x, y, v] x 18]], ...}}
    synthetic.json                      generator settings

Keypoints are ``(P, 18, 3)`` with ``P = 1``: pixel coordinates (x right, y down, pixel centres
at integers) of the saved image in OpenPose COCO order (``spot_edge.pose.skeleton``) and a
visibility flag (0 for face points turned away from the camera and points outside the image).

Every image is a pure function of ``(seed, camera, id, n)``: generation is deterministic and
independent of order or worker count.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from spot_edge.pose.skeleton import KEYPOINT_NAMES, NUM_KEYPOINTS
from spot_edge.training.datasets import SYSU_INFRARED_CAMERAS, SYSU_VISIBLE_CAMERAS

__all__ = [
    "SyntheticConfig",
    "Identity",
    "make_identity",
    "render_person",
    "generate_sysu_like",
    "load_keypoints",
    "keypoints_for_image",
]

# The SYSU-MM01 camera roles, from the one place that defines the layout.
VISIBLE_CAMERAS = SYSU_VISIBLE_CAMERAS
INFRARED_CAMERAS = SYSU_INFRARED_CAMERAS
GENERATOR_VERSION = 2

_K = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Label map values of the rendered figure.
BG, SKIN, HAIR, TOP, BOTTOM, SHOES, ACCESSORY = range(7)

# Shared clothing palette (RGB, 0..1): identities differ by combinations, not unique colours.
_PALETTE = np.array([
    [0.08, 0.08, 0.09], [0.92, 0.92, 0.90], [0.50, 0.50, 0.52], [0.75, 0.12, 0.12],
    [0.10, 0.15, 0.40], [0.20, 0.45, 0.80], [0.15, 0.45, 0.20], [0.90, 0.80, 0.20],
    [0.90, 0.55, 0.65], [0.45, 0.30, 0.18], [0.92, 0.50, 0.12], [0.45, 0.20, 0.55],
    [0.70, 0.65, 0.50], [0.25, 0.60, 0.60],
], dtype=np.float32)
_SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.70, 0.50, 0.36], [0.45, 0.31, 0.22]], np.float32)
_HAIR_COLOURS = np.array([[0.06, 0.05, 0.05], [0.30, 0.20, 0.12], [0.60, 0.45, 0.25], [0.55, 0.55, 0.55]], np.float32)
_TEXTURES = ("solid", "hstripes", "vstripes", "checks", "diagonal")


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of :func:`generate_sysu_like` (all stored in ``synthetic.json``).

    Attributes:
        num_train, num_val, num_test: identities of each split (ids 1..N, split at random).
        images_per_camera: inclusive range of images per (identity, camera) folder.
        camera_presence: probability that an identity appears in a given camera (at least
            one visible and one infrared camera always).
        height, width: saved image size.
        supersample: internal drawing scale (anti-aliasing).
        jpeg_quality: JPEG quality of the saved images.
        seed: master seed.
    """

    num_train: int = 120
    num_val: int = 20
    num_test: int = 60
    images_per_camera: tuple[int, int] = (4, 8)
    camera_presence: float = 0.75
    height: int = 128
    width: int = 64
    supersample: int = 2
    jpeg_quality: int = 92
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.num_train, self.num_test) < 1 or self.num_val < 0:
            raise ValueError("need at least one training and one test identity (num_val may be 0)")
        if self.num_train + self.num_val + self.num_test > 9999:
            raise ValueError("SYSU-MM01 layout uses 4-digit ids: at most 9999 identities")
        lo, hi = self.images_per_camera
        if not 1 <= lo <= hi <= 9999:
            raise ValueError(f"images_per_camera must be 1 <= lo <= hi, got {self.images_per_camera}")
        if not 0.0 < self.camera_presence <= 1.0:
            raise ValueError("camera_presence must be in (0, 1]")
        if self.height < 32 or self.width < 16:
            raise ValueError(f"image size {self.height}x{self.width} is too small (>= 32x16)")
        if self.supersample not in (1, 2, 3, 4):
            raise ValueError("supersample must be 1..4")
        object.__setattr__(self, "images_per_camera", (int(lo), int(hi)))


@dataclass(frozen=True)
class Identity:
    """Appearance of one synthetic person (all lengths are fractions of the stature)."""

    pid: int
    stature: float
    shoulder_width: float
    hip_width: float
    torso_depth: float
    leg_fraction: float
    arm_length: float
    head_radius: float
    build: float
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    long_hair: bool
    long_sleeves: bool
    legwear: str  # trousers | shorts | skirt
    top_colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    bottom_colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    shoe_colour: tuple[float, float, float]
    top_texture: str
    bottom_texture: str
    texture_period: float
    accessory: str  # none | backpack | bag | cap
    accessory_colour: tuple[float, float, float]
    top_warmth: float
    bottom_warmth: float
    gait_amplitude: float
    cameras: tuple[int, ...] = field(default=())


def _colour(rng: np.random.Generator, palette: np.ndarray, jitter: float = 0.06) -> tuple[float, float, float]:
    c = palette[rng.integers(len(palette))] + rng.normal(0, jitter, 3)
    return tuple(float(v) for v in np.clip(c, 0.0, 1.0))


def make_identity(pid: int, seed: int, camera_presence: float = 0.75) -> Identity:
    """Draw the appearance of identity ``pid`` (deterministic in ``(seed, pid)``)."""
    rng = np.random.default_rng([seed, 7919, pid])
    top_texture = _TEXTURES[rng.choice(len(_TEXTURES), p=[0.36, 0.18, 0.14, 0.18, 0.14])]
    bottom_texture = _TEXTURES[rng.choice(len(_TEXTURES), p=[0.7, 0.08, 0.1, 0.08, 0.04])]
    top = _colour(rng, _PALETTE), _colour(rng, _PALETTE)
    bottom = _colour(rng, _PALETTE[[0, 1, 2, 4, 5, 9, 12]]), _colour(rng, _PALETTE)
    cams_vis = [c for c in VISIBLE_CAMERAS if rng.random() < camera_presence]
    cams_ir = [c for c in INFRARED_CAMERAS if rng.random() < camera_presence]
    if not cams_vis:
        cams_vis = [int(rng.choice(VISIBLE_CAMERAS))]
    if not cams_ir:
        cams_ir = [int(rng.choice(INFRARED_CAMERAS))]
    legwear = ("trousers", "shorts", "skirt")[rng.choice(3, p=[0.65, 0.2, 0.15])]
    return Identity(
        pid=pid,
        stature=float(rng.uniform(0.76, 0.93)),
        shoulder_width=float(rng.uniform(0.19, 0.29)),
        hip_width=float(rng.uniform(0.14, 0.21)),
        torso_depth=float(rng.uniform(0.09, 0.15)),
        leg_fraction=float(rng.uniform(0.44, 0.54)),
        arm_length=float(rng.uniform(0.36, 0.44)),
        head_radius=float(rng.uniform(0.055, 0.075)),
        build=float(rng.uniform(0.75, 1.35)),
        skin=_colour(rng, _SKIN_TONES, 0.03),
        hair=_colour(rng, _HAIR_COLOURS, 0.03),
        long_hair=bool(rng.random() < 0.3),
        long_sleeves=bool(rng.random() < 0.55),
        legwear=legwear,
        top_colours=top,
        bottom_colours=bottom,
        shoe_colour=_colour(rng, _PALETTE[[0, 1, 2, 9]]),
        top_texture=top_texture,
        bottom_texture=bottom_texture,
        texture_period=float(rng.uniform(0.035, 0.08)),
        accessory=("none", "backpack", "bag", "cap")[rng.choice(4, p=[0.5, 0.22, 0.16, 0.12])],
        accessory_colour=_colour(rng, _PALETTE),
        top_warmth=float(rng.uniform(0.35, 0.8)),
        bottom_warmth=float(rng.uniform(0.3, 0.7)),
        gait_amplitude=float(rng.uniform(0.25, 0.5)),
        cameras=tuple(sorted(cams_vis + cams_ir)),
    )


# --------------------------------------------------------------------------- body model


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


# --------------------------------------------------------------------------- dataset writer


def _split_ids(config: SyntheticConfig) -> tuple[list[int], list[int], list[int]]:
    total = config.num_train + config.num_val + config.num_test
    ids = np.random.default_rng([config.seed, 104729]).permutation(np.arange(1, total + 1))
    train = sorted(int(i) for i in ids[: config.num_train])
    val = sorted(int(i) for i in ids[config.num_train: config.num_train + config.num_val])
    test = sorted(int(i) for i in ids[config.num_train + config.num_val:])
    return train, val, test


def _write_identity(args: tuple[SyntheticConfig, str, int]) -> int:
    config, root, pid = args
    ident = make_identity(pid, config.seed, config.camera_presence)
    count_rng = np.random.default_rng([config.seed, 31337, pid])
    written = 0
    for cam in ident.cameras:
        n_images = int(count_rng.integers(config.images_per_camera[0], config.images_per_camera[1] + 1))
        folder = os.path.join(root, f"cam{cam}", f"{pid:04d}")
        os.makedirs(folder, exist_ok=True)
        entries: dict[str, Any] = {}
        for n in range(1, n_images + 1):
            rng = np.random.default_rng([config.seed, cam, pid, n])
            image, kp = render_person(ident, cam, rng, config.height, config.width, config.supersample)
            name = f"{n:04d}.jpg"
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
            if not ok:
                raise RuntimeError(f"OpenCV could not encode {folder}/{name}")
            _atomic_write(os.path.join(folder, name), buf.tobytes())
            entries[name] = np.round(kp, 2).tolist()
            written += 1
        kp_dir = os.path.join(root, "keypoints", f"cam{cam}")
        os.makedirs(kp_dir, exist_ok=True)
        doc = {"image_size": [config.height, config.width], "keypoint_names": list(KEYPOINT_NAMES), "keypoints": entries}
        _atomic_write(os.path.join(kp_dir, f"{pid:04d}.json"), json.dumps(doc).encode())
    return written


def _atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def generate_sysu_like(root: str | os.PathLike, config: SyntheticConfig = SyntheticConfig(), workers: int = 1,
                       progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write a synthetic dataset in the SYSU-MM01 layout under ``root``.

    Args:
        root: output folder (created; must be empty or hold an earlier synthetic set).
        config: generator settings.
        workers: processes to use (output is identical for any value).
        progress: optional callback ``(identities_done, identities_total)``.

    Returns:
        Summary dict: ``num_images``, ``num_ids``, id splits and the config.
    """
    root = os.fspath(root)
    if os.path.isdir(root) and os.listdir(root) and not os.path.isfile(os.path.join(root, "synthetic.json")):
        raise FileExistsError(f"{root!r} exists, is not empty and is not a synthetic dataset; choose an empty folder")
    os.makedirs(root, exist_ok=True)
    for cam in VISIBLE_CAMERAS + INFRARED_CAMERAS:
        os.makedirs(os.path.join(root, f"cam{cam}"), exist_ok=True)
    train, val, test = _split_ids(config)
    os.makedirs(os.path.join(root, "exp"), exist_ok=True)
    for name, ids in (("train", train), ("val", val), ("test", test)):
        _atomic_write(os.path.join(root, "exp", f"{name}_id.txt"), (",".join(str(i) for i in ids) + "\n").encode())
    all_ids = sorted(train + val + test)
    jobs = [(config, root, pid) for pid in all_ids]
    total = 0
    if workers <= 1:
        for i, job in enumerate(jobs, 1):
            total += _write_identity(job)
            if progress:
                progress(i, len(jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for i, n in enumerate(pool.map(_write_identity, jobs, chunksize=4), 1):
                total += n
                if progress:
                    progress(i, len(jobs))
    summary = {
        "generator": "spot_edge.training.synthetic_dataset", "version": GENERATOR_VERSION,
        "config": asdict(config), "num_images": total, "num_ids": len(all_ids),
        "train_ids": train, "val_ids": val, "test_ids": test,
    }
    _atomic_write(os.path.join(root, "synthetic.json"), json.dumps(summary, indent=1).encode())
    return summary


def load_keypoints(root: str | os.PathLike) -> dict[str, np.ndarray]:
    """All ground-truth keypoints of a synthetic tree: ``{"cam1/0001/0001.jpg": (P, 18, 3)}``."""
    root = os.fspath(root)
    kp_root = os.path.join(root, "keypoints")
    if not os.path.isdir(kp_root):
        raise FileNotFoundError(f"{kp_root} does not exist: {root!r} has no ground-truth keypoints "
                                "(only synthetic sets written by `make-synthetic` have them)")
    out: dict[str, np.ndarray] = {}
    for cam_dir in sorted(os.listdir(kp_root)):
        for fname in sorted(os.listdir(os.path.join(kp_root, cam_dir))):
            if not fname.endswith(".json"):
                continue
            path = os.path.join(kp_root, cam_dir, fname)
            try:
                with open(path, encoding="utf-8") as f:
                    doc = json.load(f)
                for name, kp in doc["keypoints"].items():
                    arr = np.asarray(kp, dtype=np.float32)
                    if arr.ndim != 3 or arr.shape[1:] != (NUM_KEYPOINTS, 3):
                        raise ValueError(f"entry {name!r} has shape {arr.shape}, expected (P, 18, 3)")
                    out[f"{cam_dir}/{fname[:-5]}/{name}"] = arr
            except (json.JSONDecodeError, KeyError, ValueError) as exc:
                raise ValueError(f"corrupt keypoint file {path}: {exc}") from None
    return out


def keypoints_for_image(root: str | os.PathLike, image_path: str | os.PathLike) -> np.ndarray:
    """Keypoints ``(P, 18, 3)`` of one image of a synthetic tree (path absolute or relative)."""
    root = os.fspath(root)
    rel = os.path.relpath(os.path.join(root, os.fspath(image_path)), root).replace(os.sep, "/")
    cam, pid, name = rel.split("/")[-3:]
    path = os.path.join(root, "keypoints", cam, f"{pid}.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no keypoint file {path} for image {rel}")
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if name not in doc.get("keypoints", {}):
        raise KeyError(f"{path} has no keypoints for {name}")
    return np.asarray(doc["keypoints"][name], dtype=np.float32)
