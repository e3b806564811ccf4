"""ONNX Runtime embedder: the embedded default (CPU everywhere; CUDA / TensorRT EPs when present).

Graphs of every precision run here with the same float32 inputs. An int8 graph is stored
symmetric (INT8 activations, zero point 0: what TensorRT needs); when it runs on the CPU
provider alone, it is loaded with its activations re-encoded as uint8, zero point 128 (the same
grid, exactly: :func:`spot_edge.engines.int8.to_uint8_activations`), because ONNX Runtime's x86
integer kernels are fast only for uint8 activations. The file on disk is never changed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spot_edge.backends.artifacts import ONNX_SUFFIXES, find_per_modality
from spot_edge.backends.base import BackendUnavailableError, Embedder
from spot_edge.errors import InputError
from spot_edge.modality import MODALITIES

__all__ = ["OnnxRuntimeEmbedder", "choose_providers", "onnx_modality", "GPU_PROVIDERS", "CPU_PROVIDER"]

#: execution providers by preference for device "auto" / "cuda"
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"


def choose_providers(device: str = "auto", available: list[str] | None = None) -> list[str]:
    """ONNX Runtime providers for ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``, ``"tensorrt"``)."""
    import onnxruntime as ort

    available = list(available if available is not None else ort.get_available_providers())
    if device == "cpu":
        return [CPU_PROVIDER]
    if device == "auto":
        return [p for p in GPU_PROVIDERS if p in available] + [CPU_PROVIDER]
    wanted = {"cuda": ["CUDAExecutionProvider"], "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider"]}
    if device.startswith("cuda"):
        device = "cuda"
    if device not in wanted:
        raise InputError(f"unknown device {device!r} for onnxruntime; use auto, cpu, cuda or tensorrt")
    have = [p for p in wanted[device] if p in available]
    if not have:
        raise BackendUnavailableError(f"onnxruntime here has providers {available}, not {wanted[device][0]}; "
                                      f"install onnxruntime-gpu or use device='cpu'")
    return have + [CPU_PROVIDER]


def onnx_modality(path: Path) -> str:
    from spot_edge.engines.metadata import read_onnx_info

    return read_onnx_info(path).modality


class OnnxRuntimeEmbedder(Embedder):
    """Run spot-edge ONNX graphs (one per modality) with ONNX Runtime.

    Args:
        source: an ONNX file, a directory or prefix holding ``<prefix>.<modality>.onnx``, or a
            ``{modality: path}`` mapping. Every graph must carry spot-edge metadata and all must
            agree on config fingerprint and preprocessing.
        device: ``"auto"`` (TensorRT / CUDA providers when present, else CPU), ``"cpu"``, ``"cuda"``.
        threads: intra-op threads (None: ONNX Runtime's default, all cores).
        max_batch: largest batch run at once.
        providers: explicit provider list (overrides ``device``).
        uint8_activations: int8 graphs only: ``"auto"`` (re-encode for the CPU provider alone),
            True or False.
        spinning: let idle intra-op threads spin (lowest latency for back-to-back calls in a
            benchmark); off by default, because spinning threads starve the other stages of a pipeline.
    """

    name = "onnxruntime"

    def __init__(self, source, device: str = "auto", threads: int | None = None, max_batch: int = 64,
                 providers: list | None = None, uint8_activations: bool | str = "auto",
                 spinning: bool = False) -> None:
        import onnx
        import onnxruntime as ort

        from spot_edge.engines.metadata import read_onnx_info
        from spot_edge.engines.precision import check_graph_precision

        if threads is not None and threads < 1:
            raise InputError(f"threads must be at least 1, got {threads}")
        if max_batch < 1:
            raise InputError(f"max_batch must be at least 1, got {max_batch}")
        paths = find_per_modality(source, ONNX_SUFFIXES, onnx_modality, "ONNX model")
        graphs = {m: onnx.load(str(p)) for m, p in paths.items()}
        infos = {m: read_onnx_info(g) for m, g in graphs.items()}
        for m, info in infos.items():
            if info.plugins:
                raise ValueError(f"{paths[m]} holds TensorRT plugin nodes ({', '.join(info.plugins)}) that ONNX "
                                 f"Runtime cannot run; export without --plugins for onnxruntime")
        first = next(iter(infos.values()))
        for m, info in infos.items():
            if info.config_fingerprint != first.config_fingerprint:
                raise ValueError(f"the ONNX graphs were exported from different models (config fingerprints "
                                 f"{ {k: v.config_fingerprint for k, v in infos.items()} }); export both from one checkpoint")
            first.preprocessing.check_matches(info.preprocessing, f"{m} graph {paths[m].name}")
            check_graph_precision(graphs[m], info, str(paths[m]))
        self.providers = list(providers) if providers else choose_providers(device)
        cpu_only = self.providers == [CPU_PROVIDER]
        self.uint8_activations = uint8_activations is True or (uint8_activations == "auto" and cpu_only)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        if not spinning:  # idle worker threads sleep: in the pipeline they would starve the pose and crop threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = {}
        for m, p in paths.items():
            graph = graphs[m]
            if infos[m].precision == "int8" and self.uint8_activations:
                from spot_edge.engines.int8 import to_uint8_activations

                graph = to_uint8_activations(graph)
            try:
                self.sessions[m] = ort.InferenceSession(graph.SerializeToString(), sess_options=options,
                                                        providers=self.providers)
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
                raise ValueError(f"onnxruntime cannot load {p}: {exc}") from exc
        self.paths = paths
        self.infos = infos
        self.preprocessing = first.preprocessing
        self.embedding_dim = first.embedding_dim
        self.num_pose_maps = first.num_pose_maps
        self.modalities = tuple(m for m in MODALITIES if m in paths)
        self.max_batch = int(max_batch)
        self.config_fingerprint = first.config_fingerprint
        self.threads = threads
        precisions = {info.precision for info in infos.values()}
        self.precision = precisions.pop() if len(precisions) == 1 else "mixed"

    def _embed_batch(self, images: np.ndarray, heatmaps: np.ndarray, modality: str) -> np.ndarray:
        session = self.sessions[modality]
        feeds = {"images": images, "heatmaps": heatmaps}
        wanted = {i.name for i in session.get_inputs()}
        (out,) = session.run(["embedding"], {k: v for k, v in feeds.items() if k in wanted})
        return out

    def describe(self) -> dict:
        return {**super().describe(), "providers": self.providers, "threads": self.threads,
                "precision": self.precision, "uint8_activations": self.uint8_activations and self.precision == "int8",
                "models": {m: str(p) for m, p in self.paths.items()}}

    def close(self) -> None:
        self.sessions = {}
