"""Export the pose network to ONNX (dynamic batch, height and width) on SPOT's export path.

The graph is :class:`~spot_edge.pose.network.PoseMapsNet`: input ``image`` ``(B, 3, H, W)`` float32
(normalised BGR / 256 - 0.5 by default, or raw BGR [0, 255] with ``normalize=True``), H and W
multiples of 8; output ``pose_maps`` ``(B, 56, H/8, W/8)`` float32, the raw maps (``clamp=False``,
what the parser reads) unless ``clamp=True``.

It goes the way SPOT's graphs go (:mod:`spot_edge.engines.onnx_export`): traced once in fp32
(TorchScript exporter, ``dynamo=False``: no ``onnxscript`` needed), ``precision="fp16"`` converted
by the engines' one FP16 converter (:func:`spot_edge.engines.fp16.convert_to_fp16`: float16
weights and compute, float32 input and output, casts inside), the facts written by the one
metadata writer (:mod:`spot_edge.engines.graph_props`; :class:`~spot_edge.engines.pose_metadata.PoseGraphInfo`:
format, version, network configuration, weights fingerprint, input and output spec, precision,
opset), written atomically, then checked like SPOT's (ONNX checker with strict shape inference,
the graph's precision against its metadata, the TensorRT 10.3 parser's operator list). The
resulting file builds into a TensorRT engine with ``spot-edge build-engine`` (profiles over
batch, height and width from the target's ``pose`` section).

The fp16 graph on ONNX Runtime's CPU provider runs without a speed-up (no fast fp16 kernels
there): it is the TensorRT / CUDA format.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from spot_edge.engines.pose_metadata import (POSE_INPUT, POSE_OUTPUT, POSE_PRECISIONS, RANDOM_WEIGHTS,
                                             PoseGraphError, PoseGraphInfo, read_pose_onnx_info)
from spot_edge.errors import InputError
from spot_edge.pose.network import STRIDE, OpenPoseBody, PoseMapsNet, RandomWeightsWarning

DEFAULT_OPSET = 17


def export_pose_onnx(model: OpenPoseBody, path: str | Path, sample_hw: tuple[int, int] = (368, 368),
                     normalize: bool = False, opset: int = DEFAULT_OPSET, clamp: bool = False,
                     precision: str = "fp32", weights_fingerprint: str | None = None, check: bool = True) -> Path:
    """Write ``model`` as ONNX with dynamic ``batch``, ``height`` and ``width``; returns the path.

    Args:
        model: the network (not modified).
        path: output ``.onnx`` file (written atomically, parent folders created).
        sample_hw: size of the example input used for tracing (multiples of 8; H, W stay dynamic).
        normalize: put ``BGR / 256 - 0.5`` inside the graph (input: raw BGR 0..255).
        opset: ONNX opset.
        clamp: return maps clamped to OpenPose's output ranges instead of the raw maps.
        precision: ``"fp32"`` or ``"fp16"`` (float16 weights and compute, float32 input/output).
        weights_fingerprint: recorded in the metadata; computed from the model's weights when
            ``None`` (``"random"`` for a model without loaded weights).
        check: run the ONNX checker, the precision check and the TensorRT operator check.
    """
    from spot_edge.pose.weights import pose_weights_fingerprint

    path = Path(path)
    h, w = sample_hw
    if h % STRIDE or w % STRIDE or h < STRIDE or w < STRIDE:
        raise InputError(f"sample size must be a positive multiple of {STRIDE}, got {sample_hw}")
    if precision not in POSE_PRECISIONS:
        raise InputError(f"pose graph precision must be one of {', '.join(POSE_PRECISIONS)}, got {precision!r}")
    if not model.weights_loaded:
        warnings.warn("exporting a pose network without pretrained weights (random maps)", RandomWeightsWarning,
                      stacklevel=2)
        fingerprint = weights_fingerprint or RANDOM_WEIGHTS
    else:
        fingerprint = weights_fingerprint or pose_weights_fingerprint(
            {k: v.float() for k, v in model.state_dict().items()})
    info = PoseGraphInfo(config_name=model.config.name, num_stages=model.config.num_stages,
                         relu_on_final_heatmaps=model.config.relu_on_final_heatmaps,
                         weights_fingerprint=fingerprint, normalization="inside" if normalize else "outside",
                         clamped=clamp, precision=precision, opset=opset)
    graph = _trace(model, (h, w), normalize, clamp, opset)
    if precision == "fp16":
        from spot_edge.engines.fp16 import convert_to_fp16

        graph = convert_to_fp16(graph, keep_fp32_nodes=())  # no structure path in the pose graph
    graph.doc_string = (f"OpenPose COCO body network ({info.config_name}, {info.num_stages} stages, {precision}). "
                        f"Input image (B,3,H,W) float32 BGR, H and W multiples of {STRIDE}, "
                        f"{'raw 0..255' if normalize else 'normalised /256-0.5 outside the graph'}; output "
                        f"pose_maps (B,56,H/8,W/8) float32 ({'clamped' if clamp else 'raw'}).")
    from spot_edge.engines.graph_props import save_with_metadata

    save_with_metadata(graph, path, info.to_props(), info.version)
    if check:
        from spot_edge.engines.onnx_export import check_onnx

        check_onnx(path)
    return path


def _trace(model: OpenPoseBody, sample_hw: tuple[int, int], normalize: bool, clamp: bool, opset: int):
    """The fp32 ``onnx.ModelProto`` of the pose network (float32 weights whatever the model's dtype)."""
    import copy

    import onnx

    body = model
    if next(model.parameters()).dtype != torch.float32:
        body = copy.deepcopy(model).float()
    device = next(body.parameters()).device
    net = PoseMapsNet(body, normalize=normalize, clamp=clamp).eval()
    sample = torch.zeros(1, 3, *sample_hw, device=device)
    with tempfile.TemporaryDirectory(prefix="spot-edge-pose-export.") as tmp, warnings.catch_warnings(), \
            torch.no_grad():
        warnings.simplefilter("ignore")  # RandomWeightsWarning (said once), TracerWarning, exporter notices
        raw = Path(tmp) / "pose.onnx"
        torch.onnx.export(net, (sample,), str(raw), input_names=[POSE_INPUT], output_names=[POSE_OUTPUT],
                          dynamic_axes={POSE_INPUT: {0: "batch", 2: "height", 3: "width"},
                                        POSE_OUTPUT: {0: "batch", 2: "height_8", 3: "width_8"}},
                          opset_version=opset, dynamo=False)
        return onnx.load(str(raw))


def onnxruntime_session(path: str | Path, providers: list[str] | None = None, threads: int | None = None,
                        model_bytes: bytes | None = None):
    """An ONNX Runtime session for a pose graph (CPU provider unless ``providers``); ``model_bytes``:
    the graph already in memory (read from ``path`` otherwise)."""
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
        return ort.InferenceSession(model_bytes if model_bytes is not None else str(path), sess_options=opts,
                                    providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise PoseGraphError(f"onnxruntime cannot load {path}: {exc}") from exc


def check_onnx_parity(model: OpenPoseBody, path: str | Path, inputs: list[torch.Tensor],
                      atol: float = 1e-4, normalize: bool = False, clamp: bool = False, rtol: float = 0.0) -> float:
    """Max abs difference between PyTorch (fp32) and onnxruntime over ``inputs``; raises if above
    ``atol + rtol * max |PyTorch maps|`` (``rtol`` for fp16 graphs, whose error scales with the maps)."""
    sess = onnxruntime_session(path)
    net = PoseMapsNet(model, normalize=normalize, clamp=clamp).eval()
    worst = scale = 0.0
    for x in inputs:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            ref = net(x).numpy()
        got = sess.run([POSE_OUTPUT], {POSE_INPUT: x.numpy().astype(np.float32)})[0]
        if got.shape != ref.shape:
            raise AssertionError(f"ONNX output shape {got.shape} != PyTorch {ref.shape} for input {tuple(x.shape)}")
        worst = max(worst, float(np.abs(got - ref).max()))
        scale = max(scale, float(np.abs(ref).max()))
    if worst > atol + rtol * scale:
        raise AssertionError(f"ONNX and PyTorch differ by {worst:.3g} > {atol + rtol * scale:.3g}")
    return worst


__all__ = ["DEFAULT_OPSET", "PoseGraphError", "PoseGraphInfo", "read_pose_onnx_info", "export_pose_onnx",
           "onnxruntime_session", "check_onnx_parity"]
