"""Pose benchmarks: host-side post-processing per frame, ONNX Runtime vs PyTorch, network cost.

Random weights are fine for timing (the RandomWeightsWarning is silenced here); the maps of the
host-side section are rendered from generated crowds, so parsing finds real people. The host side
is what the issue counts per frame apart from the networks: parse (peaks, limbs, grouping) and
boxes, the crops as the embedder's normalised input plus the 56-map crops, and the search of the
people's embeddings in a gallery (1,000 entries of the other modality, exact numpy, k = 5).

    python benchmarks/bench_pose.py host                     # parse + crops + search, 1/10/30 people
    python benchmarks/bench_pose.py host --maps noisy        # maps with network-like noise
    python benchmarks/bench_pose.py backends --rounds 3      # ONNX Runtime vs torch eager, CPU, 368x656
    python benchmarks/bench_pose.py network                  # full + lite per frame and per crop
    python benchmarks/bench_pose.py agreement --weights body_pose_model.pth --images frames/

``host`` runs on one thread (torch, OpenCV and BLAS) and reports wall-clock and CPU-time medians
(on a loaded machine the CPU time of the thread is the steadier figure); ``backends`` times the two
backends alternately with the same thread count and prints their ratio. ``agreement`` compares the lite
network's people (3 stages) with the full network's (6 stages) on real frames; with random
weights that comparison means nothing, so it needs a weights file.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and sys.argv[1:2] == ["host"]:
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")  # one thread for BLAS too (set before numpy loads)

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from spot_edge.pose.info import count_cost
from spot_edge.pose.network import OpenPoseBody, RandomWeightsWarning, get_pose_config, select_pose_maps
from spot_edge.pose.render import render_pose_maps
from spot_edge.pose.synthetic_skeletons import crowd


def _hw(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def _median_ms(times: list[float]) -> float:
    return 1e3 * statistics.median(times)


def _print_table(title: str, rows: list[dict], fmt: dict[str, str]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    cells = [[fmt.get(c, "{}").format(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print(f"\n{title}")
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


# ----------------------------------------------------------------------------- host side

def _network_like(maps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rendered maps plus smooth and pixel noise (more candidates, as a network's output has)."""
    import cv2

    smooth = np.stack([cv2.GaussianBlur(c, (0, 0), 1.2) for c in rng.normal(0, 1, maps.shape).astype(np.float32)])
    return (maps + 0.06 * smooth + rng.normal(0, 0.015, maps.shape)).astype(np.float32)


def _gallery(n: int, dim: int, rng: np.random.Generator):
    from spot_edge.gallery import Gallery

    g = Gallery(embedding_dim=dim)
    g.add(rng.standard_normal((n, dim), dtype=np.float32), identities=[f"p{i}" for i in range(n)],
          modality="infrared", camera="cam", timestamps=0.0)
    return g


