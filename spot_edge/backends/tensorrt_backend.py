"""TensorRT embedder: one verified engine per modality, torch CUDA buffers."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from spot_edge.backends.artifacts import ENGINE_SUFFIXES, find_per_modality
from spot_edge.backends.base import BackendUnavailableError, Embedder
from spot_edge.modality import MODALITIES

__all__ = ["TensorRTEmbedder", "engine_modality"]


def engine_modality(path: Path) -> str:
    from spot_edge.engines.metadata import ArtifactError, EngineMetadata

    metadata = EngineMetadata.load(path)
    if metadata.kind != "spot":
        raise ArtifactError(f"{path} is a {metadata.kind} engine, not a SPOT embedding engine")
    return metadata.modality


class TensorRTEmbedder(Embedder):
    """Run spot-edge TensorRT engines (built by ``spot-edge build-engine``).

    Args:
        source: an engine file, a directory or prefix holding ``<prefix>.<modality>...engine`` files,
            or a ``{modality: path}`` mapping. Each engine's sidecar is verified against this GPU
            and TensorRT version.
        device: ``"cuda"``/``"cuda:N"`` (``"auto"`` = ``"cuda"``).
        plugin_libraries: plugin libraries the engines need (loaded once per process, whatever the
            number of engines).
        gpu: override GPU detection (tests with the TensorRT double).
    """

    name = "tensorrt"

    def __init__(self, source, device: str = "auto", plugin_libraries: Sequence[str | Path] = (),
                 gpu=None) -> None:
        from spot_edge.engines.trt_compat import TensorRTUnavailableError, import_tensorrt
        from spot_edge.engines.trt_runtime import TrtEngineRunner

        try:
            import_tensorrt()
        except TensorRTUnavailableError as exc:
            raise BackendUnavailableError(str(exc)) from exc
        device = "cuda" if device == "auto" else device
        paths = find_per_modality(source, ENGINE_SUFFIXES, engine_modality, "TensorRT engine")
        self.runners = {m: TrtEngineRunner(p, m, device, plugin_libraries, gpu) for m, p in paths.items()}
        infos = {m: r.metadata.artifact for m, r in self.runners.items()}
        first = next(iter(infos.values()))
        for m, info in infos.items():
            if info.config_fingerprint != first.config_fingerprint:
                raise ValueError("the engines were built from different models (config fingerprints differ); "
                                 "build both from graphs exported from one checkpoint")
            first.preprocessing.check_matches(info.preprocessing, f"{m} engine")
        self.paths = paths
        self.preprocessing = first.preprocessing
        self.embedding_dim = first.embedding_dim
        self.num_pose_maps = first.num_pose_maps
        self.modalities = tuple(m for m in MODALITIES if m in paths)
        # embed() hands each runner at most this many; the runner splits/pads per its profiles
        self.max_batch = max(r.max_batch for r in self.runners.values())
        self.config_fingerprint = first.config_fingerprint
        precisions = {r.metadata.precision for r in self.runners.values()}
        self.precision = precisions.pop() if len(precisions) == 1 else "mixed"

    def _embed_batch(self, images: np.ndarray, heatmaps: np.ndarray, modality: str) -> np.ndarray:
        import torch

        out = self.runners[modality].run(torch.from_numpy(images), torch.from_numpy(heatmaps))
        return out.cpu().numpy()

    def describe(self) -> dict:
        return {**super().describe(),
                "engines": {m: {"path": str(p), "precision": self.runners[m].metadata.precision,
                                "profiles": [q.to_list() for q in self.runners[m].profiles]}
                            for m, p in self.paths.items()}}

    def close(self) -> None:
        for runner in self.runners.values():
            runner.close()
