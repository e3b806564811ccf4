"""PyTorch eager vs ONNX Runtime (CPU) embedding latency, batch 1 and 8, on this machine.

    python benchmarks/bench_backends.py                       # paper config, 2 threads
    python benchmarks/bench_backends.py --preset spot-small --batches 1 8 32 --threads 2

Both backends run the same randomly initialised network (weights do not change the cost) in
fp32 with the same thread count; the ONNX graph is exported once into a temporary folder. The two
backends are timed alternately (``--repeats`` rounds after ``--warmup`` runs each), and the median
and the best time are printed: on a shared machine the best time is the less noisy figure. The issue's target: ONNX Runtime
CPU at least 1.3x faster than PyTorch eager.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from spot_edge.latency.timing import interleaved_ms


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="spot", help="SPOT preset (default: the paper configuration)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--modality", default="infrared", choices=["visible", "infrared"])
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime as ort
    import torch

    from spot_edge.backends import create_embedder
    from spot_edge.engines import export_onnx
    from spot_edge.model import SPOT, preset

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SPOT(preset(args.preset)).eval()
    config = model.config
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / f"bench.{args.modality}.onnx", args.modality)
        torch_embedder = create_embedder(model, backend="pytorch", device="cpu", threads=args.threads)
        ort_embedder = create_embedder(path, backend="onnxruntime", device="cpu", threads=args.threads)
        rows = []
        rng = np.random.default_rng(0)
        for batch in args.batches:
            images = rng.standard_normal((batch, 3, *config.preprocessing.size)).astype(np.float32)
            heatmaps = rng.random((batch, config.num_pose_maps, *config.preprocessing.heatmap_size)).astype(np.float32)
            times = interleaved_ms({"pytorch": lambda: torch_embedder.embed(images, heatmaps, args.modality),
                                     "onnxruntime": lambda: ort_embedder.embed(images, heatmaps, args.modality)},
                                    args.warmup, args.repeats)
            t_torch, t_ort = statistics.median(times["pytorch"]), statistics.median(times["onnxruntime"])
            best_torch, best_ort = min(times["pytorch"]), min(times["onnxruntime"])
            diff = float(np.abs(torch_embedder.embed(images, heatmaps, args.modality)
                                - ort_embedder.embed(images, heatmaps, args.modality)).max())
            rows.append({"batch": batch, "pytorch_ms": t_torch, "onnxruntime_ms": t_ort,
                         "speedup": t_torch / t_ort, "pytorch_best_ms": best_torch, "onnxruntime_best_ms": best_ort,
                         "speedup_best": best_torch / best_ort, "max_abs_diff": diff})
    print(f"SPOT preset {args.preset!r} ({config.backbone}, {config.preprocessing.height}x{config.preprocessing.width}), "
          f"{args.threads} threads, torch {torch.__version__}, onnxruntime {ort.__version__}, "
          f"{args.repeats} interleaved runs (median / best)")
    print("| batch | PyTorch eager ms (median / best) | ONNX Runtime CPU ms (median / best) | speed-up (median / best) "
          "| images/s ORT | max abs diff |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch']} | {r['pytorch_ms']:.1f} / {r['pytorch_best_ms']:.1f} | {r['onnxruntime_ms']:.1f} / "
              f"{r['onnxruntime_best_ms']:.1f} | {r['speedup']:.2f}x / {r['speedup_best']:.2f}x | "
              f"{1000.0 * r['batch'] / r['onnxruntime_ms']:.1f} | {r['max_abs_diff']:.1e} |")
    return rows


if __name__ == "__main__":
    main()
