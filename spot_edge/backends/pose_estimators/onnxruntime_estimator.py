"""ONNX Runtime pose estimator: the CPU default (CUDA / TensorRT execution providers when present)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spot_edge.engines.pose_metadata import POSE_INPUT, POSE_OUTPUT, PoseGraphError, read_pose_onnx_info
from spot_edge.backends.pose_estimators.base import PoseEstimator
from spot_edge.engines.pose_onnx_export import onnxruntime_session


class OnnxRuntimePoseEstimator(PoseEstimator):
    """Run an exported pose graph (:func:`spot_edge.engines.pose_onnx_export.export_pose_onnx`).

    The graph's metadata is checked at load (a spot-edge pose graph, an input spec this package
    feeds, 56 maps at stride 8, a content that matches its recorded precision, and the weights
    fingerprint when ``expected_fingerprint`` is given, e.g. from an export bundle's manifest).

    Args:
        path: the ``.onnx`` file.
        device: ``"auto"`` (TensorRT / CUDA providers when present, else CPU), ``"cpu"``, ``"cuda"``.
        threads: intra-op threads (None: ONNX Runtime's default, all cores).
        providers: explicit provider list (overrides ``device``).
        max_batch: frames run at once.
        expected_fingerprint: refuse a graph exported from other weights.

    The maps come back on the host (``device`` is the CPU) whatever the provider.
    """

    backend = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None,
                 providers: list[str] | None = None, max_batch: int = 8,
                 expected_fingerprint: str | None = None) -> None:
        from spot_edge.backends.onnxruntime_backend import choose_providers

        import onnx

        from spot_edge.engines.precision import check_graph_precision

        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.path = Path(path)
        self.info = read_pose_onnx_info(self.path)
        self.info.check(expected_fingerprint, source=str(self.path))
        graph = onnx.load(str(self.path))
        check_graph_precision(graph, self.info, str(self.path))
        self.providers = list(providers) if providers else choose_providers(device)
        self.session = onnxruntime_session(self.path, self.providers, threads, graph.SerializeToString())
        names = ([i.name for i in self.session.get_inputs()], [o.name for o in self.session.get_outputs()])
        if names != ([POSE_INPUT], [POSE_OUTPUT]):
            raise PoseGraphError(f"{self.path}: graph inputs/outputs {names} are not the pose graph's "
                                 f"([{POSE_INPUT!r}], [{POSE_OUTPUT!r}])")
        self.device = torch.device("cpu")
        self.normalized_input = self.info.normalization == "outside"
        self.config_name = self.info.config_name
        self.num_stages = self.info.num_stages
        self.max_batch = int(max_batch)
        self.threads = threads

    @property
    def weights_fingerprint(self) -> str:
        return self.info.weights_fingerprint

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        feed = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        (maps,) = self.session.run([POSE_OUTPUT], {POSE_INPUT: feed})
        return torch.from_numpy(maps)

    def describe(self) -> dict:
        return {**super().describe(), "providers": self.providers, "threads": self.threads,
                "precision": self.info.precision, "model": str(self.path)}

    def close(self) -> None:
        self.session = None


__all__ = ["OnnxRuntimePoseEstimator"]
