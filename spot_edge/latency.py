"""Latency and throughput of SPOT inference, per stage and end to end (``spot-edge bench``).

Stages, each timed per batch size, backend and precision (warm-up iterations excluded):

- ``preprocess``: ``B`` person crops (uint8 BGR, 1.5x the input size) resized and normalised by
  the model's :class:`~spot_edge.preprocessing.PreprocessSpec`, moved to the device;
- ``pose``: the OpenPose body network on one full frame (only with ``pose_weights`` or
  ``pose_random``; per frame, batch 1);
- ``embed``: the SPOT embedding of ``B`` crops whose tensors are already on the device;
- ``search``: top-k cosine search of ``B`` queries in a gallery of ``gallery_size`` entries of
  the other modality (:class:`spot_edge.gallery.Gallery`);
- ``end_to_end``: preprocess + embed + copy back + search, one batch of ``B`` crops (pose
  excluded: one pose pass serves every person of a frame).

Timing: on the CPU ``time.perf_counter``; on a GPU CUDA events around each call, synchronised
after every iteration for latency. Throughput comes from a separate back-to-back run (no
synchronisation between calls), so it includes the overlap a real pipeline gets.

The PyTorch backend is timed through :class:`TorchRunner` (eager, or replaying a CUDA graph of
the whole forward with static input buffers: ``model.validate_inputs = False``, warm-up on a
side stream, one graph per batch size), with its inputs already on the device: it measures the
network. The other backends come from ``spot_edge.backends.create_embedder``:
``pytorch-embedder`` (the same model through the backends' ``TorchEmbedder``), ``onnxruntime``
(an ONNX export of the model, or ``source``) and ``tensorrt`` (an engine given as ``source``).
Their ``embed`` takes and returns host ``float32`` arrays, so their figures include the
host-device copies, as a pipeline sees them.

Targets (datacenter GPU, PyTorch CUDA FP16 + CUDA graphs, 288x144 crops): under 2 ms at batch 1
and over 10,000 crops/s at batch 64. :func:`check_targets` reports them when they apply.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from spot_edge import __version__

STAGES = ("preprocess", "pose", "embed", "search", "end_to_end")
DEFAULT_STAGES = ("preprocess", "embed", "search", "end_to_end")
BACKENDS = ("pytorch", "pytorch-embedder", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16")
REPORT_FORMAT = "spot-edge/bench-v1"

#: (description, batch, metric, comparison, threshold) for PyTorch CUDA FP16 + CUDA graphs at 288x144.
TARGETS = (
    ("embed latency at batch 1 under 2 ms", 1, "latency_median_ms", "<", 2.0),
    ("embed throughput at batch 64 over 10,000 crops/s", 64, "throughput_per_s", ">", 10_000.0),
)


class BenchmarkError(ValueError):
    """A benchmark setting is invalid or a requested configuration cannot run."""


@dataclass
class BenchSettings:
    """What to measure.

    Attributes:
        batch_sizes: crops per call.
        iters: timed iterations per measurement (after ``warmup`` untimed ones).
        backends: among :data:`BACKENDS`.
        precisions: ``"fp32"`` and/or ``"fp16"`` (fp16 needs CUDA for PyTorch; it is skipped on
            the CPU with a reason).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        cuda_graphs: replay a captured CUDA graph for the PyTorch backend on CUDA.
        channels_last: NHWC memory format for the PyTorch backend on CUDA (faster convolutions).
        kernels: implementation of SPOT's fused kernels for the PyTorch backend (``"auto"``,
            ``"reference"``, ``"triton"``, ``"cuda"``; see :mod:`spot_edge.kernels`).
        modality: the stem the crops go through (and the query side of the search).
        gallery_size, top_k: the search stage.
        stages: among :data:`STAGES`; ``"pose"`` also needs ``pose_weights`` or ``pose_random``.
        source: an ONNX file or TensorRT engine for the non-PyTorch backends (default: an ONNX
            export of the model into a temporary folder, for ``onnxruntime``).
        pose_weights / pose_random / pose_config / frame_size: the pose stage.
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
        problems = []
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            problems.append(f"batch sizes must be >= 1, got {list(self.batch_sizes)}")
        if self.iters < 1 or self.warmup < 0:
            problems.append(f"need iters >= 1 and warmup >= 0, got {self.iters} and {self.warmup}")
        for b in self.backends:
            if b not in BACKENDS:
                problems.append(f"unknown backend {b!r}; choose among {', '.join(BACKENDS)}")
        for p in self.precisions:
            if p not in PRECISIONS:
                problems.append(f"unknown precision {p!r}; choose among {', '.join(PRECISIONS)}")
        for s in self.stages:
            if s not in STAGES:
                problems.append(f"unknown stage {s!r}; choose among {', '.join(STAGES)}")
        if self.modality not in ("visible", "infrared"):
            problems.append(f"modality must be 'visible' or 'infrared', got {self.modality!r}")
        if self.gallery_size < 1 or self.top_k < 1:
            problems.append("gallery_size and top_k must be >= 1")
        if self.kernels not in ("auto", "reference", "triton", "cuda"):
            problems.append(f"kernels must be auto, reference, triton or cuda, got {self.kernels!r}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be >= 1, got {self.threads}")
        if problems:
            raise BenchmarkError("invalid benchmark settings: " + "; ".join(problems))


