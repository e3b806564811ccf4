"""Every difference between the TensorRT versions spot-edge supports (10.3 to 11.x), in one place.

Supported: ``tensorrt>=10.3,<12`` (JetPack 6 ships 10.3; ``pip install tensorrt`` on x86 gives
11.x). The Python names used here are checked against the binding sources of 10.3 and 11.1
(``tests/test_engines_trt_bindings.py``). The differences that matter to spot-edge:

============================  ==========================================  ==============================
what                          TensorRT 10.3 .. 10.x                       TensorRT 11
============================  ==========================================  ==============================
strongly typed network        ``create_network(1 << STRONGLY_TYPED)``,     always; the flag (value 0) is
                              ``STRONGLY_TYPED`` = 1                       deprecated and ignored
reduced precision             from the graph (fp16 / Q/DQ int8 graphs);   from the graph only:
                              legacy: ``BuilderFlag.FP16`` on a weakly     ``BuilderFlag.FP16/INT8`` and
                              typed network built from an fp32 graph       weak typing are gone
implicit INT8 calibration     ``IInt8EntropyCalibrator2`` (not used:      removed
                              spot-edge INT8 graphs are Q/DQ)
============================  ==========================================  ==============================

The legacy path (:func:`legacy_fp16_flag`) exists only because TensorRT 10 still offers it: an
fp32 graph built with ``--precision fp16`` on TensorRT 10 lets the builder choose FP16 kernels
layer by layer, which no test here can check. The recommended path on every version is an fp16
graph (``spot-edge export-onnx --precision fp16``), built as it is.
"""

from __future__ import annotations

import re

from spot_edge.errors import SpotEdgeError

__all__ = ["SUPPORTED_RANGE", "TensorRTUnavailableError", "import_tensorrt", "tensorrt_version",
           "create_network", "legacy_fp16_available", "legacy_fp16_flag"]

SUPPORTED_RANGE = ">=10.3,<12"
MIN_VERSION = (10, 3)
MAX_MAJOR = 11


class TensorRTUnavailableError(SpotEdgeError, RuntimeError):
    """TensorRT (in a supported version) or a CUDA GPU is not available here."""


def tensorrt_version(trt) -> tuple[int, int]:
    """``(major, minor)`` of a ``tensorrt`` module (``__version__`` like ``"10.3.0.26"``)."""
    match = re.match(r"(\d+)\.(\d+)", str(getattr(trt, "__version__", "")))
    if not match:
        raise TensorRTUnavailableError(f"cannot read the TensorRT version ({getattr(trt, '__version__', None)!r})")
    return int(match.group(1)), int(match.group(2))


def import_tensorrt():
    """The ``tensorrt`` module in a supported version, or :class:`TensorRTUnavailableError` saying
    how to get one."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailableError(
            "TensorRT is not installed: on a Jetson it comes with JetPack 6 (python3-libnvinfer); on x86 "
            f"`pip install 'tensorrt{SUPPORTED_RANGE}' cuda-python` (the spot-edge tensorrt extra). "
            "ONNX Runtime (the default backend) needs neither.") from exc
    version = tensorrt_version(tensorrt)
    if version < MIN_VERSION or version[0] > MAX_MAJOR:
        raise TensorRTUnavailableError(f"TensorRT {tensorrt.__version__} is not supported; spot-edge needs "
                                       f"tensorrt{SUPPORTED_RANGE}")
    return tensorrt


def create_network(trt, builder, strongly_typed: bool = True):
    """An explicit-batch network definition, strongly typed unless ``strongly_typed=False``
    (TensorRT 10 only: the legacy builder-flag path)."""
    if not strongly_typed:
        _require_legacy(trt, "a weakly typed network")
        return builder.create_network(0)
    flag = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # 1 << 1 in 10.x, 1 << 0 (ignored) in 11
    return builder.create_network(flag)


def legacy_fp16_available(trt) -> bool:
    """True where the builder can still pick FP16 kernels for an fp32 graph (TensorRT 10 only)."""
    return tensorrt_version(trt)[0] == 10


def legacy_fp16_flag(trt, config) -> None:
    """LEGACY, TensorRT 10 only: let the builder run an fp32 graph's layers in FP16
    (``BuilderFlag.FP16`` on a weakly typed network). Gone in TensorRT 11."""
    _require_legacy(trt, "BuilderFlag.FP16")
    config.set_flag(trt.BuilderFlag.FP16)


def _require_legacy(trt, what: str) -> None:
    if not legacy_fp16_available(trt):
        raise TensorRTUnavailableError(f"TensorRT {trt.__version__} has no {what} (networks are strongly typed "
                                       "from TensorRT 11): export an fp16 graph with `spot-edge export-onnx "
                                       "--precision fp16` and build that")
