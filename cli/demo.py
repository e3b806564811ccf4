"""``spot-edge demo``: the whole product on the embedded default (CPU, no downloads)."""

from __future__ import annotations

from pathlib import Path

import typer

from spot_edge.cli.common import CliApp, console, friendly_errors

app = CliApp()


@app.command("demo")
def demo(
    out_dir: Path = typer.Option(Path("spot-edge-demo"), "--out", "-o", help="Results folder."),
    epochs: int = typer.Option(12, help="Training epochs of SPOT-small."),
    batches_per_epoch: int = typer.Option(30, help="Identity-sampler batches per epoch."),
    num_train: int = typer.Option(96, help="Synthetic training identities."),
    num_test: int = typer.Option(32, help="Synthetic test identities."),
    video_frames: int = typer.Option(48, help="Frames of each generated video."),
    preset: str = typer.Option("spot-small", help="Model preset (a '-small' one for CPUs)."),
    seed: int = typer.Option(0, help="Seed of data generation and training."),
) -> None:
    """Generate data, train SPOT-small, evaluate, export ONNX, run the camera pipeline on a
    generated visible/infrared video pair, and draw pictures. About 10 minutes on 2 CPU cores.

    Example: spot-edge demo --out spot-edge-demo
    """
    from spot_edge.demo.run import DemoConfig, DemoRunner

    config = DemoConfig(out_dir=str(out_dir), preset=preset, num_train=num_train, num_test=num_test,
                        epochs=epochs, batches_per_epoch=batches_per_epoch, video_frames=video_frames, seed=seed)
    with friendly_errors():
        summary = DemoRunner(config, report=lambda step, msg: console.print(f"[bold]{step}[/]: {msg}")).run()
    console.print((out_dir / "metrics.md").read_text())
    for source, score in summary["videos"]["matching"].items():
        console.print(f"pipeline, {source} camera: top-1 identity accuracy {score['top1_accuracy']} "
                      f"over {score['people_scored']} people-frames")
    console.print(f"results in {out_dir}/ (summary.json, metrics.md, pipeline/, pictures/), "
                  f"total {summary['total_s']:.0f} s")