# ----------------------------------------------------------------------------- statistics and timers


def latency_stats(times_ms: Sequence[float]) -> dict[str, float]:
    """Median, mean, percentiles (p10/p90/p99), min, max and std of per-call times, in ms."""
    t = np.asarray(times_ms, np.float64)
    if t.size == 0:
        raise BenchmarkError("no timings to summarise")
    p10, p50, p90, p99 = np.percentile(t, [10, 50, 90, 99])
    return {"median": round(float(p50), 4), "mean": round(float(t.mean()), 4), "p10": round(float(p10), 4),
            "p90": round(float(p90), 4), "p99": round(float(p99), 4), "min": round(float(t.min()), 4),
            "max": round(float(t.max()), 4), "std": round(float(t.std()), 4)}


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; a CUDA device that is absent is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise BenchmarkError(f"unknown device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError(f"device {device!r} asked for, but PyTorch sees no CUDA GPU here; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise BenchmarkError(f"device {device!r} is not supported by the benchmark (cpu or cuda)")
    return dev


class Timer:
    """Per-call latency (synchronised) and back-to-back throughput of a callable.

    On CUDA, CUDA events on the current stream bracket each call; elsewhere ``perf_counter``.
    ``host_only=True`` forces ``perf_counter`` (stages that run on the CPU only).
    """

    def __init__(self, device: torch.device, host_only: bool = False) -> None:
        self.cuda = device.type == "cuda" and not host_only
        self.device = device
        self.name = "cuda_events" if self.cuda else "perf_counter"

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def latencies(self, fn: Callable[[], Any], iters: int, warmup: int) -> list[float]:
        for _ in range(warmup):
            fn()
        self._sync()
        times = []
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            for _ in range(iters):
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
        else:
            for _ in range(iters):
                t0 = time.perf_counter()
                fn()
                self._sync()
                times.append((time.perf_counter() - t0) * 1e3)
        return times

    def back_to_back_seconds(self, fn: Callable[[], Any], iters: int) -> float:
        """Wall time of ``iters`` calls issued without synchronising in between."""
        self._sync()
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        self._sync()
        return time.perf_counter() - t0


# ----------------------------------------------------------------------------- PyTorch runner


class TorchRunner:
    """The PyTorch backend: ``runner(images, heatmaps) -> (B, D)`` on ``device``.

    - ``precision="fp16"`` casts the model and inputs to half (CUDA only);
    - ``cuda_graphs=True`` (CUDA only) captures the whole forward for one batch shape into a
      :class:`torch.cuda.CUDAGraph`: static input buffers, three warm-up calls on a side stream
      (as PyTorch's CUDA-graph notes require), input validation switched off
      (``model.validate_inputs = False``: its ``isfinite`` checks synchronise with the host).
      Each call copies the inputs into the static buffers (skipped when the caller passes the
      buffers themselves, see :meth:`static_inputs`) and replays the graph. The returned tensor
      is the graph's static output: it is overwritten by the next call.
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
        self.use_graphs = bool(cuda_graphs and device.type == "cuda")
        self.channels_last = bool(channels_last and device.type == "cuda")
        self.needs_maps = model.config.needs_pose_maps
        self.model = model.to(device=device, dtype=self.dtype).eval()
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self._graphs: dict[tuple, tuple] = {}

    def _prepare(self, images: torch.Tensor, heatmaps: torch.Tensor | None):
        images = images.to(self.device, self.dtype, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if heatmaps is not None and self.needs_maps:
            heatmaps = heatmaps.to(self.device, self.dtype, non_blocking=True)
        else:
            heatmaps = None
        return images, heatmaps

    @torch.inference_mode()
    def eager(self, images: torch.Tensor, heatmaps: torch.Tensor | None) -> torch.Tensor:
        images, heatmaps = self._prepare(images, heatmaps)
        return self.model(images, heatmaps, self.modality)

    def static_inputs(self, images: torch.Tensor, heatmaps: torch.Tensor | None):
        """The captured graph's input buffers for this shape (capturing it on first use)."""
        return self._graph_for(images, heatmaps)[1:3]

    def _graph_for(self, images: torch.Tensor, heatmaps: torch.Tensor | None):
        key = (tuple(images.shape), None if heatmaps is None else tuple(heatmaps.shape))
        if key not in self._graphs:
            self._graphs[key] = self._capture(images, heatmaps)
        return self._graphs[key]

    def _capture(self, images: torch.Tensor, heatmaps: torch.Tensor | None):
        static_images, static_maps = self._prepare(images, heatmaps)
        static_images = static_images.clone()
        static_maps = static_maps.clone() if static_maps is not None else None
        self.model.validate_inputs = False
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):
                self.model(static_images, static_maps, self.modality)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph):
            static_out = self.model(static_images, static_maps, self.modality)
        torch.cuda.synchronize(self.device)
        return graph, static_images, static_maps, static_out

    def __call__(self, images: torch.Tensor, heatmaps: torch.Tensor | None) -> torch.Tensor:
        if not self.use_graphs:
            return self.eager(images, heatmaps)
        graph, static_images, static_maps, static_out = self._graph_for(images, heatmaps)
        if images is not static_images:
            static_images.copy_(images, non_blocking=True)
        if static_maps is not None and heatmaps is not static_maps:
            static_maps.copy_(heatmaps, non_blocking=True)
        graph.replay()
        return static_out


