"""What the embed stages time: ``runner(images, heatmaps) -> (B, D)`` per backend.

- :class:`TorchRunner` (``--backend pytorch``): the network itself, eager or replaying a CUDA
  graph, with its inputs already on the device in its dtype: it measures the network.
- :class:`EmbedderRunner` (every other backend): a :mod:`spot_edge.backends` ``Embedder`` from
  ``create_embedder``; its ``embed`` takes and returns host ``float32`` arrays, so its figures
  include the host-device copies, as a pipeline sees them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from spot_edge.backends import create_embedder
from spot_edge.backends.cuda_graphs import CudaGraphRunner
from spot_edge.latency.settings import PRECISIONS, BenchmarkError, BenchSettings

__all__ = ["TorchRunner", "EmbedderRunner", "make_runner"]


class TorchRunner:
    """The PyTorch backend: ``runner(images, heatmaps) -> (B, D)`` on ``device``.

    - ``precision="fp16"`` casts the model and inputs to half (CUDA only);
    - ``cuda_graphs=True`` (CUDA only) replays one captured CUDA graph of the whole forward per
      batch shape: the package's one CUDA-graph implementation,
      :class:`spot_edge.backends.cuda_graphs.CudaGraphRunner`, as the PyTorch embedder uses it.
      The returned tensor is then the graph's static output, overwritten by the next call;
    - ``channels_last=True`` (CUDA only) runs the convolutions in NHWC.
    """

    def __init__(self, model, device: torch.device, precision: str = "fp32", cuda_graphs: bool = False,
                 modality: str = "infrared", channels_last: bool = False) -> None:
        if precision not in PRECISIONS:
            raise BenchmarkError(f"unknown precision {precision!r}")
        if precision == "fp16" and device.type != "cuda":
            raise BenchmarkError("fp16 with the PyTorch backend needs a CUDA GPU "
                                 "(CPU kernels for half are slow or missing)")
        self.device = device
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.modality = modality
        self.channels_last = bool(channels_last and device.type == "cuda")
        self.needs_maps = model.config.needs_pose_maps
        self.model = model.to(device=device, dtype=self.dtype).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.graphs = CudaGraphRunner(self.model) if cuda_graphs and device.type == "cuda" else None

    @property
    def use_graphs(self) -> bool:
        return self.graphs is not None

    def _to_device(self, images: torch.Tensor, heatmaps: torch.Tensor | None):
        images = images.to(self.device, self.dtype, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if heatmaps is not None and self.needs_maps:
            heatmaps = heatmaps.to(self.device, self.dtype, non_blocking=True)
        else:
            heatmaps = None
        return images, heatmaps

    def prepare(self, images: torch.Tensor, heatmaps: torch.Tensor | None):
        """The inputs as the timed call wants them: on the device in the runner's dtype, or the
        captured graph's own input buffers (so that a replay copies nothing)."""
        images, heatmaps = self._to_device(images, heatmaps)
        if self.graphs is not None:
            return self.graphs.static_inputs(images, heatmaps, self.modality)
        return images, heatmaps

    def __call__(self, images: torch.Tensor, heatmaps: torch.Tensor | None) -> torch.Tensor:
        images, heatmaps = self._to_device(images, heatmaps)
        if self.graphs is not None:
            return self.graphs(images, heatmaps, self.modality)
        with torch.inference_mode():
            return self.model(images, heatmaps, self.modality)

    def close(self) -> None:
        """Release the captured graphs."""
        if self.graphs is not None:
            self.graphs.clear()


class EmbedderRunner:
    """A :mod:`spot_edge.backends` Embedder behind the runner call signature (host float32 arrays)."""

    def __init__(self, embedder, modality: str) -> None:
        self.embedder = embedder
        self.modality = modality

    def prepare(self, images, heatmaps):
        """Host float32 arrays, as an Embedder takes them."""
        return _host(images), _host(heatmaps)

    def __call__(self, images, heatmaps):
        return self.embedder.embed(_host(images), _host(heatmaps), self.modality)


def _host(array):
    return array.cpu().numpy() if isinstance(array, torch.Tensor) else array


def make_runner(backend: str, model, settings: BenchSettings, device: torch.device, precision: str,
                workdir: Path):
    """The runner for ``backend`` (one of :data:`~spot_edge.latency.settings.BENCH_BACKENDS`):

    - ``pytorch``: :class:`TorchRunner` with the kernels, CUDA graphs and memory format asked for;
    - ``pytorch-embedder``: the in-memory model through the backends' ``TorchEmbedder`` (fp16 and
      CUDA graphs as asked; host arrays in and out, as the pipeline uses it);
    - ``onnxruntime``: ``settings.source`` or an ONNX export of the model for the modality (fp32);
    - ``tensorrt``: ``settings.source`` (an engine; its precision was fixed when it was built).
    """
    if backend == "pytorch":
        model.set_kernel_backend(settings.kernels)
        return TorchRunner(model, device, precision, settings.cuda_graphs, settings.modality,
                           settings.channels_last)
    options: dict[str, Any] = {"max_batch": max(settings.batch_sizes)}
    source = settings.source
    if backend == "pytorch-embedder":
        source, backend = model, "pytorch"
        options.update(fp16=precision == "fp16", cuda_graphs=settings.cuda_graphs and device.type == "cuda")
        if settings.threads is not None:
            options["threads"] = settings.threads
    elif backend == "onnxruntime":
        if precision != "fp32":
            raise BenchmarkError("the onnxruntime backend runs the fp32 ONNX graph; for fp16 build a TensorRT engine")
        if settings.threads is not None:
            options["threads"] = settings.threads
        if source is None:
            from spot_edge.engines import export_onnx

            source = export_onnx(model, workdir / f"spot.{settings.modality}.onnx", settings.modality)
    elif source is None:
        raise BenchmarkError(f"backend {backend!r} needs --source (a TensorRT engine file)")
    embedder = create_embedder(source, backend=backend, device=str(device) if device.type == "cuda" else "cpu",
                               **options)
    return EmbedderRunner(embedder, settings.modality)

