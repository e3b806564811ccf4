"""Appearance of the synthetic people: one :class:`Identity` per person, drawn from a seed.

Per identity: stature, shoulder / hip width, leg and arm proportions, head size, build (limb
thickness), hair (short / long), sleeves (long / short), trousers / shorts / skirt, clothing
colours from a shared palette, a texture per garment (solid, horizontal or vertical stripes,
checks, diagonal), an accessory (none, backpack, shoulder bag, cap), the cameras the person
appears in and, for the infrared cameras, the thermal insulation of every garment.
:mod:`.synthetic_render` draws images of an identity; :mod:`.synthetic_dataset` writes the set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spot_edge.training.datasets import SYSU_INFRARED_CAMERAS, SYSU_VISIBLE_CAMERAS

__all__ = ["Identity", "make_identity", "VISIBLE_CAMERAS", "INFRARED_CAMERAS"]

# The SYSU-MM01 camera roles, from the one place that defines the layout.
VISIBLE_CAMERAS = SYSU_VISIBLE_CAMERAS
INFRARED_CAMERAS = SYSU_INFRARED_CAMERAS

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

