"""``spot-edge bench``: latency and throughput per stage and end to end (JSON + PNG chart).

Wire into the main app with ``app.command("bench")(bench.bench)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from spot_edge.cli.common import CliApp, CliError, console, friendly_errors, print_json


def _parse_hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CliError(f"--frame must look like 480x640 (height x width), got {text!r}") from None
    if h < 16 or w < 16:
        raise CliError(f"--frame {text} is too small")
    return h, w


def load_model(preset_name: str, config: Optional[Path], checkpoint: Optional[Path]):
    """A SPOT model from a checkpoint, a config file or a preset (random weights: fine for timing)."""
    from spot_edge.model import SPOT, SpotConfig, load_checkpoint, preset

    if checkpoint is not None:
        return load_checkpoint(checkpoint)
    return SPOT(SpotConfig.load(config) if config else preset(preset_name))


def bench(
    preset_name: str = typer.Option("spot", "--preset", "-p", help="Model preset (random weights; timing does not "
                                    "depend on them). 'spot' is the paper's 288x144 ResNet-50 model."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="A SpotConfig YAML/JSON file instead of a preset."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint",
                                              help="A spot-edge checkpoint (its config is used)."),
    batch: List[int] = typer.Option([1, 8], "--batch", "-b", help="Batch size; repeat for several."),
    iters: int = typer.Option(50, help="Timed iterations per measurement."),
    warmup: int = typer.Option(5, help="Untimed warm-up iterations before each measurement."),
    backend: List[str] = typer.Option(["pytorch"], "--backend",
                                      help="pytorch, pytorch-embedder, onnxruntime or tensorrt; repeat for "
                                      "several (all but pytorch go through spot_edge.backends)."),
    precision: List[str] = typer.Option(["fp32"], "--precision", help="fp32 or fp16 (PyTorch fp16 needs CUDA); "
                                        "repeat for several."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    cuda_graphs: bool = typer.Option(True, "--cuda-graphs/--no-cuda-graphs", help="Replay a CUDA graph of the "
                                     "PyTorch forward (CUDA only)."),
    kernels: str = typer.Option("auto", help="SPOT's fused kernels for the PyTorch backend: auto, reference, "
                                "triton or cuda."),
    modality: str = typer.Option("infrared", help="visible or infrared: the stem the crops go through."),
    stage: List[str] = typer.Option([], "--stage", help="Stages to time (default: preprocess, embed, search, "
                                    "end_to_end; 'pose' needs --pose-weights or --pose-random)."),
    gallery_size: int = typer.Option(1000, help="Entries in the gallery for the search stage."),
    top_k: int = typer.Option(5, help="Results per query in the search stage."),
    source: Optional[Path] = typer.Option(None, help="ONNX file or TensorRT engine for the non-PyTorch backends."),
    pose_weights: Optional[Path] = typer.Option(None, help="OpenPose weights: adds the pose stage."),
    pose_random: bool = typer.Option(False, help="Time the pose network with random weights (timing only)."),
    pose_config: str = typer.Option("openpose_coco", help="Pose network configuration (e.g. openpose_coco_lite)."),
    frame: str = typer.Option("480x640", help="Frame size for the pose stage, HEIGHTxWIDTH."),
    threads: Optional[int] = typer.Option(None, help="PyTorch CPU threads (default: PyTorch's choice)."),
    out: Path = typer.Option(Path("bench-results"), "--out", "-o", help="Folder for bench.json and bench.png."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    markdown: bool = typer.Option(False, "--markdown", help="Also print a Markdown table (for the README)."),
) -> None:
    """Latency (median, p90, p99) and throughput per stage, backend, precision and batch size.

    Warm-up iterations are excluded. On a GPU, CUDA events time each call and the PyTorch
    backend can replay a CUDA graph. Writes <out>/bench.json and <out>/bench.png.

    Examples:
      spot-edge bench --preset spot-small --batch 1 --batch 8 --iters 20
      spot-edge bench --preset spot --device cuda --precision fp16 --batch 1 --batch 64
      spot-edge bench --backend onnxruntime --backend pytorch --threads 2
    """
    from spot_edge.latency import DEFAULT_STAGES, BenchSettings, markdown_table, run_benchmark, write_report

    with friendly_errors():
        settings = BenchSettings(
            batch_sizes=tuple(batch), iters=iters, warmup=warmup, backends=tuple(backend),
            precisions=tuple(precision), device=device, cuda_graphs=cuda_graphs, kernels=kernels,
            modality=modality,
            stages=tuple(stage) if stage else DEFAULT_STAGES + (("pose",) if (pose_weights or pose_random) else ()),
            gallery_size=gallery_size, top_k=top_k, source=str(source) if source else None,
            pose_weights=str(pose_weights) if pose_weights else None, pose_random=pose_random,
            pose_config=pose_config, frame_size=_parse_hw(frame), threads=threads)
        settings.validate()
        if source is not None and not source.is_file():
            raise FileNotFoundError(f"--source {source} does not exist")
        model = load_model(preset_name, config, checkpoint)
        with console.status("benchmarking...") as status:
            report = run_benchmark(model, settings, progress=lambda m: status.update(f"benchmarking: {m}"))
        json_path, png_path = write_report(report, out)
    if as_json:
        print_json(report)
    else:
        _print_table(report)
        console.print(f"wrote {json_path} and {png_path}")
    if markdown:
        console.print(markdown_table(report), markup=False, highlight=False)


def _print_table(report: dict) -> None:
    m = report["machine"]
    where = m.get("gpu") or m.get("processor") or "cpu"
    table = Table("stage", "backend", "precision", "batch", "median ms", "p90 ms", "p99 ms", "items/s",
                  title=f"{report['model']['backbone']} {'x'.join(map(str, report['model']['input_size']))} "
                        f"on {where} ({m['device']}, {m['torch_threads']} threads)", title_justify="left")
    for r in report["results"]:
        lat = r["latency_ms"]
        name = r["backend"] + (" + CUDA graphs" if r.get("cuda_graphs") else "")
        table.add_row(r["stage"], name, r["precision"], str(r["batch"]), f"{lat['median']:.3f}",
                      f"{lat['p90']:.3f}", f"{lat['p99']:.3f}", f"{r['throughput_per_s']:,.0f}")
    console.print(table)
    for s in report["skipped"]:
        what = " ".join(str(s[k]) for k in ("stage", "backend", "precision", "batch") if k in s)
        console.print(f"[yellow]skipped[/] {what}: {s['reason']}", highlight=False)
    for t in report["targets"]:
        state = ("[green]met[/]" if t["met"] else "[red]missed[/]") if t["met"] is not None else "[dim]not measured[/]"
        console.print(f"target: {t['target']} ({t['configuration']}): {state}"
                      + (f", measured {t['measured']}" if t["measured"] is not None else ""), highlight=False)


app = CliApp(help="Latency and throughput benchmark.")
app.command("bench")(bench)

__all__ = ["bench", "app", "load_model"]
