"""The OpenPose COCO body network (CMU ``pose_iter_440000``) in PyTorch.

Architecture (Cao et al., "Realtime Multi-Person 2D Pose Estimation using Part
Affinity Fields", CVPR 2017, Fig. 2):

- VGG-19 front ``conv1_1 .. conv4_2`` with three 2x2 max-pools (stride 8), then ``conv4_3_CPM``
  (512 -> 256) and ``conv4_4_CPM`` (256 -> 128): the feature ``F`` ``(B, 128, H/8, W/8)``.
- Stage 1: two branches (L1 = PAF, 38 channels; L2 = keypoint heatmaps, 19 = 18 parts +
  background) of three 3x3 convs (128), a 1x1 (512) and a 1x1 to the output.
- Stages t = 2..T: input ``concat(PAF_{t-1}, heatmaps_{t-1}, F)`` = 185 channels; per branch five
  7x7 convs (128), a 1x1 (128) and a 1x1 to the output.

Every conv is followed by a ReLU except the last of each branch. Layer names are the Caffe layer
names, which are also the state-dict keys of the widely used PyTorch port's weight file
(``body_pose_model.pth``: ``conv1_1.weight`` ... ``Mconv7_stage6_L2.bias``), so that file loads
directly (see :mod:`spot_edge.pose.weights`).

The port applies a ReLU after ``Mconv7_stage6_L2`` (a duplicated entry in its no-ReLU list); the
Caffe model does not. The default configurations keep the port's ReLU so that a state dict of the
port's module gives bit-identical outputs (negative heatmap values are never used downstream:
parsing thresholds at 0.1 and OpenPose's own heatmap output truncates to [0, 1]);
``openpose_coco_caffe`` is the raw Caffe graph.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spot_edge.pose.skeleton import NUM_KEYPOINTS, NUM_MAPS, NUM_PAF_CHANNELS

STRIDE = 8
PAD_VALUE = 128
NUM_HEATMAPS = NUM_KEYPOINTS + 1  # + background
FEATURE_CHANNELS = 128
STAGE_INPUT_CHANNELS = NUM_PAF_CHANNELS + NUM_HEATMAPS + FEATURE_CHANNELS  # 185

# (name, in, out, kernel, pool after) of the VGG-19 front and the CPM adaptation layers.
BACKBONE_LAYERS: tuple[tuple[str, int, int, int, bool], ...] = (
    ("conv1_1", 3, 64, 3, False), ("conv1_2", 64, 64, 3, True),
    ("conv2_1", 64, 128, 3, False), ("conv2_2", 128, 128, 3, True),
    ("conv3_1", 128, 256, 3, False), ("conv3_2", 256, 256, 3, False),
    ("conv3_3", 256, 256, 3, False), ("conv3_4", 256, 256, 3, True),
    ("conv4_1", 256, 512, 3, False), ("conv4_2", 512, 512, 3, False),
    ("conv4_3_CPM", 512, 256, 3, False), ("conv4_4_CPM", 256, 128, 3, False),
)

BRANCH_OUTPUTS = {1: NUM_PAF_CHANNELS, 2: NUM_HEATMAPS}  # L1: PAF, L2: heatmaps


def stage_layers(stage: int, branch: int) -> tuple[tuple[str, int, int, int], ...]:
    """(name, in, out, kernel) of one branch (1 = PAF, 2 = heatmaps) of one stage (1-based)."""
    out = BRANCH_OUTPUTS[branch]
    if stage == 1:
        c = FEATURE_CHANNELS
        return (
            (f"conv5_1_CPM_L{branch}", c, 128, 3), (f"conv5_2_CPM_L{branch}", 128, 128, 3),
            (f"conv5_3_CPM_L{branch}", 128, 128, 3), (f"conv5_4_CPM_L{branch}", 128, 512, 1),
            (f"conv5_5_CPM_L{branch}", 512, out, 1),
        )
    layers = [(f"Mconv1_stage{stage}_L{branch}", STAGE_INPUT_CHANNELS, 128, 7)]
    layers += [(f"Mconv{i}_stage{stage}_L{branch}", 128, 128, 7) for i in range(2, 6)]
    layers += [(f"Mconv6_stage{stage}_L{branch}", 128, 128, 1), (f"Mconv7_stage{stage}_L{branch}", 128, out, 1)]
    return tuple(layers)


@dataclass(frozen=True)
class PoseNetConfig:
    """Which OpenPose body network to build.

    Attributes:
        name: registry name.
        num_stages: 1..6 prediction stages; fewer stages is the lighter edge option (same 56
            outputs, the first ``num_stages`` stages of the COCO weights load into it).
        relu_on_final_heatmaps: apply a ReLU to the last stage's heatmaps, as the PyTorch port
            does (``True``, default); ``False`` is the Caffe model's raw output.
    """

    name: str = "openpose_coco"
    num_stages: int = 6
    relu_on_final_heatmaps: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.num_stages <= 6:
            raise ValueError(f"num_stages must be between 1 and 6 (the COCO model has 6), got {self.num_stages}")


POSE_CONFIGS: dict[str, PoseNetConfig] = {
    "openpose_coco": PoseNetConfig(),
    # Stages 1-3 of the COCO model: about 58% of the MACs (80 vs 136 GMAC at 368x368).
    "openpose_coco_lite": PoseNetConfig(name="openpose_coco_lite", num_stages=3),
    # The Caffe graph exactly (no ReLU on the final heatmaps; differs from the port only there).
    "openpose_coco_caffe": PoseNetConfig(name="openpose_coco_caffe", relu_on_final_heatmaps=False),
}


def get_pose_config(name_or_config: str | PoseNetConfig) -> PoseNetConfig:
    """Look up a named configuration (``openpose_coco``, ``openpose_coco_lite``, ...)."""
    if isinstance(name_or_config, PoseNetConfig):
        return name_or_config
    if name_or_config not in POSE_CONFIGS:
        raise ValueError(f"unknown pose network config {name_or_config!r}; known: {sorted(POSE_CONFIGS)}")
    return POSE_CONFIGS[name_or_config]


class RandomWeightsWarning(UserWarning):
    """A pose network without loaded weights was run: its outputs are meaningless."""


warnings.simplefilter("always", RandomWeightsWarning)


class OpenPoseBody(nn.Module):
    """OpenPose COCO body network: ``(B, 3, H, W)`` normalised BGR -> (PAF, heatmaps).

    Input: BGR / 256 - 0.5 with H and W multiples of 8 (see :func:`preprocess_bgr`).
    Output: ``paf`` ``(B, 38, H/8, W/8)`` and ``heatmaps`` ``(B, 19, H/8, W/8)`` of the last stage,
    in the port's order ``(Mconv7_stageT_L1, Mconv7_stageT_L2)``. :func:`select_pose_maps` makes
    the 56 maps SPOT reads.

    ``weights_loaded`` is False until weights are loaded (:func:`spot_edge.pose.weights.load_pose_weights`,
    or a plain ``load_state_dict`` with no missing key); running it before that emits a
    :class:`RandomWeightsWarning` on every call.
    """

    def __init__(self, config: str | PoseNetConfig = "openpose_coco") -> None:
        super().__init__()
        self.config = get_pose_config(config)
        self.weights_loaded = False
        self.weights_source: str | None = None
        self._pool_after: set[str] = set()
        for name, cin, cout, k, pool in BACKBONE_LAYERS:
            self.add_module(name, nn.Conv2d(cin, cout, k, padding=k // 2))
            if pool:
                self._pool_after.add(name)
        self._backbone = tuple(layer[0] for layer in BACKBONE_LAYERS)
        self._stages: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        for stage in range(1, self.config.num_stages + 1):
            names = []
            for branch in (1, 2):
                for name, cin, cout, k in stage_layers(stage, branch):
                    self.add_module(name, nn.Conv2d(cin, cout, k, padding=k // 2))
                names.append(tuple(layer[0] for layer in stage_layers(stage, branch)))
            self._stages.append((names[0], names[1]))
        self.register_load_state_dict_post_hook(_mark_loaded)

    def _chain(self, x: torch.Tensor, names: tuple[str, ...], relu_last: bool) -> torch.Tensor:
        for i, name in enumerate(names):
            x = getattr(self, name)(x)
            if i < len(names) - 1 or relu_last:
                x = F.relu(x, inplace=True)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """VGG-19 front + CPM layers: ``(B, 3, H, W)`` -> ``(B, 128, H/8, W/8)``."""
        for name in self._backbone:
            x = F.relu(getattr(self, name)(x), inplace=True)
            if name in self._pool_after:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.weights_loaded:
            warnings.warn(
                f"OpenPoseBody({self.config.name}) is running WITHOUT pretrained weights: its pose "
                "maps are random and only good for shape tests. Load body_pose_model.pth or "
                "pose_iter_440000.caffemodel with spot_edge.pose.weights.load_pose_weights().",
                RandomWeightsWarning, stacklevel=4)  # the caller of model(x)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"OpenPoseBody expects (B, 3, H, W) BGR input, got {tuple(x.shape)}")
        feat = self.features(x)
        h = feat
        paf = heat = feat
        last = len(self._stages) - 1
        for t, (paf_names, heat_names) in enumerate(self._stages):
            paf = self._chain(h, paf_names, relu_last=False)
            heat = self._chain(h, heat_names, relu_last=(t == last and self.config.relu_on_final_heatmaps))
            if t < last:
                h = torch.cat([paf, heat, feat], dim=1)
        return paf, heat

    def stage_names(self) -> list[str]:
        """All layer names in execution order (the state-dict key stems)."""
        names = list(self._backbone)
        for paf_names, heat_names in self._stages:
            names += list(paf_names) + list(heat_names)
        return names


def _mark_loaded(module: OpenPoseBody, incompatible_keys) -> None:
    if not incompatible_keys.missing_keys:
        module.weights_loaded = True


def select_pose_maps(paf: torch.Tensor, heatmaps: torch.Tensor, clamp: bool = False) -> torch.Tensor:
    """The 56 maps SPOT reads: 18 keypoint heatmaps (background dropped) then the 38 PAFs.

    ``(B, 38, h, w), (B, 19, h, w) -> (B, 56, h, w)``. ``clamp=True`` truncates keypoint maps to
    [0, 1] and PAFs to [-1, 1], as OpenPose does when it outputs heatmaps.
    """
    parts = heatmaps[:, :NUM_KEYPOINTS]
    if clamp:
        parts, paf = parts.clamp(0.0, 1.0), paf.clamp(-1.0, 1.0)
    return torch.cat([parts, paf], dim=1)


class PoseMapsNet(nn.Module):
    """``OpenPoseBody`` followed by :func:`select_pose_maps`: ``(B, 3, H, W) -> (B, 56, H/8, W/8)``.

    With ``normalize=True`` the input is raw BGR in [0, 255] and the module applies
    ``x / 256 - 0.5`` itself (handy for an exported graph fed straight from a camera).
    ``clamp=True`` truncates the maps to OpenPose's output ranges (see :func:`select_pose_maps`);
    the default keeps the raw maps, which is what the parser reads (``docs/pose-maps.md``).
    """

    def __init__(self, body: OpenPoseBody, normalize: bool = False, clamp: bool = False) -> None:
        super().__init__()
        self.body = body
        self.normalize = normalize
        self.clamp = clamp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = x / 256.0 - 0.5
        paf, heat = self.body(x)
        return select_pose_maps(paf, heat, clamp=self.clamp)


# ----------------------------------------------------------------------------- preprocessing

MIN_SIDE = 8
MAX_SIDE = 8192


def _as_bgr_batch(images, device=None) -> torch.Tensor:
    """Images -> float tensor ``(B, 3, H, W)`` in [0, 255] BGR on ``device`` (default: where the
    input is; numpy frames cross as uint8), with clear errors."""
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError("no images given (empty list)")
        tensors = [_as_bgr_batch(im, device) for im in images]
        shapes = {tuple(t.shape[2:]) for t in tensors}
        if len(shapes) > 1:
            raise ValueError(f"images in a batch must share one size, got {sorted(shapes)}; run them one at a time")
        return torch.cat(tensors)
    if isinstance(images, np.ndarray):
        arr = images
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] not in (3,) and arr.shape[-1] in (1, 2, 4)):
            raise ValueError(
                f"pose input must be 3-channel BGR (H, W, 3), got shape {arr.shape}; convert grey or "
                "BGRA images first, e.g. cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) / COLOR_BGRA2BGR "
                "(infrared frames: replicate the channel)")
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"pose input must be (H, W, 3) or (B, H, W, 3) BGR, got shape {images.shape}")
        if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"pose input must be uint8 (or float in [0, 255]), got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if device is not None:
            t = t.to(device, non_blocking=True)
        t = t.permute(0, 3, 1, 2).float()
    elif isinstance(images, torch.Tensor):
        t = images
        if t.ndim == 3:
            t = t[None]
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(
                f"pose input tensors must be (B, 3, H, W) BGR in [0, 255], got shape {tuple(images.shape)}; "
                "grey/infrared frames: repeat the channel to 3")
        if device is not None:
            t = t.to(device, non_blocking=True)
        t = t.float()
    else:
        raise TypeError(f"pose input must be a numpy array, torch tensor or list of them, got {type(images).__name__}")
    if t.shape[0] == 0 or t.shape[2] == 0 or t.shape[3] == 0:
        raise ValueError(f"empty frame: shape {tuple(t.shape)}")
    h, w = t.shape[2:]
    if min(h, w) < MIN_SIDE or max(h, w) > MAX_SIDE:
        raise ValueError(
            f"frame size {h}x{w} is outside [{MIN_SIDE}, {MAX_SIDE}] pixels per side; resize it "
            "(OpenPose usually runs at a height of 368)")
    return t


def preprocess_bgr(images, stride: int = STRIDE, pad_value: int = PAD_VALUE, device=None,
                   normalize: bool = True) -> tuple[torch.Tensor, tuple[int, int]]:
    """OpenPose input normalisation: BGR / 256 - 0.5, padded right/bottom to a multiple of ``stride``.

    Args:
        images: uint8 BGR ``(H, W, 3)`` / ``(B, H, W, 3)`` numpy, a list of same-size frames, or a
            float tensor ``(B, 3, H, W)`` with BGR values in [0, 255].
        stride: pad so that H and W are multiples of it.
        pad_value: raw pixel value of the padding (128, i.e. 0 after normalisation).
        device: where the result lives (numpy frames are moved as uint8, then converted there);
            default: the input's device (the CPU for numpy).
        normalize: ``False`` keeps raw BGR [0, 255] (for graphs that normalise inside).

    Returns:
        ``(x, (H, W))``: the normalised padded ``(B, 3, H_pad, W_pad)`` tensor and the original size.
    """
    t = _as_bgr_batch(images, device)
    h, w = int(t.shape[2]), int(t.shape[3])
    pad_h, pad_w = (-h) % stride, (-w) % stride
    x = t / 256.0 - 0.5 if normalize else t
    if pad_h or pad_w:
        fill = pad_value / 256.0 - 0.5 if normalize else float(pad_value)
        x = F.pad(x, (0, pad_w, 0, pad_h), value=fill)
    return x, (h, w)


def with_stages(config: str | PoseNetConfig, num_stages: int) -> PoseNetConfig:
    """A copy of ``config`` with a different number of stages (any of 1..6)."""
    base = get_pose_config(config)
    return replace(base, name=f"{base.name}_s{num_stages}", num_stages=num_stages)


__all__ = [
    "STRIDE", "PAD_VALUE", "NUM_HEATMAPS", "BACKBONE_LAYERS", "stage_layers", "PoseNetConfig", "POSE_CONFIGS",
    "get_pose_config", "with_stages", "RandomWeightsWarning", "OpenPoseBody", "select_pose_maps", "PoseMapsNet",
    "preprocess_bgr", "NUM_MAPS",
]
