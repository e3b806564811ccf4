"""``spot-edge bench``: latency and throughput per stage and end to end (JSON + PNG chart)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from rich.text import Text

from spot_edge.cli.common import (CliApp, CliError, check_range, console, note, optional_user_path, print_json,
                                  print_table, user_path)
from spot_edge.cli.model_options import model_from_options

app = CliApp(help="Latency and throughput benchmark.")


def parse_frame_size(text: str) -> tuple[int, int]:
    """``"480x640"`` -> ``(480, 640)`` (height x width, each at least 16)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CliError(f"--frame must look like 480x640 (height x width), got {text!r}") from None
    check_range("--frame height", h, 16)
    check_range("--frame width", w, 16)
    return h, w


@app.command("bench")
def bench(
    preset_name: str = typer.Option("spot", "--preset", "-p", help="Model preset with random weights (timing "
                                    "does not depend on them); 'spot' is the paper's 288x144 ResNet-50 model."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="A SpotConfig YAML/JSON file instead "
                                          "of a preset."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="A spot-edge checkpoint (its config is "
                                              "used)."),
    batch: List[int] = typer.Option([1, 8], "--batch", "-b", help="Batch size; repeat for several."),
    iters: int = typer.Option(50, help="Timed iterations per measurement."),
    warmup: int = typer.Option(5, help="Untimed warm-up iterations before each measurement."),
    backend: List[str] = typer.Option(["pytorch"], "--backend", help="pytorch, pytorch-embedder, onnxruntime "
                                      "or tensorrt; repeat for several."),
    precision: List[str] = typer.Option(["fp32"], "--precision", help="fp32 or fp16 (PyTorch fp16 needs CUDA); "
                                        "repeat for several."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    cuda_graphs: bool = typer.Option(True, "--cuda-graphs/--no-cuda-graphs", help="Replay a CUDA graph of the "
                                     "PyTorch forward (CUDA only)."),
    kernels: str = typer.Option("auto", help="SPOT's fused kernels for the PyTorch backend: auto, reference, "
                                "triton or cuda."),
    modality: str = typer.Option("infrared", help="visible or infrared: the stem the crops go through."),
    stage: List[str] = typer.Option([], "--stage", help="Stages to time (default: preprocess, embed, search, "
                                    "end_to_end; pose needs --pose-weights or --pose-random)."),
    gallery_size: int = typer.Option(1000, help="Entries in the gallery for the search stage."),
    top_k: int = typer.Option(5, help="Results per query in the search stage."),
    source: Optional[Path] = typer.Option(None, help="ONNX file, TensorRT engine or bundle (spot-edge export) "
                                          "for the other backends; a bundle also gives the model's configuration "
                                          "and the pose stage."),
    pose_weights: Optional[Path] = typer.Option(None, help="OpenPose weights, pose graph, engine or bundle: adds "
                                                "the pose stage."),
    pose_random: bool = typer.Option(False, help="Time the pose network with random weights (timing only)."),
    pose_config: str = typer.Option("openpose_coco", help="Pose network configuration (e.g. "
                                    "openpose_coco_lite)."),
    frame: str = typer.Option("480x640", help="Frame size for the pose stage, HEIGHTxWIDTH."),
    threads: Optional[int] = typer.Option(None, help="PyTorch CPU threads (default: PyTorch's choice)."),
    out: Path = typer.Option(Path("bench-results"), "--out", "-o", help="Folder for bench.json and bench.png."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    markdown: bool = typer.Option(False, "--markdown", help="Also print a Markdown table (for the README)."),
) -> None:
    """Latency (median, p90, p99) and throughput per stage, backend, precision and batch size.

    Warm-up iterations are excluded. On a GPU, CUDA events time each call and the PyTorch backend
    can replay a CUDA graph. Writes <out>/bench.json and <out>/bench.png.

    With a bundle as --source (spot-edge export), the embed stages of the
    onnxruntime / tensorrt backends run its graphs or engines, the model's
    configuration is the bundle's, and the pose stage runs its pose network.

    Examples:
      spot-edge bench --preset spot-small --batch 1 --batch 8 --iters 20
      spot-edge bench --preset spot --device cuda --precision fp16 -b 1 -b 64
      spot-edge bench --backend onnxruntime --backend pytorch --threads 2
      spot-edge bench --backend onnxruntime --source bundle/ --frame 368x656
    """
    from spot_edge.latency import DEFAULT_STAGES, BenchSettings, markdown_table, run_benchmark, write_report

    for value in batch:
        check_range("--batch", value, 1)
    check_range("--iters", iters, 1)
    check_range("--warmup", warmup, 0)
    check_range("--gallery-size", gallery_size, 1)
    check_range("--top-k", top_k, 1)
    check_range("--threads", threads, 1)
    config, checkpoint = optional_user_path(config), optional_user_path(checkpoint)
    source, pose_weights, out = optional_user_path(source), optional_user_path(pose_weights), user_path(out)
    bundle = _bundle_of(source, config, checkpoint)
    if bundle is not None and pose_weights is None and not pose_random:
        pose_weights = source  # the pose stage runs the bundle's pose network
    settings = BenchSettings(
        batch_sizes=tuple(batch), iters=iters, warmup=warmup, backends=tuple(backend),
        precisions=tuple(precision), device=device, cuda_graphs=cuda_graphs, kernels=kernels, modality=modality,
        stages=tuple(stage) if stage else DEFAULT_STAGES + (("pose",) if (pose_weights or pose_random) else ()),
        gallery_size=gallery_size, top_k=top_k, source=str(source) if source else None,
        pose_weights=str(pose_weights) if pose_weights else None, pose_random=pose_random,
        pose_config=pose_config, frame_size=parse_frame_size(frame), threads=threads)
    settings.validate()
    for option, path in (("--source", source), ("--pose-weights", pose_weights), ("--config", config),
                         ("--checkpoint", checkpoint)):
        if path is not None and not (path.is_file() or (option != "--config" and path.is_dir())):
            raise FileNotFoundError(f"{option} {path} does not exist")
    if bundle is not None:
        from spot_edge.model import SPOT

        note(f"timing the bundle's model configuration ({bundle.spot['config_fingerprint']}); the pytorch "
             "backend runs it with random weights")
        model = SPOT(bundle.spot_config)
    else:
        model = model_from_options(preset_name, config, checkpoint)
    with console.status("benchmarking...") as status:
        report = run_benchmark(model, settings, progress=lambda m: status.update(f"benchmarking: {m}"))
    json_path, png_path = write_report(report, out)
    if as_json:
        print_json(report)
    else:
        _show_report(report)
        console.print(f"wrote {json_path} and {png_path}")
    if markdown:
        console.print(markdown_table(report), soft_wrap=True)


def _bundle_of(source: Optional[Path], config: Optional[Path], checkpoint: Optional[Path]):
    """The bundle ``--source`` names (its manifest read, files verified when a backend loads them),
    or None for any other source."""
    from spot_edge.engines.bundle import is_bundle, read_manifest

    if source is None or not is_bundle(source):
        return None
    if config is not None or checkpoint is not None:
        raise CliError("a bundle as --source defines the model: give neither --config nor --checkpoint")
    from spot_edge.engines.bundle import load_bundle

    read_manifest(source)  # one clear line for a folder without a valid manifest
    return load_bundle(source, verify=False)


def _show_report(report: dict) -> None:
    m = report["machine"]
    where = m.get("gpu") or m.get("processor") or "cpu"
    size = "x".join(map(str, report["model"]["input_size"]))
    table = Table("stage", "backend", "precision", "batch", "median ms", "p90 ms", "p99 ms", "items/s",
                  title=f"{report['model']['backbone']} {size} on {where} ({m['device']}, "
                        f"{m['torch_threads']} threads)", title_justify="left")
    for r in report["results"]:
        lat = r["latency_ms"]
        name = r["backend"] + (" + CUDA graphs" if r.get("cuda_graphs") else "")
        table.add_row(r["stage"], name, r["precision"], str(r["batch"]), f"{lat['median']:.3f}",
                      f"{lat['p90']:.3f}", f"{lat['p99']:.3f}", f"{r['throughput_per_s']:,.0f}")
    print_table(table)
    for s in report["skipped"]:
        what = " ".join(str(s[k]) for k in ("stage", "backend", "precision", "batch") if k in s)
        console.print(Text.assemble(("skipped", "yellow"), f" {what}: {s['reason']}"), soft_wrap=True)
    for t in report["targets"]:
        if t["met"] is None:
            state = ("not measured", "dim")
        else:
            state = ("met", "green") if t["met"] else ("missed", "red")
        measured = f", measured {t['measured']}" if t["measured"] is not None else ""
        console.print(Text.assemble(f"target: {t['target']} ({t['configuration']}): ", state, measured),
                      soft_wrap=True)


__all__ = ["app", "bench", "parse_frame_size"]
