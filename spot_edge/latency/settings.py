"""What ``spot-edge bench`` measures: stages, backends, precisions, targets and the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from spot_edge.errors import SpotEdgeError
from spot_edge.modality import MODALITIES

__all__ = ["STAGES", "DEFAULT_STAGES", "BENCH_BACKENDS", "PRECISIONS", "KERNEL_CHOICES", "REPORT_FORMAT", "TARGETS",
           "BenchmarkError", "BenchSettings"]

STAGES = ("preprocess", "pose", "embed", "search", "end_to_end")
DEFAULT_STAGES = ("preprocess", "embed", "search", "end_to_end")
#: What ``--backend`` accepts: ``pytorch`` (the network through :class:`~spot_edge.latency.runners.TorchRunner`)
#: and the :mod:`spot_edge.backends` embedders (``pytorch-embedder`` is the backends' PyTorch one).
BENCH_BACKENDS = ("pytorch", "pytorch-embedder", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16")
KERNEL_CHOICES = ("auto", "reference", "triton", "cuda")
REPORT_FORMAT = "spot-edge/bench-v1"

#: (description, batch, metric, comparison, threshold) for PyTorch CUDA FP16 + CUDA graphs at 288x144.
TARGETS = (
    ("embed latency at batch 1 under 2 ms", 1, "latency_median_ms", "<", 2.0),
    ("embed throughput at batch 64 over 10,000 crops/s", 64, "throughput_per_s", ">", 10_000.0),
)


class BenchmarkError(SpotEdgeError, ValueError):
    """A benchmark setting is invalid or a requested configuration cannot run."""


@dataclass
class BenchSettings:
    """What to measure.

    Attributes:
        batch_sizes: crops per call.
        iters: timed iterations per measurement (after ``warmup`` untimed ones).
        backends: among :data:`BENCH_BACKENDS`.
        precisions: ``"fp32"`` and/or ``"fp16"`` (fp16 needs CUDA for PyTorch; it is skipped on
            the CPU with a reason).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``
            (:func:`spot_edge.device.resolve_device`).
        cuda_graphs: replay a captured CUDA graph for the PyTorch backend on CUDA.
        channels_last: NHWC memory format for the PyTorch backend on CUDA (faster convolutions).
        kernels: implementation of SPOT's fused kernels for the PyTorch backend (``"auto"``,
            ``"reference"``, ``"triton"``, ``"cuda"``; see :mod:`spot_edge.kernels`).
        modality: the stem the crops go through (and the query side of the search).
        gallery_size, top_k: the search stage.
        stages: among :data:`STAGES`; ``"pose"`` also needs ``pose_weights`` or ``pose_random``.
        source: an ONNX file, a TensorRT engine or a bundle (``spot-edge export``) for the
            non-PyTorch backends (default: an ONNX export of the model into a temporary folder,
            for ``onnxruntime``).
        pose_weights / pose_random / pose_config / frame_size: the pose stage (``pose_weights``:
            weights, a pose graph, an engine or a bundle, run by the pose estimators' auto rule).
        threads: ``torch.set_num_threads`` (None: leave as is).
        blas_threads: numpy's BLAS threads during the run (1 by default: the gallery search
            runs beside PyTorch, and two thread pools spinning on the same cores distort both).
        seed: random inputs.
    """

    batch_sizes: Sequence[int] = (1, 8)
    iters: int = 50
    warmup: int = 5
    backends: Sequence[str] = ("pytorch",)
    precisions: Sequence[str] = ("fp32",)
    device: str = "auto"
    cuda_graphs: bool = True
    channels_last: bool = True
    kernels: str = "auto"
    modality: str = "infrared"
    gallery_size: int = 1000
    top_k: int = 5
    stages: Sequence[str] = DEFAULT_STAGES
    source: str | None = None
    pose_weights: str | None = None
    pose_random: bool = False
    pose_config: str = "openpose_coco"
    frame_size: tuple[int, int] = (480, 640)
    threads: int | None = None
    blas_threads: int | None = 1
    seed: int = 0

    def validate(self) -> None:
        """:class:`BenchmarkError` naming every invalid setting (values are refused, never clamped)."""
        problems = []
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            problems.append(f"batch sizes must be >= 1, got {list(self.batch_sizes)}")
        if self.iters < 1 or self.warmup < 0:
            problems.append(f"need iters >= 1 and warmup >= 0, got {self.iters} and {self.warmup}")
        for name, values, choices in (("backend", self.backends, BENCH_BACKENDS),
                                      ("precision", self.precisions, PRECISIONS),
                                      ("stage", self.stages, STAGES)):
            problems += [f"unknown {name} {v!r}; choose among {', '.join(choices)}" for v in values if v not in choices]
        if self.modality not in MODALITIES:
            problems.append(f"modality must be 'visible' or 'infrared', got {self.modality!r}")
        if self.gallery_size < 1 or self.top_k < 1:
            problems.append("gallery_size and top_k must be >= 1")
        if self.kernels not in KERNEL_CHOICES:
            problems.append(f"kernels must be {', '.join(KERNEL_CHOICES)}, got {self.kernels!r}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be >= 1, got {self.threads}")
        if min(self.frame_size) < 16:
            problems.append(f"frame size must be at least 16x16, got {self.frame_size[0]}x{self.frame_size[1]}")
        if problems:
            raise BenchmarkError("invalid benchmark settings: " + "; ".join(problems))
