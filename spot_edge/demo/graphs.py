"""The demo's deployable graphs: fp32 and int8 ONNX of the trained model, and their parity.

- :func:`export_fp32` writes ``<onnx_dir>/spot.{visible,infrared}.onnx``;
- :func:`export_int8` writes ``<onnx_dir>/spot-int8.{visible,infrared}.onnx``: Q/DQ graphs whose
  activation ranges are calibrated on the training split of the demo's data, each graph on its own
  modality (:func:`spot_edge.calibration_data.calibration_set`);
- :func:`graph_parity` compares both graphs (ONNX Runtime, CPU) with the PyTorch fp32 model on the
  synthetic test split (the community protocol, SYSU all-search): cosine to the reference and
  R-1 / mAP / mINP (:func:`spot_edge.parity.protocol_parity`);
- :func:`parity_warnings` names every graph whose retrieval metrics fall far below the reference's,
  so that the results never present a broken graph as a working one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from spot_edge.modality import MODALITIES

__all__ = ["FP32_PREFIX", "INT8_PREFIX", "MAX_METRIC_DROP", "export_fp32", "export_int8", "graph_parity",
           "parity_warnings"]

FP32_PREFIX = "spot"
INT8_PREFIX = "spot-int8"
#: largest drop (percentage points of R-1 or mAP) a graph may show against the PyTorch fp32
#: reference before the demo flags it (int8 measured about 0.1 point on the demo's model)
MAX_METRIC_DROP = 5.0
FLAGGED_METRICS = ("R-1", "mAP")


def export_fp32(model, onnx_dir: Path) -> dict[str, Path]:
    """Both modalities' fp32 graphs: ``{modality: path}``."""
    from spot_edge.engines import export_both

    return export_both(model, onnx_dir / FP32_PREFIX)


def export_int8(model, onnx_dir: Path, data_root: Path, calibration_size: int) -> dict[str, Path]:
    """Both modalities' int8 graphs, calibrated on ``calibration_size`` training images of each
    modality from ``data_root`` (a SYSU-layout root): ``{modality: path}``."""
    from spot_edge.calibration_data import calibration_set
    from spot_edge.engines import export_both

    config = model.config
    calibration = {m: calibration_set(data_root, m, config.preprocessing, config.num_pose_maps,
                                      size=calibration_size) for m in MODALITIES}
    return export_both(model, onnx_dir / INT8_PREFIX, calibration=calibration, precision="int8")


def graph_parity(model, onnx_dir: Path, data_root: Path, trials: int):
    """:class:`spot_edge.parity.ParityReport` of the fp32 and int8 graphs (ONNX Runtime,
    CPU) against ``model`` in PyTorch fp32, on the test split of ``data_root`` (all-search,
    ``trials`` random galleries)."""
    from spot_edge.backends import create_embedder
    from spot_edge.parity import protocol_parity

    reference = create_embedder(model, backend="pytorch", device="cpu")
    # prefixes, not the folder: the folder holds both exports
    candidates = {"onnx fp32": create_embedder(onnx_dir / FP32_PREFIX, backend="onnxruntime", device="cpu"),
                  "onnx int8": create_embedder(onnx_dir / INT8_PREFIX, backend="onnxruntime", device="cpu")}
    return protocol_parity(reference, candidates, data_root, trials=trials)


def parity_warnings(report: Mapping[str, Any], max_drop: float = MAX_METRIC_DROP) -> list[str]:
    """One line per candidate and protocol whose R-1 or mAP is more than ``max_drop`` points below
    the reference's, or not a number (``report``: :meth:`ParityReport.to_dict`); empty when every
    graph is close."""
    lines = []
    for row in report["rows"]:
        for protocol, change in (row.get("change") or {}).items():
            drops = {m: -change[m] for m in FLAGGED_METRICS
                     if m in change and not -change[m] <= max_drop}   # NaN is flagged too
            if drops:
                named = ", ".join(f"{m} {row['metrics'][protocol][m]:.2f} ({-d:+.2f} points)" for m, d in drops.items())
                lines.append(f"{row['name']} is far from {report['reference']} on {protocol}: {named}; "
                             f"more than {max_drop:g} points below the reference")
    return lines
