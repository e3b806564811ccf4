"""Memory benchmark: the camera pipeline's peak host memory (RSS) and, on a GPU, its device memory,
stage by stage as it is built and run, for each pose network -- what fits on an 8 GB Orin Nano.

Each configuration runs in a fresh process (peaks are per process). Stages, in order:

1. ``python + numpy + cv2``: the interpreter and the light imports;
2. ``import torch + spot_edge``;
3. ``SPOT model``: the SPOT network (``--preset``, random weights: the memory is the same) as a
   PyTorch embedder on the device (``--fp16`` on a GPU); or, with ``--engines``, the TensorRT
   engine(s) (their device memory from ``ICudaEngine.device_memory_size_v2`` too);
4. ``pose network``: OpenPose (``openpose_coco`` full, ``openpose_coco_lite``) on the device
   (with ``--fp16``: run under fp16 autocast);
5. ``first frame``: a two-camera pipeline processes one frame per camera (pose on the full
   frame, ``--people`` crops, embeddings, gallery search, events);
6. ``N frames``: the same pipeline over ``--frames`` frames per camera.

Columns: RSS after the stage, the peak RSS during the stage (``VmHWM``, reset per stage through
``/proc/self/clear_refs`` where allowed, else the process peak so far), and on a GPU
``torch.cuda.memory_allocated`` after the stage and ``max_memory_allocated`` during it. On a
Jetson the GPU shares the 8 GB with the CPU: RSS and device memory add up against one budget.

    python benchmarks/bench_memory.py                       # paper config, full + lite pose, CPU
    python benchmarks/bench_memory.py --device cuda --fp16  # on a GPU (Jetson: the real figures)
    python benchmarks/bench_memory.py --preset spot-small --frames 2 --frame 240x320   # quick
    python benchmarks/bench_memory.py --engines exports/spot --device cuda   # TensorRT engines
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

POSE_NETWORKS = ("openpose_coco", "openpose_coco_lite")


# ----------------------------------------------------------------------------- measuring

def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); whether it worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Recorder:
    """Measures each stage and prints one JSON line per stage (read by the parent process)."""

    def __init__(self, device) -> None:
        self.device = device
        self.rows: list[dict] = []
        self.peak_resettable = _reset_peak_rss()
        self._begin()

    def _cuda(self) -> bool:
        return self.device is not None and self.device.type == "cuda"

    def _begin(self) -> None:
        _reset_peak_rss()
        if self._cuda():
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def stage(self, name: str, **extra) -> None:
        row = {"stage": name, "rss_mib": (_status_kib("VmRSS") or 0) / 1024,
               "peak_rss_mib": (_status_kib("VmHWM") or 0) / 1024, **extra}
        if self._cuda():
            import torch

            torch.cuda.synchronize(self.device)
            row["cuda_allocated_mib"] = torch.cuda.memory_allocated(self.device) / 2**20
            row["cuda_peak_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            free, total = torch.cuda.mem_get_info(self.device)
            row["device_used_mib"] = (total - free) / 2**20
        self.rows.append(row)
        print("ROW " + json.dumps(row), flush=True)
        self._begin()


# ----------------------------------------------------------------------------- one configuration (child)

class MemorySource:
    """``frames`` random frames of ``(h, w)``, as a file would give them (not live)."""

    live = False

    def __init__(self, frames: int, size: tuple[int, int], seed: int) -> None:
        import numpy as np

        rng = np.random.default_rng(seed)
        self.frames = [rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(frames)]
        self.fps = 30.0
        self.description = f"{frames} generated frames {size[1]}x{size[0]}"
        self._next = 0

    def open(self) -> None:
        self._next = 0

    def read(self):
        if self._next >= len(self.frames):
            return None
        self._next += 1
        return self.frames[self._next - 1]

    def close(self) -> None:
        pass


class NetworkPose:
    """The pose network's full-frame pass (as ``OpenPoseSource`` runs it: downscaled to 368 rows),
    with ``people`` standing people instead of the parsed random-weight output, so each frame
    gives the same number of crops."""

    def __init__(self, estimator, people: int, max_height: int = 368, fp16: bool = False) -> None:
        self.estimator = estimator
        self.people = people
        self.max_height = max_height
        self.fp16 = fp16

    def __call__(self, frame):
        import cv2

        from spot_edge.pipeline.pose_sources import PoseResult, people_from_keypoints
        from spot_edge.pose.synthetic_skeletons import standing_people

        image = frame.image
        h, w = image.shape[:2]
        scale = min(1.0, self.max_height / h)
        if scale < 1.0:
            image = cv2.resize(image, (max(8, round(w * scale)), self.max_height), interpolation=cv2.INTER_AREA)
        import torch

        with torch.autocast("cuda", dtype=torch.float16, enabled=self.fp16):
            maps = self.estimator(image)[0].float().cpu().numpy()
        xs = [w * (i + 0.5) / self.people for i in range(self.people)]
        kps = standing_people(xs, [0.1 * h] * self.people, [0.7 * h] * self.people)
        return PoseResult(people=people_from_keypoints(kps, (h, w)), maps=maps, stride=8.0 / scale)


def run_child(args) -> None:
    rec = Recorder(None)
    import cv2  # noqa: F401
    import numpy as np  # noqa: F401

    rec.stage("python + numpy + cv2")
    import torch

    from spot_edge.device import resolve_device
    from spot_edge.pipeline import CameraInput, Pipeline, PipelineConfig

    device = resolve_device(args.device)
    rec.device = device
    if device.type == "cuda":
        torch.cuda.init()
    rec.stage("import torch + spot_edge", device=str(device))

    from spot_edge.backends import create_embedder

    extra = {}
    if args.engines:
        embedder = create_embedder(args.engines, backend="tensorrt", device=str(device))
        for modality, runner in embedder.runners.items():
            engine = runner.engine
            size = getattr(engine, "device_memory_size_v2", None)
            extra[f"trt_device_memory_mib_{modality}"] = (size if size is not None
                                                          else engine.device_memory_size) / 2**20
        rec.stage("SPOT TensorRT engines", **extra)
    else:
        from spot_edge.model import SPOT, preset

        model = SPOT(preset(args.preset)).eval()
        params = sum(p.numel() for p in model.parameters())
        embedder = create_embedder(model, backend="pytorch", device=str(device), fp16=args.fp16)
        rec.stage(f"SPOT model ({args.preset})", parameters_m=params / 1e6)

    from spot_edge.backends.pose_estimators import TorchPoseEstimator
    from spot_edge.pose.network import RandomWeightsWarning

    warnings.simplefilter("ignore", RandomWeightsWarning)  # random weights: memory only
    estimator = TorchPoseEstimator(config=args.pose, device=device)
    params = sum(p.numel() for p in estimator.model.parameters())
    fp16_pose = args.fp16 and device.type == "cuda"  # autocast, as bench_pose.py measures it
    rec.stage(f"pose network ({args.pose})", parameters_m=params / 1e6)

    h, w = args.frame
    config = PipelineConfig(write_video=False, max_batch=args.batch)

    def run(frames: int, out: Path):
        pose = NetworkPose(estimator, args.people, fp16=fp16_pose)
        inputs = [CameraInput(m, m, MemorySource(frames, (h, w), seed=i), pose)
                  for i, m in enumerate(("visible", "infrared"))]
        t0 = time.perf_counter()
        summary = Pipeline(inputs, embedder, None, config, output_dir=out).run(handle_signals=False)
        if summary.errors:
            raise SystemExit(f"the pipeline failed: {summary.errors}")
        return summary, time.perf_counter() - t0

    out = Path(args.workdir)
    summary, seconds = run(1, out / "first")
    rec.stage("first frame (2 cameras)", events=summary.events, seconds=round(seconds, 1))
    summary, seconds = run(args.frames, out / "frames")
    rec.stage(f"{args.frames} frames (2 cameras)", events=summary.events, seconds=round(seconds, 1))
    print("DONE " + json.dumps({"peak_resettable": rec.peak_resettable, "process_peak_rss_mib":
                                max(r["peak_rss_mib"] for r in rec.rows)}), flush=True)


# ----------------------------------------------------------------------------- the table (parent)

def _hw(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="spot", help="SPOT preset (spot: the paper configuration)")
    parser.add_argument("--pose", nargs="+", default=list(POSE_NETWORKS), help="pose networks to measure")
    parser.add_argument("--engines", default=None, help="TensorRT engine(s) instead of the PyTorch model")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--fp16", action="store_true", help="fp16 SPOT and pose network (GPU)")
    parser.add_argument("--frame", type=_hw, default=(720, 1280), help="camera frame HxW")
    parser.add_argument("--frames", type=int, default=3, help="frames per camera in the last stage")
    parser.add_argument("--people", type=int, default=4, help="people (crops) per frame")
    parser.add_argument("--batch", type=int, default=8, help="most crops per embedder call")
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.pose = args.child
        run_child(args)
        return 0

    import tempfile

    results = {}
    for pose in args.pose:
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, __file__, "--child", pose, "--workdir", tmp, "--preset", args.preset,
                       "--device", args.device, "--frame", f"{args.frame[0]}x{args.frame[1]}",
                       "--frames", str(args.frames), "--people", str(args.people), "--batch", str(args.batch)]
            command += ["--fp16"] * args.fp16 + (["--engines", args.engines] if args.engines else [])
            print(f"# {pose}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
            done = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"})
            if done.returncode != 0:
                print(done.stdout + done.stderr, file=sys.stderr)
                return done.returncode
            rows = [json.loads(line[4:]) for line in done.stdout.splitlines() if line.startswith("ROW ")]
            final = json.loads(next(line[5:] for line in done.stdout.splitlines() if line.startswith("DONE ")))
            results[pose] = {"rows": rows, **final}
    _print_table(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _print_table(results: dict, args) -> None:
    gpu = any("cuda_allocated_mib" in r for res in results.values() for r in res["rows"])
    head = ["pose network", "stage", "RSS MiB", "peak RSS MiB (stage)"]
    if gpu:
        head += ["CUDA alloc MiB", "CUDA peak MiB (stage)", "device used MiB"]
    print(f"\nmodel {args.engines or args.preset}{' fp16' if args.fp16 else ''}, frames (WxH) "
          f"{args.frame[1]}x{args.frame[0]}, {args.people} people per frame, 2 cameras, batch {args.batch}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for pose, res in results.items():
        for r in res["rows"]:
            cells = [pose, r["stage"], f"{r['rss_mib']:.0f}", f"{r['peak_rss_mib']:.0f}"]
            if gpu:
                cells += [f"{r.get('cuda_allocated_mib', 0):.0f}", f"{r.get('cuda_peak_mib', 0):.0f}",
                          f"{r.get('device_used_mib', 0):.0f}"]
            print("| " + " | ".join(cells) + " |")
        print(f"| {pose} | **process peak RSS** | | **{res['process_peak_rss_mib']:.0f}** |" + " |" * (len(head) - 4))
    if not all(res["peak_resettable"] for res in results.values()):
        print("\n(peak RSS per stage could not be reset here: the column is the process peak so far)")


if __name__ == "__main__":
    sys.exit(main())
