"""PyTorch embedder: the fp32 reference on CPU, FP16 and CUDA graphs on CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spot_edge.backends.base import BackendUnavailableError, Embedder
from spot_edge.device import resolve_device
from spot_edge.modality import MODALITIES

__all__ = ["TorchEmbedder"]


class TorchEmbedder(Embedder):
    """Run :class:`spot_edge.model.SPOT` in PyTorch.

    Args:
        model: a ``SPOT`` instance or a checkpoint path (``.safetensors``).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``
            (:func:`spot_edge.device.resolve_device`).
        fp16: run in half precision (CUDA only); embeddings are returned as float32.
        cuda_graphs: replay one CUDA graph per (modality, batch size)
            (:class:`spot_edge.backends.cuda_graphs.CudaGraphRunner`; CUDA only; static shapes, so
            it pays off for a steady camera pipeline).
        max_batch: largest batch run at once.
        threads: ``torch.set_num_threads`` for CPU inference (None: leave as is).
    """

    name = "pytorch"

    def __init__(self, model, device: str = "auto", fp16: bool = False, cuda_graphs: bool = False,
                 max_batch: int = 32, threads: int | None = None) -> None:
        import torch

        from spot_edge.model import SPOT, load_checkpoint

        self.device = resolve_device(device)
        if isinstance(model, (str, Path)):
            model = load_checkpoint(model)
        if not isinstance(model, SPOT):
            raise TypeError(f"TorchEmbedder needs a SPOT model or a checkpoint path, got {type(model).__name__}")
        if (fp16 or cuda_graphs) and self.device.type != "cuda":
            raise BackendUnavailableError("fp16 and cuda_graphs need a CUDA device; on CPU use fp32 "
                                          "(or the onnxruntime backend, faster on CPU)")
        if threads is not None:
            torch.set_num_threads(int(threads))
        self.model = model.eval().to(self.device)
        self.fp16 = bool(fp16)
        self.dtype = torch.float16 if fp16 else torch.float32
        if fp16:
            self.model.half()
        self.graphs = None
        if cuda_graphs:
            from spot_edge.backends.cuda_graphs import CudaGraphRunner

            self.graphs = CudaGraphRunner(self.model)
        config = model.config
        self.preprocessing = config.preprocessing
        self.embedding_dim = config.embedding_dim
        self.num_pose_maps = config.num_pose_maps
        self.modalities = MODALITIES
        self.max_batch = int(max_batch)
        self.config_fingerprint = config.fingerprint()

    def _embed_batch(self, images: np.ndarray, heatmaps: np.ndarray, modality: str) -> np.ndarray:
        import torch

        x = torch.from_numpy(images).to(self.device, self.dtype, non_blocking=True)
        h = torch.from_numpy(heatmaps).to(self.device, self.dtype, non_blocking=True)
        if not self.model.config.needs_pose_maps:
            h = None
        with torch.inference_mode():
            out = self.graphs(x, h, modality) if self.graphs is not None else self.model(x, h, modality)
            return out.float().cpu().numpy()

    def describe(self) -> dict:
        return {**super().describe(), "device": str(self.device), "precision": "fp16" if self.fp16 else "fp32",
                "cuda_graphs": self.graphs is not None}

    def close(self) -> None:
        if self.graphs is not None:
            self.graphs.clear()
