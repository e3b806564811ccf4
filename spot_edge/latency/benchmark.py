"""The benchmark itself: random inputs, every stage for every backend, precision and batch size.

Stages (warm-up iterations excluded):

- ``preprocess``: ``B`` person crops (uint8 BGR, 1.5x the input size) resized and normalised by
  the model's :class:`~spot_edge.preprocessing.PreprocessSpec`, moved to the device;
- ``pose``: the OpenPose body network on one full frame (only with ``pose_weights`` or
  ``pose_random``; per frame, batch 1);
- ``embed``: the SPOT embedding of ``B`` crops (:mod:`spot_edge.latency.runners`);
- ``search``: top-k cosine search of ``B`` queries in a gallery of ``gallery_size`` entries of
  the other modality (:class:`spot_edge.gallery.Gallery`);
- ``end_to_end``: preprocess + embed + copy back + search, one batch of ``B`` crops (pose
  excluded: one pose pass serves every person of a frame).
"""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from spot_edge import __version__
from spot_edge.device import resolve_device
from spot_edge.latency.report import check_targets
from spot_edge.latency.runners import TorchRunner, make_runner
from spot_edge.latency.settings import REPORT_FORMAT, BenchmarkError, BenchSettings
from spot_edge.latency.timing import Timer, latency_stats
from spot_edge.modality import other_modality

__all__ = ["run_benchmark", "machine_info", "random_crops", "random_pose_maps"]


def random_crops(count: int, size: tuple[int, int], rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` random uint8 BGR crops of ``size`` ``(H, W)``."""
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


def random_pose_maps(count: int, config, rng: np.random.Generator) -> np.ndarray:
    """``(count, 56, Hs, Ws)`` float32 maps at the preprocessing's heatmap size."""
    hs, ws = config.preprocessing.heatmap_size
    return rng.random((count, config.num_pose_maps, hs, ws), dtype=np.float32)


def _build_gallery(size: int, dim: int, modality: str, rng: np.random.Generator):
    from spot_edge.gallery import Gallery

    gallery = Gallery(embedding_dim=dim)
    emb = rng.standard_normal((size, dim), dtype=np.float32)
    gallery.add(emb, identities=[f"id{i % max(1, size // 4)}" for i in range(size)],
                modality=other_modality(modality), camera="bench", timestamps=0.0)
    return gallery


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
    """Torch intra-op threads ``n`` and numpy BLAS threads ``blas`` for the block."""
    with contextlib.ExitStack() as stack:
        if blas is not None:
            stack.enter_context(threadpool_limits(limits=blas, user_api="blas"))
        if n is not None:
            before = torch.get_num_threads()
            torch.set_num_threads(n)
            stack.callback(torch.set_num_threads, before)
        yield


def run_benchmark(model, settings: BenchSettings | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure ``model`` (a :class:`spot_edge.model.SPOT`) as ``settings`` say; returns the report.

    The report (JSON-serialisable) holds ``machine``, ``model``, ``settings``, ``results``
    (one entry per stage/backend/precision/batch with ``latency_ms`` statistics and
    ``throughput_per_s``), ``skipped`` (configurations that could not run, with the reason)
    and ``targets`` (see :func:`spot_edge.latency.report.check_targets`).
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
                results.append(_result("preprocess", "opencv+numpy", "uint8->fp32", b, times, Timer(device), None))

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
                    runner = make_runner(backend, model, settings, device, precision, Path(tmp))
                except (BenchmarkError, ImportError, RuntimeError, ValueError, OSError) as exc:
                    skipped.append({"backend": backend, "precision": precision, "reason": str(exc)})
                    say(f"skipped {label}: {exc}")
                    continue
                for b in settings.batch_sizes:
                    try:
                        _embed_stages(runner, b, settings, device, crops_all, maps_all, preprocess, gallery,
                                      results, backend, precision, say)
                    except (BenchmarkError, RuntimeError, ValueError) as exc:
                        skipped.append({"backend": backend, "precision": precision, "batch": str(b),
                                        "reason": str(exc)})
                        say(f"skipped {label} batch {b}: {exc}")
                # free the captured graphs and give the caller's model back as it came (fp32, its
                # device) before the next configuration
                if isinstance(runner, TorchRunner):
                    runner.close()
                del runner
                model.to(device=home, dtype=torch.float32, memory_format=torch.contiguous_format)
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


def _embed_stages(runner, b: int, settings: BenchSettings, device: torch.device, crops_all, maps_all,
                  preprocess, gallery, results, backend: str, precision: str, say) -> None:
    timer = Timer(device)
    maps_host = maps_all[:b].contiguous()
    crops = crops_all[:b]
    extra = {"device": str(device), "cuda_graphs": bool(getattr(runner, "use_graphs", False))}
    if isinstance(runner, TorchRunner):
        extra["kernels"] = settings.kernels
    if "embed" in settings.stages:
        say(f"embed, {backend} {precision}, batch {b}")
        images, maps = runner.prepare(preprocess(crops), maps_host)
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
    from spot_edge.backends.pose_estimators import create_pose_estimator
    from spot_edge.pose.network import OpenPoseBody

    say(f"pose, frame {settings.frame_size[0]}x{settings.frame_size[1]}")
    if settings.pose_weights and not Path(settings.pose_weights).exists():
        raise FileNotFoundError(f"pose weights not found: {settings.pose_weights}")
    source = settings.pose_weights or OpenPoseBody(settings.pose_config)
    # weights and models run on PyTorch; a pose graph, engine or bundle on its own backend (the auto rule)
    estimator = create_pose_estimator(source, backend="auto", device=str(device), config=settings.pose_config)
    frame = np.random.default_rng(settings.seed).integers(0, 256, (*settings.frame_size, 3), dtype=np.uint8)
    timer = Timer(device)
    iters, warmup = max(1, min(settings.iters, 10)), min(settings.warmup, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # random weights warn on every call; the report says so
        times = timer.latencies(lambda: estimator(frame), iters, warmup)
    described = estimator.describe()
    results.append(_result("pose", estimator.backend, described.get("precision", "fp32"), 1, times, timer, None,
                           device=str(device), pose_config=described["config"], frame_size=list(settings.frame_size),
                           random_weights=described["weights_fingerprint"] == "random", unit="frames"))
