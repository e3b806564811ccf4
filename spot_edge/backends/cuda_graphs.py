"""CUDA graphs of the SPOT forward pass: capture once per input shape, replay per call.

The one CUDA-graph implementation of the package: the PyTorch embedder replays it, and the
latency benchmark times it (``spot_edge.latency``). ``SPOT.forward`` never synchronises with the
host on the string-modality path (input value checks live at the boundary, in ``Embedder.embed``),
so the whole forward is capturable.

Recipe (PyTorch's CUDA-graph notes): static input buffers; ``warmup`` calls on a side stream
(cuDNN autotuning, allocator), then capture on the current device; each call copies the inputs
into the static buffers (skipped when the caller passes the buffers themselves, see
:meth:`CudaGraphRunner.static_inputs`) and replays. The returned tensor is the graph's static
output: the next call overwrites it (clone it to keep it).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CudaGraphRunner"]


class CudaGraphRunner:
    """``runner(images, heatmaps, modality) -> (B, D)``: one captured graph per (modality, shapes).

    Args:
        model: a :class:`spot_edge.model.SPOT` in eval mode, on a CUDA device, in the dtype of the
            inputs it will get (``model.half()`` for fp16).
        warmup: forward passes on a side stream before each capture.

    Inputs are ``(B, 3, H, W)`` and ``(B, K_S, Hs, Ws)`` (or None for the baseline) tensors on the
    model's device and in its dtype; ``modality`` is ``"visible"`` or ``"infrared"``.
    """

    def __init__(self, model, warmup: int = 3) -> None:
        import torch

        device = next(model.parameters()).device
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need the model on a CUDA device, it is on {device}")
        self.model = model
        self.device = device
        self.warmup = int(warmup)
        self._graphs: dict[tuple, tuple[Any, Any, Any, Any]] = {}
        self._torch = torch

    @staticmethod
    def _key(images, heatmaps, modality: str) -> tuple:
        return modality, tuple(images.shape), None if heatmaps is None else tuple(heatmaps.shape)

    def static_inputs(self, images, heatmaps, modality: str):
        """The captured graph's input buffers for these shapes (capturing on first use): callers
        that write their inputs there directly skip the copies."""
        _, static_images, static_maps, _ = self._graph(images, heatmaps, modality)
        return static_images, static_maps

    def __call__(self, images, heatmaps, modality: str):
        graph, static_images, static_maps, static_out = self._graph(images, heatmaps, modality)
        if images is not static_images:
            static_images.copy_(images, non_blocking=True)
        if static_maps is not None and heatmaps is not static_maps:
            static_maps.copy_(heatmaps, non_blocking=True)
        graph.replay()
        return static_out

    def _graph(self, images, heatmaps, modality: str):
        key = self._key(images, heatmaps, modality)
        if key not in self._graphs:
            self._graphs[key] = self._capture(images, heatmaps, modality)
        return self._graphs[key]

    def _capture(self, images, heatmaps, modality: str):
        torch = self._torch
        self.model.check_structure(images, heatmaps, modality)
        static_images = images.detach().clone()
        static_maps = heatmaps.detach().clone() if heatmaps is not None else None
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(self.warmup):
                self.model(static_images, static_maps, modality)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            static_out = self.model(static_images, static_maps, modality)
        torch.cuda.synchronize(self.device)
        return graph, static_images, static_maps, static_out

    def clear(self) -> None:
        """Release every captured graph and its buffers."""
        self._graphs.clear()
