"""Load OpenPose body weights into :class:`~spot_edge.pose.network.OpenPoseBody`.

Accepted sources (a local file: nothing is downloaded):

- ``body_pose_model.pth`` of the PyTorch port (flat keys ``conv1_1.weight`` ...), or a state dict
  saved from the port's module itself (keys ``model0.conv1_1.weight``, ``model6_2.Mconv7_stage6_L2.bias``,
  prefixes are stripped), or from ``nn.DataParallel`` (``module.``);
- the CMU Caffe model ``pose_iter_440000.caffemodel`` (converted on the fly, see
  :mod:`spot_edge.pose.caffe`);
- ``.safetensors`` with the flat keys (what ``spot-edge pose convert-caffe`` writes by default);
- an in-memory ``dict`` of tensors.

A file of another architecture (BODY_25, MPI, a hand model, a classifier) fails with an error that
names the missing and unexpected keys.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spot_edge.hashing import sha256_bytes
from spot_edge.pose.network import BACKBONE_LAYERS, OpenPoseBody, PoseNetConfig, get_pose_config, stage_layers

_PORT_PREFIX = re.compile(r"^model\d+(_\d+)?\.")
_STAGE_OF_KEY = re.compile(r"(?:_stage(\d+)_|conv5_\d_CPM_)")


class PoseWeightsError(ValueError):
    """The weights do not fit the OpenPose COCO body network."""


@dataclass
class LoadReport:
    """What :func:`load_pose_weights` did."""

    source: str
    loaded: int
    skipped_later_stages: list[str] = field(default_factory=list)
    ignored_unexpected: list[str] = field(default_factory=list)  # only with strict=False
    missing: list[str] = field(default_factory=list)  # only with strict=False

    def __str__(self) -> str:
        s = f"loaded {self.loaded} tensors from {self.source}"
        if self.skipped_later_stages:
            s += f" (ignored {len(self.skipped_later_stages)} tensors of stages beyond the model's last)"
        return s


def read_pose_state_dict(source) -> "OrderedDict[str, torch.Tensor]":
    """Read weights from a path (``.pth``/``.pt``, ``.caffemodel``, ``.safetensors``) or a dict."""
    if isinstance(source, dict):
        return OrderedDict(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"pose weights not found: {path}. OpenPose weights cannot be downloaded here: pass a local "
            "body_pose_model.pth (PyTorch port) or pose_iter_440000.caffemodel (CMU)")
    suffix = path.suffix.lower()
    if suffix == ".caffemodel":
        from spot_edge.pose.caffe import caffemodel_to_state_dict

        return caffemodel_to_state_dict(path)
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return OrderedDict(load_file(str(path)))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PoseWeightsError(f"cannot read {path} as a PyTorch state dict ({exc})") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PoseWeightsError(f"{path} does not hold a state dict of tensors (got {type(obj).__name__})")
    return OrderedDict(obj)


def normalize_keys(state_dict) -> "OrderedDict[str, torch.Tensor]":
    """Map the port module's / DataParallel keys onto the flat Caffe layer names."""
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        k = key[len("module."):] if key.startswith("module.") else key
        k = _PORT_PREFIX.sub("", k)
        out[k] = value
    return out


def _stage_of(key: str) -> int:
    m = _STAGE_OF_KEY.search(key)
    if m is None:
        return 0
    return int(m.group(1)) if m.group(1) else 1


