"""``spot-edge run``: the real-time visible/infrared camera pipeline."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from spot_edge.cli.common import CliApp, CliError, console, friendly_errors, print_json
from spot_edge.cli.embedding_inputs import load_embedder

app = CliApp(help="Real-time matching between a visible and an infrared camera.")


def _configure_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logger = logging.getLogger("spot_edge.pipeline")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=console, show_path=False, show_time=True))
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False

# ----------------------------------------------------------------------------- spot-edge run


def _status_table(pipe, started: float) -> Table:
    table = Table(title=f"spot-edge run  ({time.perf_counter() - started:.0f}s, Ctrl-C to stop)")
    for col in ("source", "status", "read", "processed", "dropped", "people", "matches", "reconnects"):
        table.add_column(col, justify="left" if col in ("source", "status") else "right")
    for inp in pipe.inputs:
        c = pipe.counters.get(inp.name)
        table.add_row(inp.name if inp.name == inp.modality else f"{inp.name} ({inp.modality})", c.status, str(c.frames_read), str(c.frames_processed),
                      str(c.frames_dropped), str(c.people), str(c.matches), str(c.reconnects))
    return table


@app.command("run")
def run(
    visible: Optional[str] = typer.Option(None, "--visible", help="Visible source: video file, image folder, "
                                          "USB camera index (0), Jetson CSI camera (csi://0?width=1280&height=720"
                                          "&fps=30), RTSP URL or GStreamer pipeline ('... ! appsink')."),
    infrared: Optional[str] = typer.Option(None, "--infrared", help="Infrared source (same kinds as --visible)."),
    model: str = typer.Option("", "--model", "-m", help="SPOT model: checkpoint, ONNX export (file/prefix/dir) or "
                              "TensorRT engine(s)."),
    backend: str = typer.Option("auto", help="auto, pytorch, onnxruntime, tensorrt."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
    pose_weights: Optional[Path] = typer.Option(None, "--pose-weights", help="OpenPose COCO body weights "
                                                "(body_pose_model.pth or pose_iter_440000.caffemodel)."),
    visible_keypoints: Optional[Path] = typer.Option(None, "--visible-keypoints", help="Keypoints of the visible "
                                                     "source from another detector (JSON lines per frame)."),
    infrared_keypoints: Optional[Path] = typer.Option(None, "--infrared-keypoints", help="Same for infrared."),
    pose_height: int = typer.Option(368, help="Frames are downscaled to this height for the OpenPose network."),
    gallery: Optional[Path] = typer.Option(None, "--gallery", "-g", help="Gallery directory to match against "
                                           "(created if missing)."),
    observe: bool = typer.Option(True, "--observe/--no-observe", help="Add what is seen to the gallery (needs "
                                 "--gallery), so each camera's people are found by the other."),
    threshold: Optional[float] = typer.Option(None, help="Similarity needed for a match (default: the gallery's "
                                              "calibrated threshold, else 0.5)."),
    top_k: int = typer.Option(5, "--top-k", help="Gallery entries reported per person."),
    batch: int = typer.Option(32, help="Most person crops per embedder call."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default runs/run-<time>)."),
    video: bool = typer.Option(True, "--video/--no-video", help="Write annotated_<source>.avi."),
    frames_every: int = typer.Option(0, help="Also write every n-th annotated frame as PNG (0: never)."),
    only_matches: bool = typer.Option(False, help="Write events only for matched people."),
    realtime: bool = typer.Option(False, help="Play files at their frame rate, dropping frames when behind "
                                  "(as with a camera); default: process every frame of a file."),
    max_seconds: Optional[float] = typer.Option(None, help="Stop after this many seconds."),
    max_frames: Optional[int] = typer.Option(None, help="Stop each source after this many frames."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live status table."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
) -> None:
    """Match people between a visible and an infrared camera in real time.

    Per frame: pose on the full frame, people, crops of image and pose maps, SPOT embeddings
    (batched), search of the other modality's gallery entries, JSON-lines events. Frames are
    dropped (and counted) when the pipeline is behind; dropped cameras are reconnected with
    back-off; Ctrl-C stops cleanly and saves the gallery. Writes events.jsonl, annotated videos
    and stats.json (per-stage latency p50/p90/p99) into --out.

    Examples:

      spot-edge run --visible 0 --infrared "rtsp://cam-ir/stream" -m exports/spot --pose-weights body_pose_model.pth -g gallery/

      spot-edge run --visible vis.avi --visible-keypoints vis.jsonl --infrared ir.avi --infrared-keypoints ir.jsonl -m spot.onnx -g gallery/ -o runs/demo
    """
    from rich.live import Live

    from spot_edge.gallery import Gallery
    from spot_edge.pipeline import Pipeline, PipelineConfig, build_inputs

    with friendly_errors():
        _configure_logging(verbose=False)
        with console.status("opening the sources..."):
            inputs = build_inputs(visible, infrared, visible_keypoints, infrared_keypoints, pose_weights,
                                  pose_height=pose_height,
                                  pose_device=device if device.startswith(("cpu", "cuda")) else "auto")
        with console.status("loading the SPOT model..."):
            embedder = load_embedder(model, backend, device, batch)
        g = Gallery.open(gallery, embedding_dim=embedder.embedding_dim) if gallery is not None else None
        out_dir = out or Path("runs") / time.strftime("run-%Y%m%d-%H%M%S")
        config = PipelineConfig(top_k=top_k, threshold=threshold, max_batch=batch, realtime=realtime,
                                observe=observe and g is not None, write_video=video, frames_every=frames_every,
                                only_matches=only_matches, max_seconds=max_seconds, max_frames=max_frames)
        pipe = Pipeline(inputs, embedder, g, config, output_dir=out_dir)
        if g is not None and g.threshold is None and threshold is None:
            console.print("[yellow]the gallery has no calibrated threshold; using 0.5 "
                          "(calibrate with `spot-edge gallery calibrate`)[/]")
        started = time.perf_counter()
        if quiet or as_json:
            summary = pipe.run()
        else:
            import threading

            # run() installs the signal handlers; the live table refreshes from a helper thread.
            done = threading.Event()

            def refresh(live):
                while not done.wait(0.5):
                    live.update(_status_table(pipe, started))

            with Live(_status_table(pipe, started), console=console, auto_refresh=False) as live:
                t = threading.Thread(target=refresh, args=(live,), daemon=True)
                t.start()
                try:
                    summary = pipe.run()
                finally:
                    done.set()
                    t.join()
                    live.update(_status_table(pipe, started), refresh=True)
            console.print()
        if as_json:
            print_json(summary.to_dict())
        else:
            console.print(pipe.stats.table())
            console.print(f"{summary.events} events -> {summary.outputs.get('events')}; statistics -> "
                          f"{summary.outputs.get('stats')}" + (f"; gallery: {summary.gallery_entries} entries "
                                                              f"({'saved' if summary.gallery_saved else 'unchanged'})"
                                                              if g is not None else ""))
            if summary.interrupted:
                console.print("interrupted: shut down cleanly")
        if summary.errors:  # a source that failed for good, a gallery that could not be saved...
            raise CliError("; ".join(summary.errors), code=1)


__all__ = ["app", "run"]
