"""PyTorch embedder: the fp32 reference on CPU, FP16 and CUDA graphs on CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spot_edge.backends.base import BackendUnavailableError, Embedder

MODALITIES = ("visible", "infrared")


def resolve_torch_device(device: str = "auto"):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} requested but PyTorch sees no CUDA GPU; use device='cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")
    return dev


class TorchEmbedder(Embedder):
    """Run :class:`spot_edge.model.SPOT` in PyTorch.

    Args:
        model: a ``SPOT`` instance or a checkpoint path (``.safetensors``).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        fp16: run in half precision (CUDA only); embeddings are returned as float32.
        cuda_graphs: capture one CUDA graph per (modality, batch size) and replay it (CUDA only;
            static shapes, so it pays off for a steady camera pipeline).
        max_batch: largest batch run at once.
        threads: ``torch.set_num_threads`` for CPU inference (None: leave as is).
    """

    name = "pytorch"

    def __init__(self, model, device: str = "auto", fp16: bool = False, cuda_graphs: bool = False,
                 max_batch: int = 32, threads: int | None = None) -> None:
        import torch

        from spot_edge.model import SPOT, load_checkpoint

        self.device = resolve_torch_device(device)
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
        self.cuda_graphs = bool(cuda_graphs)
        self.dtype = torch.float16 if fp16 else torch.float32
        if fp16:
            self.model.half()
        config = model.config
        self.preprocessing = config.preprocessing
        self.embedding_dim = config.embedding_dim
        self.num_pose_maps = config.num_pose_maps
        self.modalities = MODALITIES
        self.max_batch = int(max_batch)
        self.config_fingerprint = config.fingerprint()
        self._graphs: dict[tuple[str, int], tuple] = {}

    def _embed_batch(self, images: np.ndarray, heatmaps: np.ndarray, modality: str) -> np.ndarray:
        import torch

        x = torch.from_numpy(images).to(self.device, self.dtype, non_blocking=True)
        h = torch.from_numpy(heatmaps).to(self.device, self.dtype, non_blocking=True)
        with torch.inference_mode():
            if self.cuda_graphs:
                out = self._replay(x, h, modality)
            else:
                out = self.model(x, h, modality)
        return out.float().cpu().numpy()

    def _replay(self, x, h, modality: str):
        """Capture (first call per shape) and replay a CUDA graph of the forward pass."""
        import torch

        key = (modality, x.shape[0])
        if key not in self._graphs:
            self.model.check_inputs(x, h, modality)
            self.model.validate_inputs = False  # no host sync inside the captured region
            static_x, static_h = x.clone(), h.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm-up outside capture (cuDNN autotune, allocator)
                    self.model(static_x, static_h, modality)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.model(static_x, static_h, modality)
            self._graphs[key] = (graph, static_x, static_h, static_out)
        graph, static_x, static_h, static_out = self._graphs[key]
        static_x.copy_(x)
        static_h.copy_(h)
        graph.replay()
        return static_out.clone()

    def describe(self) -> dict:
        return {**super().describe(), "device": str(self.device), "precision": "fp16" if self.fp16 else "fp32",
                "cuda_graphs": self.cuda_graphs}

    def close(self) -> None:
        self._graphs.clear()
