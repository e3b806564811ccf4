"""``spot-edge demo``: the whole product on the embedded default (CPU, no downloads)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from spot_edge.cli.common import CliApp, check_range, console, user_path, warn
from spot_edge.demo.run import DemoConfig

app = CliApp(help="The end-to-end demo on synthetic data.")


@app.command("demo")
def demo(
    out_dir: Path = typer.Option(Path(DemoConfig.out_dir), "--out", "-o", help="Results folder."),
    epochs: int = typer.Option(DemoConfig.epochs, help="Training epochs of SPOT-small."),
    batches_per_epoch: int = typer.Option(DemoConfig.batches_per_epoch, help="Identity-sampler batches per epoch."),
    num_train: int = typer.Option(DemoConfig.num_train, help="Synthetic training identities (at least 8)."),
    num_test: int = typer.Option(DemoConfig.num_test, help="Synthetic test identities (at least 2)."),
    video_frames: int = typer.Option(DemoConfig.video_frames, help="Frames of each generated video."),
    preset: str = typer.Option(DemoConfig.preset, help="Model preset (a '-small' one for CPUs)."),
    seed: int = typer.Option(DemoConfig.seed, help="Seed of data generation and training."),
) -> None:
    """Train, evaluate, export and run SPOT end to end on generated data (under 10 min on 2 cores).

    Generates a synthetic visible/infrared set, trains SPOT-small, evaluates it with the
    community protocol, exports fp32 and int8 ONNX graphs and compares them with the PyTorch
    model on the protocol, runs the camera pipeline on the int8 graphs (ONNX Runtime) on a
    generated visible/infrared video pair, and draws pictures. Rerunning with the same --out
    reuses the data and resumes the training.

    Examples:
      spot-edge demo
      spot-edge demo --out /tmp/demo --epochs 2 --batches-per-epoch 5
    """
    from spot_edge.demo.run import DemoRunner

    check_range("--epochs", epochs, 1)
    check_range("--batches-per-epoch", batches_per_epoch, 1)
    check_range("--num-train", num_train, 8)   # the identity sampler draws 8 identities per batch
    check_range("--num-test", num_test, 2)
    check_range("--video-frames", video_frames, 1)
    out_dir = user_path(out_dir)
    config = DemoConfig(out_dir=str(out_dir), preset=preset, num_train=num_train, num_test=num_test,
                        epochs=epochs, batches_per_epoch=batches_per_epoch, video_frames=video_frames, seed=seed)
    report = lambda step, msg: console.print(Text.assemble((step, "bold"), f": {msg}"), soft_wrap=True)  # noqa: E731
    summary = DemoRunner(config, report=report).run()
    console.print((out_dir / "metrics.md").read_text(), soft_wrap=True)
    for line in summary["parity"]["warnings"]:
        warn(line)
    console.print(f"results in {out_dir}/ (summary.json, metrics.md, pipeline/, pictures/), "
                  f"total {summary['total_s']:.0f} s", soft_wrap=True)


__all__ = ["app", "demo"]
