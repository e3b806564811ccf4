"""fp32 / fp16 / int8 graphs on the CPU: latency through the Embedder interface, and the studies
that chose the FP16 islands and the INT8 layers kept in float.

    python benchmarks/bench_precision.py                       # paper config, 2 threads, batch 1 and 8
    python benchmarks/bench_precision.py --study fp16 --checkpoint model.safetensors --data data/synthetic-sysu
    python benchmarks/bench_precision.py --study int8 --checkpoint model.safetensors --data data/synthetic-sysu

Latency: the variants (PyTorch eager fp32, ONNX Runtime fp32 / fp16 / int8) embed the same
batches through ``Embedder.embed``, timed alternately over ``--rounds`` rounds after a warm-up
(a change in machine load hits all alike); median and best milliseconds and the speed-up over
ONNX Runtime fp32 are printed, with each variant's lowest cosine to PyTorch fp32. Weights do not
change the cost: without ``--checkpoint`` the network is randomly initialised and the int8 graph
calibrated on random batches (``--calibration DATA`` for real data).

Studies (``--study``): on a trained checkpoint, the cosine of each graph variant's embedding to the
fp32 graph's on ``--images`` images of the dataset's test split (``--data``): fp16 with no
islands, with the chosen ones, and with each chosen one removed; int8 with every Conv / MatMul /
Gemm quantised and with each group of layers kept in float (one calibration shared by all).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

from spot_edge.latency.timing import interleaved_ms


def _model(args):
    import torch

    from spot_edge.model import SPOT, load_checkpoint, preset

    if args.checkpoint:
        return load_checkpoint(args.checkpoint).eval()
    torch.manual_seed(0)
    return SPOT(preset(args.preset)).eval()


def _calibration(args, model, modality: str):
    from spot_edge.calibration_data import calibration_set

    config = model.config
    if args.calibration:
        return calibration_set(args.calibration, modality, config.preprocessing, config.num_pose_maps,
                               size=args.calibration_size)
    rng = np.random.default_rng(1)
    spec = config.preprocessing
    return [(rng.standard_normal((8, 3, *spec.size)).astype(np.float32),
             rng.random((8, config.num_pose_maps, *spec.heatmap_size)).astype(np.float32))
            for _ in range(max(1, args.calibration_size // 8))]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def latency(args) -> list[dict]:
    import onnxruntime as ort
    import torch

    from spot_edge.engines import export_onnx

    from spot_edge.backends import create_embedder

    torch.set_num_threads(args.threads)
    model = _model(args)
    config, modality = model.config, args.modality
    variants = {"pytorch eager fp32": create_embedder(model, backend="pytorch", device="cpu", threads=args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "fp16", "int8"):
            calibration = _calibration(args, model, modality) if precision == "int8" else None
            path = export_onnx(model, Path(tmp) / precision / f"spot.{modality}.onnx", modality, precision=precision,
                               calibration=calibration)
            variants[f"onnxruntime {precision}"] = create_embedder(path, device="cpu", threads=args.threads)
        rng = np.random.default_rng(0)
        rows = []
        for batch in args.batches:
            images = rng.standard_normal((batch, 3, *config.preprocessing.size)).astype(np.float32)
            heatmaps = rng.random((batch, config.num_pose_maps, *config.preprocessing.heatmap_size)).astype(np.float32)
            calls = {name: (lambda e=e: e.embed(images, heatmaps, modality)) for name, e in variants.items()}
            times = interleaved_ms(calls, args.warmup, args.rounds)
            reference = calls["pytorch eager fp32"]()
            base = statistics.median(times["onnxruntime fp32"])
            for name, fn in calls.items():
                rows.append({"batch": batch, "variant": name, "median_ms": statistics.median(times[name]),
                             "best_ms": min(times[name]), "speedup": base / statistics.median(times[name]),
                             "cosine_min": float(_cosine(fn(), reference).min())})
    print(f"SPOT {args.checkpoint or args.preset} ({config.backbone}, {config.preprocessing.height}x"
          f"{config.preprocessing.width}), {args.threads} threads, torch {torch.__version__}, onnxruntime "
          f"{ort.__version__}, {args.rounds} alternating rounds; speed-up = ONNX Runtime fp32 median / median")
    print("| batch | variant | median ms | best ms | speed-up vs ORT fp32 | min cosine to PyTorch fp32 |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch']} | {r['variant']} | {r['median_ms']:.1f} | {r['best_ms']:.1f} | {r['speedup']:.2f}x | "
              f"{r['cosine_min']:.5f} |")
    return rows


def _test_inputs(args, model, modality: str):
    from spot_edge.training.datasets import sysu_gallery, sysu_query

    from spot_edge.dataset_inputs import DatasetInputs

    if modality == "infrared":  # the protocol's queries
        paths = list(sysu_query(args.data).paths)
    else:  # every image of the protocol's 10 galleries
        paths = sorted({p for trial in range(10) for p in sysu_gallery(args.data, "all", trial).paths})
    paths = paths[:args.images]
    return DatasetInputs(args.data, model.config.preprocessing)(paths)


def study(args) -> list[tuple[str, float, float]]:
    import onnx

    from spot_edge.engines import export_onnx
    from spot_edge.engines.fp16 import FP16_KEEP_FP32_OPS, convert_to_fp16
    from spot_edge.engines.int8 import INT8_OP_TYPES, check_calibration_batches, quantize_int8
    from spot_edge.engines.structure_path import structure_path_nodes

    if not (args.checkpoint and args.data):
        raise SystemExit("--study needs --checkpoint and --data (a SYSU-layout root with its test split)")
    model = _model(args)
    modality = args.modality
    images, heatmaps = _test_inputs(args, model, modality)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = onnx.load(str(export_onnx(model, Path(tmp) / f"m.{modality}.onnx", modality)))
        reference = _session_run(fp32, images, heatmaps, args.threads)
        if args.study == "fp16":
            structure = structure_path_nodes(fp32)
            variants = {"no FP32 islands": ((), []), "chosen operators only": (FP16_KEEP_FP32_OPS, []),
                        "chosen: operators + structure path": (FP16_KEEP_FP32_OPS, structure)}
            variants.update({f"chosen minus {op}": (tuple(o for o in FP16_KEEP_FP32_OPS if o != op), structure)
                             for op in FP16_KEEP_FP32_OPS})
            for name, (ops, nodes) in variants.items():
                graph = convert_to_fp16(fp32, ops, nodes)
                rows.append((name, *_agreement(_session_run(graph, images, heatmaps, args.threads), reference)))
            headroom = _fp16_headroom(fp32, images[:32], heatmaps[:32], args.threads)
        else:
            config = model.config
            calibration = args.calibration or args.data
            args.calibration = calibration
            batches = check_calibration_batches(_calibration(args, model, modality), (3, *config.preprocessing.size),
                                                (config.num_pose_maps, *config.preprocessing.heatmap_size))
            cache = Path(tmp) / "ranges.json"
            quantisable = [n.name for n in fp32.graph.node if n.op_type in INT8_OP_TYPES]
            structure = [n for n in structure_path_nodes(fp32) if n in quantisable]

            def named(prefix: str) -> list[str]:
                return [n for n in quantisable if n.startswith(f"/model/{prefix}/")]

            groups = {"everything quantised": [], f"chosen: the structure path in float ({len(structure)} nodes)":
                      structure}
            groups.update({f"only {g} in float": named(g) for g in ("relation", "injection", "tpi/part_maps")})
            groups.update({f"chosen plus {g} in float": structure + named(g) for g in
                           ("stem", "layer1", "layer2", "layer3", "layer4", "asr", "tpi/encoder", "fusion")})
            adds = [n.name for n in fp32.graph.node if n.op_type == "Add" and n.name in quantisable]
            groups["chosen plus every Add in float"] = structure + adds
            for name, keep in groups.items():
                quantized, _ = quantize_int8(fp32, batches, keep_float=keep, calibration_cache=cache)
                rows.append((name, *_agreement(_session_run(quantized, images, heatmaps, args.threads,
                                                            uint8=True), reference)))
    print(f"{args.study} study on {args.checkpoint}, {len(images)} {modality} test images of {args.data}: "
          "cosine of each variant's embedding to the fp32 graph's (ONNX Runtime CPU)")
    print("| variant | min cosine | mean cosine | 1 - min cosine |")
    print("|---|---:|---:|---:|")
    for name, low, mean in rows:
        print(f"| {name} | {low:.6f} | {mean:.6f} | {1 - low:.1e} |")
    if args.study == "fp16":
        print("\nfp16 headroom in the fp32 graph (32 test images): the largest sum an op accumulates "
              "(ReduceL2: sum of squares; LayerNormalization: row sum of squares; ReduceMean: sum before "
              "dividing; Softmax: largest logit; Div: smallest |divisor|), against float16's largest value 65504")
        print("| operator | nodes | largest accumulation | / 65504 |")
        print("|---|---:|---:|---:|")
        for op, (count, value) in sorted(headroom.items()):
            print(f"| {op} | {count} | {value:.4g} | {value / 65504:.2e} |")
    return rows


def _fp16_headroom(graph, images, heatmaps, threads: int) -> dict[str, tuple[int, float]]:
    """Per operator type, the largest intermediate sum it forms on these inputs (see the table)."""
    import onnx

    probe = onnx.ModelProto.FromString(graph.SerializeToString())
    watched = [n for n in probe.graph.node if n.op_type in
               ("ReduceL2", "LayerNormalization", "ReduceMean", "Softmax", "Div")]
    names = {t for n in watched for t in (n.input[0], n.input[1] if n.op_type == "Div" else n.output[0])}
    inits = {t.name for t in probe.graph.initializer}
    existing = {o.name for o in probe.graph.output}
    for name in sorted(names - inits - existing):
        probe.graph.output.add().name = name
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    values = dict(zip(outputs, session.run(outputs, {"images": images, "heatmaps": heatmaps})))
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in probe.graph.initializer}
    value = lambda name: values.get(name, consts.get(name))  # noqa: E731
    out: dict[str, tuple[int, float]] = {}
    for node in watched:
        x = value(node.input[0])
        if node.op_type == "ReduceL2":
            peak = float(np.max(value(node.output[0])) ** 2)
        elif node.op_type == "LayerNormalization":
            peak = float(np.max(np.sum(np.square(x), axis=-1)))
        elif node.op_type == "ReduceMean":
            y = value(node.output[0])
            peak = float(np.max(np.abs(y)) * x.size / max(1, y.size))
        elif node.op_type == "Softmax":
            peak = float(np.max(x))
        else:  # Div: a tiny divisor in float16 overflows the quotient
            d = value(node.input[1])
            peak = float(1.0 / max(np.min(np.abs(d)), 1e-30)) if d is not None else 0.0
        count, best = out.get(node.op_type, (0, 0.0))
        out[node.op_type] = (count + 1, max(best, peak))
    return out


def _session_run(graph, images, heatmaps, threads: int, uint8: bool = False) -> np.ndarray:
    import onnxruntime as ort
    from spot_edge.engines.int8 import to_uint8_activations

    if uint8:
        graph = to_uint8_activations(graph)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"images": images[i:i + 32], "heatmaps": heatmaps[i:i + 32]})[0]
                           for i in range(0, len(images), 32)])


def _agreement(candidate: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    cos = _cosine(candidate, reference)
    return float(cos.min()), float(cos.mean())


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="spot", help="SPOT preset without --checkpoint (default: the paper's)")
    parser.add_argument("--checkpoint", help="a trained checkpoint (.safetensors)")
    parser.add_argument("--calibration", help="INT8 calibration data: SYSU-layout root or crop folder")
    parser.add_argument("--calibration-size", type=int, default=16)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--modality", default="infrared", choices=["visible", "infrared"])
    parser.add_argument("--study", choices=["fp16", "int8"], help="run a precision study instead of the timing")
    parser.add_argument("--data", help="--study: SYSU-layout root whose test split gives the images")
    parser.add_argument("--images", type=int, default=2000, help="--study: at most this many test images")
    args = parser.parse_args(argv)
    return study(args) if args.study else latency(args)


if __name__ == "__main__":
    main()