def bench_host(frame_hw, people_counts, repeats: int, maps_kind: str, gallery_size: int,
               gallery_dims: list[int]) -> tuple[list[dict], list[dict]]:
    """Per frame, on one thread: parse (numpy) and boxes; the crops as the embedder's input and the
    map crops (:func:`~spot_edge.pose.crop.crop_people`, OpenCV on the host); the gallery search
    of the people's embeddings (exact numpy, ``gallery_size`` entries of the other modality).
    Returns the medians by wall clock and by this thread's CPU time (a loaded machine inflates
    the first)."""
    import cv2

    from spot_edge.pose.crop import CropSpec, crop_people
    from spot_edge.pose.parse import expand_keypoint_boxes, parse_pose_maps
    from spot_edge.preprocessing import PreprocessSpec

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    h8, w8 = -(-frame_hw[0] // 8), -(-frame_hw[1] // 8)
    spec, crop_spec = PreprocessSpec(), CropSpec()
    galleries = {d: _gallery(gallery_size, d, rng) for d in gallery_dims}
    clocks = {"wall": time.perf_counter, "cpu": time.thread_time}
    tables = {name: [] for name in clocks}
    for n in people_counts:
        maps = render_pose_maps(crowd(n, frame_hw, rng), (h8 * 8, w8 * 8), (h8, w8))
        if maps_kind == "noisy":
            maps = _network_like(maps, rng)
        frame = rng.integers(0, 256, (*frame_hw, 3), dtype=np.uint8)
        queries = {d: rng.standard_normal((n, d), dtype=np.float32) for d in gallery_dims}
        times = {name: {k: [] for k in ["parse", "crops", *(f"search_{d}" for d in gallery_dims)]} for name in clocks}
        found = 0
        for r in range(repeats + 1):  # the first round warms up
            marks = []
            stamp = lambda: marks.append({name: clock() for name, clock in clocks.items()})  # noqa: E731
            stamp()
            det = parse_pose_maps(maps, image_size=(h8 * 8, w8 * 8), valid_size=frame_hw)
            boxes = expand_keypoint_boxes(det.boxes, 0.15, frame_hw)
            stamp()
            crops = crop_people(frame, boxes, maps=maps, spec=crop_spec, preprocessing=spec)
            stamp()
            for d in gallery_dims:
                galleries[d].search(queries[d][:len(det)], "visible", k=5, backend="numpy")
                stamp()
            found = len(det)
            assert crops.images.shape == (found, 3, 288, 144) and crops.maps.shape == (found, 56, 36, 18)
            if r == 0:
                continue
            for name in clocks:
                keys = list(times[name])
                for i, key in enumerate(keys):
                    times[name][key].append(marks[i + 1][name] - marks[i][name])
        for name in clocks:
            t = times[name]
            row = {"people": n, "found": found, "parse_ms": _median_ms(t["parse"]), "crops_ms": _median_ms(t["crops"])}
            for d in gallery_dims:
                row[f"search_{d}d_ms"] = _median_ms(t[f"search_{d}"])
            for d in gallery_dims:
                total = [a + b + c for a, b, c in zip(t["parse"], t["crops"], t[f"search_{d}"])]
                row[f"total_{d}d_ms"] = _median_ms(total)
            tables[name].append(row)
    return tables["wall"], tables["cpu"]


# ----------------------------------------------------------------------------- backends

def bench_backends(config: str, frame_hw, rounds: int, threads: int) -> list[dict]:
    """Torch eager vs ONNX Runtime on the CPU, one frame, timed alternately."""
    from spot_edge.backends.pose_estimators import OnnxRuntimePoseEstimator, TorchPoseEstimator
    from spot_edge.engines.pose_onnx_export import export_pose_onnx

    torch.set_num_threads(threads)
    model = OpenPoseBody(config).eval()
    frame = np.random.default_rng(0).integers(0, 256, (1, *frame_hw, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_pose_onnx(model, Path(tmp) / "pose.onnx", sample_hw=(64, 64))
        torch_est = TorchPoseEstimator(model, device="cpu")
        ort_est = OnnxRuntimePoseEstimator(path, device="cpu", threads=threads)
        ref, got = torch_est(frame), ort_est(frame)  # warm-up, and the parity figure
        diff = float((ref - got).abs().max())
        times = {"pytorch": [], "onnxruntime": []}
        for _ in range(rounds):
            for name, est in (("pytorch", torch_est), ("onnxruntime", ort_est)):
                t0 = time.perf_counter()
                est(frame)
                times[name].append(time.perf_counter() - t0)
        ort_est.close()
    med = {k: _median_ms(v) for k, v in times.items()}
    return [{"config": get_pose_config(config).name, "frame": f"{frame_hw[0]}x{frame_hw[1]}", "threads": threads,
             "rounds": rounds, "torch_ms": med["pytorch"], "ort_ms": med["onnxruntime"],
             "speedup": med["pytorch"] / med["onnxruntime"], "max_abs_diff": diff}]


# ----------------------------------------------------------------------------- network cost

def bench_network(config: str, frame_hw, crop_hw, crop_batch: int, device: torch.device, half: bool,
                  repeats: int) -> list[dict]:
    model = OpenPoseBody(config).eval().to(device)
    rows = []
    cases = (("frame", frame_hw, 1), ("crop", crop_hw, 1), (f"crop x{crop_batch}", crop_hw, crop_batch))
    for label, hw, batch in cases:
        x = torch.rand(batch, 3, *hw, device=device) - 0.5

        def run():
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=half):
                select_pose_maps(*model(x))
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        run()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        sec = statistics.median(times)
        gmac = count_cost(config, hw).macs / 1e9
        rows.append({"config": get_pose_config(config).name, "device": device.type + (" fp16" if half else " fp32"),
                     "input": f"{batch}x{hw[0]}x{hw[1]}", "what": label, "ms_per_item": 1e3 * sec / batch,
                     "gmac_per_item": gmac, "gmac_per_s": gmac * batch / sec})
    return rows


# ----------------------------------------------------------------------------- lite vs full

def bench_agreement(weights: Path, images: Path, net_height: int, limit: int) -> list[dict]:
    """People of the lite (3-stage) and the full (6-stage) network on real frames: how many are
    matched (same neck within 10 px) and the median keypoint distance of matched keypoints."""
    import cv2

    from spot_edge.imageio import list_images, read_image
    from spot_edge.backends.pose_estimators import TorchPoseEstimator

    full = TorchPoseEstimator.from_weights(weights, "openpose_coco", device="auto")
    lite = TorchPoseEstimator.from_weights(weights, "openpose_coco_lite", device="auto")
    matched = total_full = total_lite = 0
    dists = []
    for path in list_images(images)[:limit]:
        img = read_image(path)
        scale = net_height / img.shape[0]
        img = cv2.resize(img, (max(8, round(img.shape[1] * scale)), net_height), interpolation=cv2.INTER_CUBIC)
        a, b = full.detect(img), lite.detect(img)
        total_full += len(a)
        total_lite += len(b)
        for kp in a.keypoints:
            if kp[1, 2] <= 0 or not len(b):
                continue
            d = np.linalg.norm(b.keypoints[:, 1, :2] - kp[1, :2], axis=1)
            j = int(np.argmin(d))
            if d[j] < 10 and b.keypoints[j, 1, 2] > 0:
                matched += 1
                both = (kp[:, 2] > 0) & (b.keypoints[j, :, 2] > 0)
                dists += list(np.linalg.norm(kp[both, :2] - b.keypoints[j, both, :2], axis=1))
    return [{"frames": min(limit, len(list_images(images))), "people_full": total_full, "people_lite": total_lite,
             "matched": matched, "median_kp_px": float(np.median(dists)) if dists else float("nan")}]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("section", choices=["host", "backends", "network", "agreement"])
    p.add_argument("--frame", type=_hw, default=(368, 656), help="frame HxW")
    p.add_argument("--people", type=int, nargs="+", default=[1, 10, 30])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--config", nargs="+", default=["openpose_coco", "openpose_coco_lite"])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (backends)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="threads for both backends")
    p.add_argument("--crop", type=_hw, default=(288, 144))
    p.add_argument("--crop-batch", type=int, default=8)
    p.add_argument("--weights", type=Path, help="body_pose_model.pth (agreement)")
    p.add_argument("--images", type=Path, help="folder of frames (agreement)")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--maps", choices=["rendered", "noisy"], default="rendered", help="host: maps of the crowd")
    p.add_argument("--gallery-size", type=int, default=1000, help="host: gallery entries searched")
    p.add_argument("--gallery-dims", type=int, nargs="+", default=[256, 2048], help="host: embedding sizes")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore", RandomWeightsWarning)
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    if args.section == "host":
        wall, cpu = bench_host(args.frame, args.people, args.repeats, args.maps, args.gallery_size, args.gallery_dims)
        what = (f"{args.frame[0]}x{args.frame[1]} frame, {args.maps} maps, gallery of {args.gallery_size}, one thread, "
                f"median of {args.repeats}")
        fmt = {k: "{:.2f}" for k in wall[0] if k.endswith("_ms")}
        _print_table(f"Host side per frame, wall clock ({what})", wall, fmt)
        _print_table(f"Host side per frame, CPU time of the thread ({what})", cpu, fmt)
    elif args.section == "backends":
        rows = []
        for config in args.config:
            rows += bench_backends(config, args.frame, args.rounds, args.threads)
        _print_table("Pose network on the CPU, one frame (median of alternating rounds)", rows,
                     {"torch_ms": "{:.0f}", "ort_ms": "{:.0f}", "speedup": "{:.2f}x", "max_abs_diff": "{:.1e}"})
    elif args.section == "network":
        devices = [(torch.device("cpu"), False)]
        if torch.cuda.is_available():
            devices += [(torch.device("cuda"), False), (torch.device("cuda"), True)]
        rows = []
        for config in args.config:
            for device, half in devices:
                rows += bench_network(config, args.frame, args.crop, args.crop_batch, device, half, args.repeats)
        _print_table("Pose network (median of repeats)", rows,
                     {"ms_per_item": "{:.1f}", "gmac_per_item": "{:.1f}", "gmac_per_s": "{:.0f}"})
    else:
        if args.weights is None or args.images is None:
            p.error("agreement needs --weights (real OpenPose weights: with random weights the comparison "
                    "means nothing) and --images")
        _print_table("Lite (3 stages) vs full (6 stages)",
                     bench_agreement(args.weights, args.images, args.frame[0], args.limit),
                     {"median_kp_px": "{:.2f}"})


if __name__ == "__main__":
    main()