def _summarise(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_pose_weights(model: OpenPoseBody, source, strict: bool = True) -> LoadReport:
    """Fill ``model`` from ``source`` and mark it ``weights_loaded``.

    Weights of stages beyond ``model.config.num_stages`` (loading the 6-stage file into the lite
    model) are ignored and reported. Any other missing key, unexpected key or shape mismatch
    raises :class:`PoseWeightsError` naming them. ``strict=False`` tolerates (and reports)
    missing and unexpected keys; shape mismatches always raise.
    """
    name = source if not isinstance(source, dict) else "<state dict>"
    sd = normalize_keys(read_pose_state_dict(source))
    expected = model.state_dict()
    n_stages = model.config.num_stages
    later = [k for k in sd if k not in expected and _stage_of(k) > n_stages
             and _STAGE_OF_KEY.search(k) is not None]
    unexpected = [k for k in sd if k not in expected and k not in later]
    missing = [k for k in expected if k not in sd]
    mismatched = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in expected if k in sd and sd[k].shape != expected[k].shape]
    problems = []
    if unexpected and strict:
        problems.append(f"unexpected keys ({len(unexpected)}): {_summarise(unexpected)}")
    if missing and strict:
        problems.append(f"missing keys ({len(missing)}): {_summarise(missing)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {_summarise(mismatched, 4)}")
    if problems:
        raise PoseWeightsError(
            f"{name} does not match the OpenPose COCO body network ({model.config.name}, "
            f"{n_stages} stages): " + "; ".join(problems)
            + ". Expected the COCO 18-keypoint model (pose_iter_440000.caffemodel or the PyTorch port's "
            "body_pose_model.pth); BODY_25, MPI and hand models have other layers.")
    to_load = {k: v.to(expected[k].dtype) for k, v in sd.items() if k in expected}
    model.load_state_dict(to_load, strict=strict)
    model.weights_loaded = True
    model.weights_source = str(name)
    return LoadReport(source=str(name), loaded=len(to_load), skipped_later_stages=later,
                      ignored_unexpected=[] if strict else unexpected, missing=[] if strict else missing)


def expected_pose_shapes(config: str | PoseNetConfig = "openpose_coco") -> dict[str, tuple[int, ...]]:
    """The state-dict keys and shapes of a configuration, from the layer tables (no model built)."""
    cfg = get_pose_config(config)
    layers = [(name, cin, cout, k) for name, cin, cout, k, _ in BACKBONE_LAYERS]
    for stage in range(1, cfg.num_stages + 1):
        for branch in (1, 2):
            layers += list(stage_layers(stage, branch))
    shapes: dict[str, tuple[int, ...]] = {}
    for name, cin, cout, k in layers:
        shapes[f"{name}.weight"] = (cout, cin, k, k)
        shapes[f"{name}.bias"] = (cout,)
    return shapes


def check_pose_state_dict(state_dict, config: str | PoseNetConfig = "openpose_coco") -> list[str]:
    """What keeps ``state_dict`` (any key layout :func:`normalize_keys` knows) from being the
    weights of ``config``: a list of problems (missing keys, unexpected keys, wrong shapes, not
    floating point); empty when it fits."""
    expected = expected_pose_shapes(config)
    sd = normalize_keys(state_dict)
    n_stages = get_pose_config(config).num_stages
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected and not (_STAGE_OF_KEY.search(k) and _stage_of(k) > n_stages)]
    wrong = [f"{k}: {tuple(sd[k].shape)} instead of {expected[k]}" for k in expected
             if k in sd and tuple(sd[k].shape) != expected[k]]
    not_float = [k for k in expected if k in sd and not sd[k].is_floating_point()]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_summarise(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_summarise(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes ({len(wrong)}): {_summarise(wrong, 4)}")
    if not_float:
        problems.append(f"not floating point ({len(not_float)}): {_summarise(not_float)}")
    return problems


def pose_weights_fingerprint(state_dict) -> str:
    """SHA-256 of the weights themselves (flat key names, dtypes, shapes and values in key order),
    independent of the file they came from: the same weights read from ``.pth``, ``.caffemodel``
    or ``.safetensors`` have one fingerprint. Recorded in exported graphs and checked at load."""
    sd = normalize_keys(state_dict)
    digests = []
    for key in sorted(sd):
        t = sd[key].detach().to("cpu").contiguous()
        header = f"{key}|{str(t.dtype)}|{tuple(t.shape)}|".encode()
        digests.append(sha256_bytes(header + t.view(-1).view(torch.uint8).numpy().tobytes()))
    return sha256_bytes("\n".join(digests).encode())


def save_pose_weights(state_dict, path) -> Path:
    """Write flat-key weights as ``.safetensors`` or ``.pth`` (by suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = OrderedDict((k, v.detach().cpu().contiguous()) for k, v in normalize_keys(state_dict).items())
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        save_file(dict(sd), str(path))
    elif path.suffix.lower() in (".pth", ".pt"):
        torch.save(sd, str(path))
    else:
        raise ValueError(f"unknown weight file type {path.suffix!r}: use .safetensors or .pth")
    return path


__all__ = ["PoseWeightsError", "LoadReport", "read_pose_state_dict", "normalize_keys", "load_pose_weights",
           "expected_pose_shapes", "check_pose_state_dict", "pose_weights_fingerprint", "save_pose_weights"]