# ----------------------------------------------------------------------------- other backends


def embedder_factory():
    """``spot_edge.backends.create_embedder`` when the backends module is installed, else None."""
    try:
        from spot_edge.backends import create_embedder
    except ImportError:
        return None
    return create_embedder


class _ExternalRunner:
    """A ``spot_edge.backends`` Embedder behind the runner call signature (host float32 arrays)."""

    def __init__(self, embedder, modality: str, needs_maps: bool) -> None:
        self.embedder = embedder
        self.modality = modality
        self.needs_maps = needs_maps

    def __call__(self, images, heatmaps):
        images = images.cpu().numpy() if isinstance(images, torch.Tensor) else images
        if isinstance(heatmaps, torch.Tensor):
            heatmaps = heatmaps.cpu().numpy()
        return self.embedder.embed(images, heatmaps, self.modality)


def _external_runner(backend: str, model, settings: BenchSettings, device: torch.device, precision: str,
                     workdir: Path) -> _ExternalRunner:
    """An Embedder from ``spot_edge.backends.create_embedder`` for ``backend``:

    - ``pytorch-embedder``: the in-memory model through the backends' ``TorchEmbedder`` (fp16 and
      CUDA graphs as asked; host arrays in and out, as the pipeline uses it);
    - ``onnxruntime``: ``settings.source`` or an ONNX export of the model for the modality (fp32);
    - ``tensorrt``: ``settings.source`` (an engine; its precision was fixed when it was built).
    """
    create_embedder = embedder_factory()
    if create_embedder is None:
        raise BenchmarkError(f"backend {backend!r} needs spot_edge.backends (create_embedder), which is not installed")
    options: dict[str, Any] = {"max_batch": max(settings.batch_sizes)}
    source = settings.source
    if backend == "pytorch-embedder":
        source, name = model, "pytorch"
        options.update(fp16=precision == "fp16", cuda_graphs=settings.cuda_graphs and device.type == "cuda")
        if settings.threads is not None:
            options["threads"] = settings.threads
    elif backend == "onnxruntime":
        name = backend
        if precision != "fp32":
            raise BenchmarkError("the onnxruntime backend runs the fp32 ONNX graph; for fp16 build a TensorRT engine")
        if settings.threads is not None:
            options["threads"] = settings.threads
        if source is None:
            from spot_edge.engines import export_onnx

            source = export_onnx(model, workdir / f"spot.{settings.modality}.onnx", settings.modality)
    else:
        name = backend
        if source is None:
            raise BenchmarkError(f"backend {backend!r} needs --source (a TensorRT engine file)")
    embedder = create_embedder(source, backend=name, device=str(device) if device.type == "cuda" else "cpu",
                               **options)
    return _ExternalRunner(embedder, settings.modality, model.config.needs_pose_maps)


