"""Export the pose network to ONNX (dynamic batch, height and width) with the facts that travel with it.

The graph is :class:`~spot_edge.pose.network.PoseMapsNet`: input ``image`` ``(B, 3, H, W)`` float32
(normalised BGR / 256 - 0.5 by default, or raw BGR [0, 255] with ``normalize=True``), H and W
multiples of 8; output ``pose_maps`` ``(B, 56, H/8, W/8)`` float32, the raw maps (``clamp=False``,
what the parser reads) unless ``clamp=True``. ``precision="fp16"`` stores the weights and
computes in half precision with float32 input and output (casts at both ends): for TensorRT and
the CUDA provider; ONNX Runtime's CPU provider runs it too, without a speed-up.

Metadata (``metadata_props``, keys prefixed ``spot_edge.``; :class:`PoseGraphInfo`): format,
spot-edge version, network configuration, weights fingerprint
(:func:`~spot_edge.pose.weights.pose_weights_fingerprint`), input spec (layout, channel order,
normalisation, padding, size multiple), output spec (channels, stride, clamped), precision,
opset. :func:`read_pose_onnx_info` reads them back and :meth:`PoseGraphInfo.check` is what the
ONNX Runtime estimator verifies at load. Written atomically; TorchScript-based exporter
(``dynamo=False``), which needs no ``onnxscript``.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from spot_edge import __version__
from spot_edge.atomic import atomic_path
from spot_edge.errors import SpotEdgeError
from spot_edge.pose.network import PAD_VALUE, STRIDE, OpenPoseBody, PoseMapsNet, RandomWeightsWarning
from spot_edge.pose.skeleton import NUM_KEYPOINTS, NUM_MAPS

INPUT_NAME = "image"
OUTPUT_NAME = "pose_maps"
POSE_ONNX_FORMAT = "spot-edge-pose-onnx/1"
PREFIX = "spot_edge."
PRECISIONS = ("fp32", "fp16")
DEFAULT_OPSET = 17
RANDOM_WEIGHTS = "random"  # fingerprint of a graph exported without loaded weights


class PoseGraphError(SpotEdgeError, ValueError):
    """An ONNX file is not a spot-edge pose graph, or not the one expected."""


@dataclass(frozen=True)
class PoseGraphInfo:
    """The spot-edge facts of an exported pose graph."""

    config_name: str
    num_stages: int
    relu_on_final_heatmaps: bool
    weights_fingerprint: str
    normalization: str = "outside"  # "outside": input is BGR / 256 - 0.5; "inside": raw BGR 0..255
    clamped: bool = False
    precision: str = "fp32"
    opset: int = DEFAULT_OPSET
    stride: int = STRIDE
    pad_value: int = PAD_VALUE
    channel_order: str = "BGR"
    num_maps: int = NUM_MAPS
    version: str = __version__

    def input_spec(self) -> dict[str, Any]:
        return {"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "channel_order": self.channel_order,
                "normalization": self.normalization, "scale": 1 / 256, "offset": -0.5,
                "pad_value": self.pad_value, "multiple_of": self.stride}

    def output_spec(self) -> dict[str, Any]:
        return {"name": OUTPUT_NAME, "layout": "NCHW", "dtype": "float32", "channels": self.num_maps,
                "keypoint_maps": NUM_KEYPOINTS, "paf_channels": self.num_maps - NUM_KEYPOINTS,
                "stride": self.stride, "clamped": self.clamped}

    def to_props(self) -> dict[str, str]:
        """String key/values for ONNX ``metadata_props``."""
        return {
            PREFIX + "format": POSE_ONNX_FORMAT,
            PREFIX + "version": self.version,
            PREFIX + "pose.config": json.dumps({"name": self.config_name, "num_stages": self.num_stages,
                                                "relu_on_final_heatmaps": self.relu_on_final_heatmaps}),
            PREFIX + "pose.weights_fingerprint": self.weights_fingerprint,
            PREFIX + "pose.input": json.dumps(self.input_spec()),
            PREFIX + "pose.output": json.dumps(self.output_spec()),
            PREFIX + "precision": self.precision,
            PREFIX + "opset": str(self.opset),
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "model") -> "PoseGraphInfo":
        if props.get(PREFIX + "format") != POSE_ONNX_FORMAT:
            found = props.get(PREFIX + "format")
            raise PoseGraphError(f"{source} is not a spot-edge pose graph (format {found!r}, expected "
                                 f"{POSE_ONNX_FORMAT!r}); export it with spot_edge.pose.onnx_export")
        try:
            config = json.loads(props[PREFIX + "pose.config"])
            inp = json.loads(props[PREFIX + "pose.input"])
            out = json.loads(props[PREFIX + "pose.output"])
            return cls(config_name=str(config["name"]), num_stages=int(config["num_stages"]),
                       relu_on_final_heatmaps=bool(config["relu_on_final_heatmaps"]),
                       weights_fingerprint=props[PREFIX + "pose.weights_fingerprint"],
                       normalization=str(inp["normalization"]), clamped=bool(out["clamped"]),
                       precision=props[PREFIX + "precision"], opset=int(props[PREFIX + "opset"]),
                       stride=int(out["stride"]), pad_value=int(inp["pad_value"]),
                       channel_order=str(inp["channel_order"]), num_maps=int(out["channels"]),
                       version=props.get(PREFIX + "version", "unknown"))
        except (KeyError, TypeError, ValueError) as exc:
            raise PoseGraphError(f"{source}: incomplete or malformed spot-edge pose metadata ({exc!r})") from exc

    def check(self, expected_fingerprint: str | None = None, source: str = "pose graph") -> None:
        """Refuse a graph this package cannot feed or read, or one of other weights than expected."""
        problems = []
        if self.stride != STRIDE:
            problems.append(f"stride {self.stride} (expected {STRIDE})")
        if self.num_maps != NUM_MAPS:
            problems.append(f"{self.num_maps} output maps (expected {NUM_MAPS})")
        if self.channel_order != "BGR":
            problems.append(f"channel order {self.channel_order} (expected BGR)")
        if self.normalization not in ("outside", "inside"):
            problems.append(f"normalization {self.normalization!r}")
        if self.pad_value != PAD_VALUE:
            problems.append(f"pad value {self.pad_value} (expected {PAD_VALUE})")
        if self.precision not in PRECISIONS:
            problems.append(f"precision {self.precision!r}")
        if problems:
            raise PoseGraphError(f"{source} has an input/output spec this version cannot use: "
                                 + "; ".join(problems))
        if expected_fingerprint is not None and expected_fingerprint != self.weights_fingerprint:
            raise PoseGraphError(
                f"{source} was exported from other weights (fingerprint {self.weights_fingerprint[:12]}, "
                f"expected {expected_fingerprint[:12]}); re-export it from the weights you meant")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def read_pose_onnx_info(path_or_model) -> PoseGraphInfo:
    """:class:`PoseGraphInfo` of an ONNX file (or loaded ``onnx.ModelProto``)."""
    import onnx

    if isinstance(path_or_model, (str, Path)):
        path = Path(path_or_model)
        if not path.is_file():
            raise FileNotFoundError(f"pose graph not found: {path}")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError and friends
            raise PoseGraphError(f"{path} is not a readable ONNX file ({exc})") from exc
        source = str(path)
    else:
        model, source = path_or_model, "model"
    return PoseGraphInfo.from_props({p.key: p.value for p in model.metadata_props}, source)


class _Fp16Maps(torch.nn.Module):
    """float32 in -> half-precision network -> float32 out."""

    def __init__(self, net: PoseMapsNet) -> None:
        super().__init__()
        self.net = net.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.half()).float()


def export_pose_onnx(model: OpenPoseBody, path: str | Path, sample_hw: tuple[int, int] = (368, 368),
                     normalize: bool = False, opset: int = DEFAULT_OPSET, clamp: bool = False,
                     precision: str = "fp32", weights_fingerprint: str | None = None) -> Path:
    """Write ``model`` as ONNX with dynamic ``batch``, ``height`` and ``width``; returns the path.

    ``weights_fingerprint``: recorded in the metadata; computed from the model's weights when
    ``None`` (``"random"`` for a model without loaded weights). ``model`` is not modified.
    """
    from spot_edge.pose.weights import pose_weights_fingerprint

    path = Path(path)
    h, w = sample_hw
    if h % STRIDE or w % STRIDE or h < STRIDE or w < STRIDE:
        raise ValueError(f"sample size must be a positive multiple of {STRIDE}, got {sample_hw}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not model.weights_loaded:
        warnings.warn("exporting a pose network without pretrained weights (random maps)", RandomWeightsWarning,
                      stacklevel=2)
        fingerprint = weights_fingerprint or RANDOM_WEIGHTS
    else:
        fingerprint = weights_fingerprint or pose_weights_fingerprint(model.state_dict())
    info = PoseGraphInfo(config_name=model.config.name, num_stages=model.config.num_stages,
                         relu_on_final_heatmaps=model.config.relu_on_final_heatmaps,
                         weights_fingerprint=fingerprint, normalization="inside" if normalize else "outside",
                         clamped=clamp, precision=precision, opset=opset)
    device = next(model.parameters()).device
    body = model
    if precision == "fp16":
        import copy

        body = copy.deepcopy(model)
    net = PoseMapsNet(body, normalize=normalize, clamp=clamp).eval()
    graph = _Fp16Maps(net).eval() if precision == "fp16" else net
    sample = torch.zeros(1, 3, h, w, device=device)
    with warnings.catch_warnings(), atomic_path(path) as tmp:
        warnings.simplefilter("ignore", RandomWeightsWarning)  # said once above, not once per trace
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter announces itself
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            graph, (sample,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                          OUTPUT_NAME: {0: "batch", 2: "height_8", 3: "width_8"}},
            opset_version=opset, dynamo=False)
        _write_metadata(tmp, info)
    return path


def _write_metadata(path: Path, info: PoseGraphInfo) -> None:
    import onnx

    graph = onnx.load(str(path))
    props = info.to_props()
    keep = [p for p in graph.metadata_props if p.key not in props]
    del graph.metadata_props[:]
    graph.metadata_props.extend(keep)
    for key, value in props.items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


def onnxruntime_session(path: str | Path, providers: list[str] | None = None, threads: int | None = None):
    """An ONNX Runtime session for a pose graph (CPU provider unless ``providers``)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle intra-op threads sleep instead of spinning: in the pipeline the pose network shares the
    # cores with the host post-processing and the SPOT session of another thread
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise PoseGraphError(f"onnxruntime cannot load {path}: {exc}") from exc


def check_onnx_parity(model: OpenPoseBody, path: str | Path, inputs: list[torch.Tensor],
                      atol: float = 1e-4, normalize: bool = False, clamp: bool = False) -> float:
    """Max abs difference between PyTorch and onnxruntime over ``inputs``; raises if above ``atol``."""
    sess = onnxruntime_session(path)
    net = PoseMapsNet(model, normalize=normalize, clamp=clamp).eval()
    worst = 0.0
    for x in inputs:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            ref = net(x).numpy()
        got = sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy().astype(np.float32)})[0]
        if got.shape != ref.shape:
            raise AssertionError(f"ONNX output shape {got.shape} != PyTorch {ref.shape} for input {tuple(x.shape)}")
        worst = max(worst, float(np.abs(got - ref).max()))
    if worst > atol:
        raise AssertionError(f"ONNX and PyTorch differ by {worst:.3g} > {atol}")
    return worst


__all__ = ["INPUT_NAME", "OUTPUT_NAME", "POSE_ONNX_FORMAT", "PRECISIONS", "PoseGraphError", "PoseGraphInfo",
           "read_pose_onnx_info", "export_pose_onnx", "onnxruntime_session", "check_onnx_parity"]
