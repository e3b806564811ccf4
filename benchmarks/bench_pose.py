"""Pose benchmark: OpenPose network time per frame and per person crop, parsing time vs people.

Runs on the CPU and, when CUDA is present, on the GPU (fp32 and fp16 autocast). Random weights
are fine for timing (the RandomWeightsWarning is silenced here).

    python benchmarks/bench_pose.py                      # full + lite, 368x368 frame, 288x144 crop
    python benchmarks/bench_pose.py --quick              # small sizes, a few seconds
    python benchmarks/bench_pose.py --frame 368x656 --config openpose_coco --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

from spot_edge.pose.info import count_cost
from spot_edge.pose.network import OpenPoseBody, RandomWeightsWarning, get_pose_config, select_pose_maps
from spot_edge.pose.parse import parse_pose_maps
from spot_edge.pose.render import render_pose_maps
from spot_edge.pose.synthetic_skeletons import crowd


def _hw(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def _time(fn, repeats: int, warmup: int, device: torch.device) -> float:
    """Median seconds of ``fn()``."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_network(config: str, frame_hw, crop_hw, crop_batch: int, device: torch.device, half: bool,
                  repeats: int, warmup: int) -> list[dict]:
    model = OpenPoseBody(config).eval().to(device)
    rows = []
    for label, hw, batch in (("frame", frame_hw, 1), ("crop", crop_hw, 1), (f"crop x{crop_batch}", crop_hw, crop_batch)):
        x = torch.rand(batch, 3, *hw, device=device) - 0.5

        def run():
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=half):
                select_pose_maps(*model(x))

        sec = _time(run, repeats, warmup, device)
        gmac = count_cost(config, hw).macs / 1e9
        rows.append({"config": get_pose_config(config).name, "device": device.type + (" fp16" if half else " fp32"),
                     "input": f"{batch}x{hw[0]}x{hw[1]}", "what": label, "ms_total": 1e3 * sec,
                     "ms_per_item": 1e3 * sec / batch, "gmac_per_item": gmac,
                     "gmac_per_s": gmac * batch / sec})
    return rows


def bench_parse(frame_hw, people_counts, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    h8, w8 = -(-frame_hw[0] // 8), -(-frame_hw[1] // 8)
    rows = []
    for n in people_counts:
        kp = crowd(n, frame_hw, rng)
        maps = render_pose_maps(kp, frame_hw, (h8, w8))
        found = parse_pose_maps(maps, image_size=frame_hw)
        sec = _time(lambda: parse_pose_maps(maps, image_size=frame_hw), repeats, 1, torch.device("cpu"))
        rsec = _time(lambda: render_pose_maps(kp, frame_hw, (h8, w8)), repeats, 1, torch.device("cpu"))
        rows.append({"people": n, "found": len(found), "maps": f"{h8}x{w8}", "parse_ms": 1e3 * sec,
                     "render_ms": 1e3 * rsec})
    return rows


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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", nargs="+", default=["openpose_coco", "openpose_coco_lite"])
    p.add_argument("--frame", type=_hw, default=(368, 368), help="frame HxW (multiples of 8)")
    p.add_argument("--crop", type=_hw, default=(288, 144), help="person crop HxW")
    p.add_argument("--crop-batch", type=int, default=8)
    p.add_argument("--people", type=int, nargs="+", default=[0, 1, 2, 4, 8, 16, 32])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU network timing")
    p.add_argument("--quick", action="store_true", help="tiny sizes, lite config, for a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.config, args.frame, args.crop, args.crop_batch = ["openpose_coco_lite"], (96, 96), (96, 48), 2
        args.people, args.repeats = [0, 2, 8], 2
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RandomWeightsWarning)

    devices: list[tuple[torch.device, bool]] = [] if args.no_cpu else [(torch.device("cpu"), False)]
    if torch.cuda.is_available():
        devices += [(torch.device("cuda"), False), (torch.device("cuda"), True)]
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    print(f"CPU threads: {torch.get_num_threads()}, torch {torch.__version__}")

    net_rows = []
    for config in args.config:
        for device, half in devices:
            net_rows += bench_network(config, args.frame, args.crop, args.crop_batch, device, half,
                                      args.repeats, args.warmup)
    _print_table("Pose network (median of repeats)", net_rows,
                 {"ms_total": "{:.1f}", "ms_per_item": "{:.1f}", "gmac_per_item": "{:.1f}", "gmac_per_s": "{:.0f}"})
    _print_table(f"Parsing (CPU, numpy) vs number of people, frame {args.frame[0]}x{args.frame[1]}",
                 bench_parse(args.frame, args.people, max(args.repeats, 3)),
                 {"parse_ms": "{:.2f}", "render_ms": "{:.2f}"})


if __name__ == "__main__":
    main()
