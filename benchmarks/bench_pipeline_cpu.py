"""End-to-end CPU pipeline: frames per second with the lite OpenPose network and SPOT, one camera.

The real pipeline (:class:`spot_edge.pipeline.Pipeline`: reader, pose, embed and sink threads) on
generated frames read from an image folder, with the pose network ``openpose_coco_lite`` (3 stages)
and SPOT both on ONNX Runtime by default (``--pose-backend`` / ``--spot-backend pytorch`` for eager
PyTorch). Random weights (the cost does not depend on them); the maps of random weights are noise
whose parsing means nothing (hundreds of candidates), so the pose network runs on every frame for
its cost and its maps are then replaced by maps rendered from the people drawn into that frame
(``--people`` of them): parsing, crops, embeddings and matching see people as they would with real
weights. Nothing is written but the events.

    python benchmarks/bench_pipeline_cpu.py                        # 256x456 frames, SPOT, 2 people
    python benchmarks/bench_pipeline_cpu.py --spot-preset spot-small --people 4 --frames 40
    python benchmarks/bench_pipeline_cpu.py --pose-backend pytorch --spot-backend pytorch

Prints frames/s (processed frames over the run's wall time) and the per-stage p50 latencies the
pipeline records (``pose/<camera>`` = network + parse, ``crop``, ``embed`` per batch and per crop,
``match``), and the pose network's own p50.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch


def _hw(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def write_frames(folder: Path, count: int, frame_hw: tuple[int, int], people: int, seed: int = 0) -> list:
    """``count`` PNG frames of ``people`` stick figures on a textured background; their keypoints
    ``(people, 18, 3)`` per frame."""
    from spot_edge.pose.skeleton import LIMBS
    from spot_edge.pose.synthetic_skeletons import crowd

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = frame_hw
    keypoints = []
    for i in range(count):
        image = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3.0)
        kps = crowd(people, frame_hw, rng)
        for kp in kps:
            colour = tuple(int(c) for c in rng.integers(60, 255, 3))
            for a, b in LIMBS:
                if kp[a, 2] > 0 and kp[b, 2] > 0:
                    cv2.line(image, tuple(int(v) for v in kp[a, :2]), tuple(int(v) for v in kp[b, :2]), colour, 4)
        cv2.imwrite(str(folder / f"{i:05d}.png"), image)
        keypoints.append(kps)
    return keypoints


def pose_estimator(backend: str, folder: Path, threads: int):
    """The lite pose network with random weights on ``backend``."""
    from spot_edge.backends.pose_estimators import create_pose_estimator
    from spot_edge.pose.network import OpenPoseBody
    from spot_edge.engines.pose_onnx_export import export_pose_onnx

    torch.manual_seed(0)
    model = OpenPoseBody("openpose_coco_lite").eval()
    if backend == "pytorch":
        return create_pose_estimator(model, backend="pytorch", device="cpu", threads=threads)
    path = export_pose_onnx(model, folder / "pose_lite.onnx")
    return create_pose_estimator(path, backend="onnxruntime", device="cpu", threads=threads)


class RenderedMapsEstimator:
    """Runs the pose network on each frame (timed: the ``pose/<camera>`` stage is network +
    parse) and returns the maps rendered from the people drawn into that frame (frames come in
    order: one camera, an image folder)."""

    def __init__(self, estimator, keypoints: list) -> None:
        self.estimator = estimator
        self.stride = estimator.stride
        self.keypoints = keypoints
        self.seconds: list[float] = []

    def __call__(self, frame):
        from spot_edge.pose.render import render_pose_maps

        start = time.perf_counter()
        maps = self.estimator(frame)
        self.seconds.append(time.perf_counter() - start)
        kp = self.keypoints[(len(self.seconds) - 1) % len(self.keypoints)]
        h8, w8 = maps.shape[2], maps.shape[3]
        rendered = render_pose_maps(kp, (h8 * self.stride, w8 * self.stride), (h8, w8))
        return torch.from_numpy(rendered)[None].to(maps.device)


def spot_embedder(backend: str, preset_name: str, folder: Path, threads: int):
    from spot_edge.backends import create_embedder
    from spot_edge.engines import export_onnx
    from spot_edge.model import SPOT, preset

    torch.manual_seed(0)
    model = SPOT(preset(preset_name)).eval()
    if backend == "pytorch":
        return create_embedder(model, backend="pytorch", device="cpu", threads=threads)
    path = export_onnx(model, folder / "spot.visible.onnx", "visible")
    return create_embedder(path, backend="onnxruntime", device="cpu", threads=threads)


def run(args) -> tuple[dict, dict]:
    from spot_edge.pipeline import CameraInput, OpenPoseSource, Pipeline, PipelineConfig, open_source

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        keypoints = write_frames(tmp / "frames", args.frames, args.frame, args.people)
        network = pose_estimator(args.pose_backend, tmp, args.threads)
        network(cv2.imread(str(tmp / "frames" / "00000.png")))  # warm-up outside the timed run
        estimator = RenderedMapsEstimator(network, keypoints)
        embedder = spot_embedder(args.spot_backend, args.spot_preset, tmp, args.threads)
        pose = OpenPoseSource(estimator, max_height=args.frame[0])
        prep = embedder.preprocessing
        embedder.embed(np.zeros((1, 3, *prep.size), np.float32),
                       np.zeros((1, 56, *prep.heatmap_size), np.float32), "visible")
        config = PipelineConfig(write_video=False, max_batch=32)
        camera = CameraInput("cam", "visible", open_source(str(tmp / "frames")), pose)
        start = time.perf_counter()
        summary = Pipeline([camera], embedder, None, config, output_dir=tmp / "out").run(handle_signals=False)
        wall = time.perf_counter() - start
    counters = summary.sources["cam"]
    frames = counters["frames_processed"]
    row = {"pose": f"lite/{args.pose_backend}", "spot": f"{args.spot_preset}/{args.spot_backend}",
           "frame": f"{args.frame[0]}x{args.frame[1]}", "frames": frames,
           "people/frame": counters["people"] / max(frames, 1), "frames_per_s": frames / wall}
    latency = dict(summary.latency)
    network = np.asarray(estimator.seconds) * 1e3
    latency["pose network"] = {"count": len(network), "p50_ms": float(np.percentile(network, 50)),
                               "p90_ms": float(np.percentile(network, 90))}
    return row, latency


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frame", type=_hw, default=(256, 456), help="frame HxW (the pose network sees it as is)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--people", type=int, default=2, help="people drawn into each frame")
    p.add_argument("--pose-backend", choices=["onnxruntime", "pytorch"], default="onnxruntime")
    p.add_argument("--spot-backend", choices=["onnxruntime", "pytorch"], default="onnxruntime")
    p.add_argument("--spot-preset", default="spot", help="SPOT preset (spot: ResNet-50 288x144; spot-small)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="threads of each backend")
    args = p.parse_args(argv)
    from spot_edge.pose.network import RandomWeightsWarning

    warnings.simplefilter("ignore", RandomWeightsWarning)
    import os

    print(f"torch {torch.__version__}, {args.threads} threads per backend, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    row, latency = run(args)
    print()
    print("  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    print(f"\n{'stage':<16}{'count':>7}{'p50_ms':>10}{'p90_ms':>10}")
    for stage, s in latency.items():
        print(f"{stage:<16}{s['count']:>7}{s['p50_ms']:>10.1f}{s['p90_ms']:>10.1f}")


if __name__ == "__main__":
    main()