# ----------------------------------------------------------------------------- inputs


def random_crops(count: int, size: tuple[int, int], rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` random uint8 BGR crops of ``size`` ``(H, W)``."""
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


def random_pose_maps(count: int, config, rng: np.random.Generator) -> np.ndarray:
    """``(count, 56, Hs, Ws)`` float32 maps at the preprocessing's heatmap size."""
    hs, ws = config.preprocessing.heatmap_size
    return rng.random((count, config.num_pose_maps, hs, ws), dtype=np.float32)


def _build_gallery(size: int, dim: int, modality: str, rng: np.random.Generator):
    from spot_edge.gallery import Gallery, other_modality

    gallery = Gallery(embedding_dim=dim)
    emb = rng.standard_normal((size, dim), dtype=np.float32)
    gallery.add(emb, identities=[f"id{i % max(1, size // 4)}" for i in range(size)],
                modality=other_modality(modality), camera="bench", timestamps=0.0)
    return gallery


# ----------------------------------------------------------------------------- the benchmark


def machine_info(device: torch.device) -> dict[str, Any]:
    """Python, torch, CPU, threads, GPU name and compute capability."""
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "processor": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count(), "torch": torch.__version__,
                            "torch_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, compute_capability=f"{props.major}.{props.minor}",
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return info


def _result(stage: str, backend: str, precision: str, batch: int, times: list[float], timer: Timer,
            throughput: float | None, **extra: Any) -> dict[str, Any]:
    stats = latency_stats(times)
    out = {"stage": stage, "backend": backend, "precision": precision, "batch": batch, "timer": timer.name,
           "iters": len(times), "latency_ms": stats,
           "throughput_per_s": round(throughput, 2) if throughput else round(batch * 1e3 / stats["median"], 2)}
    out.update(extra)
    return out


@contextlib.contextmanager
def _threads(n: int | None, blas: int | None = None) -> Iterator[None]:
    """Torch intra-op threads ``n`` and numpy BLAS threads ``blas`` (threadpoolctl) for the block."""
    with contextlib.ExitStack() as stack:
        if blas is not None:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:   # threadpoolctl comes with scikit-learn; without it, leave BLAS alone
                pass
            else:
                stack.enter_context(threadpool_limits(limits=blas, user_api="blas"))
        if n is None:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def run_benchmark(model, settings: BenchSettings | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure ``model`` (a :class:`spot_edge.model.SPOT`) as ``settings`` say; returns the report.

    The report (JSON-serialisable) holds ``machine``, ``model``, ``settings``, ``results``
    (one entry per stage/backend/precision/batch with ``latency_ms`` statistics and
    ``throughput_per_s``), ``skipped`` (configurations that could not run, with the reason)
    and ``targets`` (see :func:`check_targets`).
    """
    settings = settings or BenchSettings()
    settings.validate()
    say = progress or (lambda message: None)
    device = resolve_device(settings.device)
    rng = np.random.default_rng(settings.seed)
    config = model.config
    spec = config.preprocessing
    results: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    model = model.eval()
    home = next(model.parameters()).device
    with _threads(settings.threads, settings.blas_threads), tempfile.TemporaryDirectory(prefix="spot-bench-") as tmp:
        host_timer = Timer(device, host_only=True)
        crop_size = (int(spec.height * 1.5), int(spec.width * 1.5))
        max_batch = max(settings.batch_sizes)
        crops_all = random_crops(max_batch, crop_size, rng)
        maps_all = torch.from_numpy(random_pose_maps(max_batch, config, rng))
        pin = device.type == "cuda"

        def preprocess(crops):
            images = torch.from_numpy(spec.batch(crops))
            if pin:
                images = images.pin_memory()
            return images.to(device, non_blocking=True)

        if "preprocess" in settings.stages:
            for b in settings.batch_sizes:
                say(f"preprocess, batch {b}")
                crops = crops_all[:b]
                times = Timer(device).latencies(lambda: preprocess(crops), settings.iters, settings.warmup)
                results.append(_result("preprocess", "opencv+numpy", "uint8->fp32", b, times,
                                       Timer(device), None))

        gallery = None
        if {"search", "end_to_end"} & set(settings.stages):
            gallery = _build_gallery(settings.gallery_size, config.embedding_dim, settings.modality, rng)
        if "search" in settings.stages:
            for b in settings.batch_sizes:
                say(f"search, batch {b}, gallery {settings.gallery_size}")
                queries = rng.standard_normal((b, config.embedding_dim), dtype=np.float32)
                times = host_timer.latencies(
                    lambda: gallery.search(queries, settings.modality, k=settings.top_k, backend="numpy"),
                    settings.iters, settings.warmup)
                results.append(_result("search", "numpy", "fp32", b, times, host_timer, None,
                                       gallery_size=settings.gallery_size, top_k=settings.top_k))

        if "pose" in settings.stages:
            _pose_stage(settings, device, results, skipped, say)

        for backend in settings.backends:
            for precision in settings.precisions:
                if backend == "tensorrt":   # an engine's precision is fixed when it is built
                    if precision != settings.precisions[0]:
                        continue
                    precision = "engine"
                label = f"{backend} {precision}"
                try:
                    runner = _make_runner(backend, model, settings, device, precision, Path(tmp))
                except (BenchmarkError, ImportError, RuntimeError, ValueError, OSError) as exc:
                    skipped.append({"backend": backend, "precision": precision, "reason": str(exc)})
                    say(f"skipped {label}: {exc}")
                    continue
                graphs = bool(getattr(runner, "use_graphs", False))
                for b in settings.batch_sizes:
                    try:
                        _embed_stages(runner, b, settings, device, crops_all, maps_all, preprocess, gallery,
                                      results, backend, precision, graphs, say)
                    except (BenchmarkError, RuntimeError, ValueError) as exc:
                        skipped.append({"backend": backend, "precision": precision, "batch": str(b),
                                        "reason": str(exc)})
                        say(f"skipped {label} batch {b}: {exc}")
                # give the caller's model back as it came (fp32, its device, validation on) and free
                # the captured graphs before the next configuration
                del runner
                model.to(device=home, dtype=torch.float32, memory_format=torch.contiguous_format)
                model.validate_inputs = True
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        machine = machine_info(device)

    report = {
        "format": REPORT_FORMAT,
        "spot_edge_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "model": {"backbone": config.backbone, "input_size": list(spec.size),
                  "heatmap_size": list(spec.heatmap_size), "embedding_dim": config.embedding_dim,
                  "branches": list(config.branches), "parameters": model.num_parameters(),
                  "config_fingerprint": config.fingerprint()},
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()},
        "results": results,
        "skipped": skipped,
    }
    report["targets"] = check_targets(report)
    return report


def _make_runner(backend: str, model, settings: BenchSettings, device: torch.device, precision: str,
                 workdir: Path):
    if backend == "pytorch":
        model.set_kernel_backend(settings.kernels)
        return TorchRunner(model, device, precision, settings.cuda_graphs, settings.modality,
                           settings.channels_last)
    return _external_runner(backend, model, settings, device, precision, workdir)


def _embed_stages(runner, b: int, settings: BenchSettings, device: torch.device, crops_all, maps_all,
                  preprocess, gallery, results, backend: str, precision: str, graphs: bool, say) -> None:
    timer = Timer(device)
    maps_host = maps_all[:b].contiguous()
    crops = crops_all[:b]
    extra = {"device": str(device), "cuda_graphs": graphs}
    if isinstance(runner, TorchRunner):
        extra["kernels"] = settings.kernels
    if "embed" in settings.stages:
        say(f"embed, {backend} {precision}, batch {b}")
        images = preprocess(crops)
        if isinstance(runner, TorchRunner):   # inputs already on the device, in the runner's dtype
            maps = maps_host.to(device)
            images, maps = runner.static_inputs(images, maps) if graphs else runner._prepare(images, maps)
        else:                                 # backends.Embedder: host float32 arrays
            images, maps = images.cpu().numpy(), maps_host.numpy()
        call = lambda: runner(images, maps)   # noqa: E731
        times = timer.latencies(call, settings.iters, settings.warmup)
        seconds = timer.back_to_back_seconds(call, settings.iters)
        results.append(_result("embed", backend, precision, b, times, timer, b * settings.iters / seconds,
                               **extra))
    if "end_to_end" in settings.stages:
        say(f"end to end, {backend} {precision}, batch {b}")

        def pipeline():
            emb = runner(preprocess(crops), maps_host)
            emb = emb.float().cpu().numpy() if isinstance(emb, torch.Tensor) else np.asarray(emb, np.float32)
            return gallery.search(emb, settings.modality, k=settings.top_k, backend="numpy")

        times = timer.latencies(pipeline, settings.iters, settings.warmup)
        results.append(_result("end_to_end", backend, precision, b, times, timer, None,
                               gallery_size=settings.gallery_size, **extra))


def _pose_stage(settings: BenchSettings, device: torch.device, results, skipped, say) -> None:
    if not (settings.pose_weights or settings.pose_random):
        skipped.append({"stage": "pose", "reason": "no pose model: give pose weights (or ask for random weights, "
                                                   "timing only)"})
        return
    from spot_edge.pose.network import PoseEstimator

    say(f"pose, frame {settings.frame_size[0]}x{settings.frame_size[1]}")
    if settings.pose_weights:
        if not Path(settings.pose_weights).is_file():
            raise FileNotFoundError(f"pose weights not found: {settings.pose_weights}")
        estimator = PoseEstimator.from_weights(settings.pose_weights, settings.pose_config, device=device)
    else:
        estimator = PoseEstimator(config=settings.pose_config, device=device)
    frame = np.random.default_rng(settings.seed).integers(0, 256, (*settings.frame_size, 3), dtype=np.uint8)
    timer = Timer(device)
    iters, warmup = max(1, min(settings.iters, 10)), min(settings.warmup, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # random weights warn on every call; the report says so
        times = timer.latencies(lambda: estimator(frame), iters, warmup)
    results.append(_result("pose", "pytorch", "fp32", 1, times, timer, None, device=str(device),
                           pose_config=settings.pose_config, frame_size=list(settings.frame_size),
                           random_weights=not settings.pose_weights, unit="frames"))


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The datacenter targets, each with ``measured`` and ``met`` when the report holds the
    configuration they are about (PyTorch, CUDA, fp16, CUDA graphs, 288x144 input, the batch),
    else ``measured: null`` and a note saying why."""
    out = []
    size_ok = report["model"]["input_size"] == [288, 144]
    for description, batch, metric, comparison, threshold in TARGETS:
        entry = {"target": description, "configuration": "pytorch, CUDA, fp16, CUDA graphs, 288x144",
                 "threshold": threshold, "measured": None, "met": None}
        match = [r for r in report["results"] if r["stage"] == "embed" and r["backend"] == "pytorch"
                 and r["precision"] == "fp16" and r.get("cuda_graphs") and r["batch"] == batch
                 and str(r.get("device", "")).startswith("cuda")]
        if match and size_ok:
            r = match[0]
            value = r["latency_ms"]["median"] if metric == "latency_median_ms" else r["throughput_per_s"]
            entry["measured"] = value
            entry["met"] = bool(value < threshold if comparison == "<" else value > threshold)
        else:
            entry["note"] = ("not measured: needs --device cuda --precision fp16 --cuda-graphs, batch "
                             f"{batch}, a 288x144 model" + ("" if size_ok else
                                                              f" (this model is {report['model']['input_size']})"))
        out.append(entry)
    return out


# ----------------------------------------------------------------------------- outputs


def _label(r: dict[str, Any]) -> str:
    parts = [r["stage"], r["backend"], r["precision"]]
    if r.get("cuda_graphs"):
        parts.append("graphs")
    return f"{' '.join(parts)}  b={r['batch']}"


def plot_report(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Bar chart PNG: median latency (whiskers to p90) and throughput per measurement."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    results = report["results"]
    path = Path(path)
    n = max(1, len(results))
    fig = Figure(figsize=(11, 1.6 + 0.32 * n), dpi=100)
    FigureCanvasAgg(fig)
    ax_lat, ax_thr = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(results))
    labels = [_label(r) for r in results]
    medians = np.array([r["latency_ms"]["median"] for r in results], np.float64)
    upper = np.array([r["latency_ms"]["p90"] for r in results], np.float64) - medians
    throughput = np.array([r["throughput_per_s"] for r in results], np.float64)
    stages = sorted({r["stage"] for r in results})
    cmap = __import__("matplotlib").colormaps["tab10"]
    colours = [cmap(stages.index(r["stage"]) % 10) for r in results]
    if results:
        ax_lat.barh(y, medians, xerr=[np.zeros_like(upper), np.maximum(upper, 0)], color=colours, capsize=2)
        ax_thr.barh(y, throughput, color=colours)
        ax_lat.set_yticks(y, labels, fontsize=7)
        ax_lat.invert_yaxis()
    ax_lat.set_xlabel("latency, ms (median, whisker to p90)")
    ax_thr.set_xlabel("throughput, items/s")
    for ax, values in ((ax_lat, medians), (ax_thr, throughput)):
        ax.grid(axis="x", alpha=0.3)
        if results and values.min() > 0 and values.max() / values.min() > 50:
            ax.set_xscale("log")
    m = report["machine"]
    where = m.get("gpu") or m.get("processor") or "cpu"
    fig.suptitle(f"spot-edge bench: {report['model']['backbone']} "
                 f"{'x'.join(map(str, report['model']['input_size']))} on {where} ({m['device']}, "
                 f"{m['torch_threads']} threads)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def write_report(report: dict[str, Any], out_dir: str | os.PathLike, name: str = "bench") -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.json`` and ``<out_dir>/<name>.png`` (atomically); returns both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{name}.json"
    tmp = json_path.with_name(f".{json_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str) + "\n")
    os.replace(tmp, json_path)
    return json_path, plot_report(report, out_dir / f"{name}.png")


def markdown_table(report: dict[str, Any]) -> str:
    """The results as a Markdown table (for the README)."""
    lines = ["| stage | backend | precision | batch | median ms | p90 ms | p99 ms | items/s |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        lat = r["latency_ms"]
        backend = r["backend"] + (" + graphs" if r.get("cuda_graphs") else "")
        lines.append(f"| {r['stage']} | {backend} | {r['precision']} | {r['batch']} | {lat['median']:.3f} | "
                     f"{lat['p90']:.3f} | {lat['p99']:.3f} | {r['throughput_per_s']:,.0f} |")
    return "\n".join(lines)


__all__ = ["STAGES", "DEFAULT_STAGES", "BACKENDS", "PRECISIONS", "TARGETS", "BenchSettings", "BenchmarkError",
           "Timer", "TorchRunner", "latency_stats", "resolve_device", "run_benchmark", "check_targets",
           "plot_report", "write_report", "markdown_table", "machine_info", "embedder_factory"]
