"""``spot-edge run``: the real-time visible/infrared camera pipeline."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from spot_edge.cli.common import (
    CliApp,
    CliError,
    check_range,
    console,
    note,
    optional_user_path,
    print_json,
    user_path,
    warn,
)
from spot_edge.cli.embedding_inputs import load_embedder
from spot_edge.pipeline.config import DEFAULT_RECONNECT_TIMEOUT
from spot_edge.pipeline.sources import DEFAULT_STREAM_TIMEOUT, source_kind
from spot_edge.service.hooks import DEFAULT_HEALTH_GRACE, DEFAULT_PUBLISH_BUFFER, ServiceHooks

app = CliApp(help="Real-time matching between a visible and an infrared camera.")

#: Exit code of a run that ended with errors in its summary (a source failed or never came).
EXIT_RUN_FAILED = 1
BACKENDS = ("auto", "pytorch", "onnxruntime", "tensorrt")
POSE_CONFIGS = ("openpose_coco", "openpose_coco_lite")


def _configure_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logger = logging.getLogger("spot_edge.pipeline")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=console, show_path=False, show_time=True, markup=False))
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False


def _source_spec(spec: Optional[str]) -> Optional[str]:
    """A source as the user typed it: a path (video file, image folder) resolved against the
    working directory; camera indices, URLs and pipelines unchanged."""
    if spec is None or not spec.strip() or source_kind(spec) != "file" or "://" in spec:
        return spec
    return str(user_path(spec))


def _status_table(pipe, started: float) -> Table:
    table = Table(title=f"spot-edge run  ({time.perf_counter() - started:.0f}s, Ctrl-C to stop)")
    for col in ("source", "status", "read", "processed", "dropped", "people", "matches", "reconnects"):
        table.add_column(col, justify="left" if col in ("source", "status") else "right")
    for inp in pipe.inputs:
        c = pipe.counters.get(inp.name)
        label = inp.name if inp.name == inp.modality else f"{inp.name} ({inp.modality})"
        table.add_row(label, c.status, str(c.frames_read), str(c.frames_processed), str(c.frames_dropped),
                      str(c.people), str(c.matches), str(c.reconnects))
    return table


def _run_with_live_table(pipe):
    import threading

    from rich.live import Live

    # run() installs the signal handlers; the live table refreshes from a helper thread.
    started = time.perf_counter()
    done = threading.Event()

    def refresh(live):
        while not done.wait(0.5):
            live.update(_status_table(pipe, started))

    with Live(_status_table(pipe, started), console=console, auto_refresh=False) as live:
        t = threading.Thread(target=refresh, args=(live,), daemon=True)
        t.start()
        try:
            return pipe.run()
        finally:
            done.set()
            t.join()
            live.update(_status_table(pipe, started), refresh=True)


@app.command("run")
def run(
    visible: Optional[str] = typer.Option(
        None, "--visible", help="Visible source: video file, image folder, camera index (0), "
        "csi://0?width=1280&height=720&fps=30 (Jetson), rtsp:// URL or GStreamer pipeline."),
    infrared: Optional[str] = typer.Option(None, "--infrared", help="Infrared source (same kinds)."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="SPOT model: checkpoint, ONNX export (file, prefix or folder), "
        "TensorRT engine(s), or a bundle (spot-edge export: also the pose network)."),
    backend: str = typer.Option("auto", help="auto, pytorch, onnxruntime or tensorrt."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    pose_weights: Optional[Path] = typer.Option(
        None, "--pose-weights", help="OpenPose: COCO body weights (body_pose_model.pth, "
        "pose_iter_440000.caffemodel), a pose graph (.onnx), an engine or a bundle (default: the "
        "--model bundle's)."),
    pose_backend: str = typer.Option("auto", help="OpenPose backend: auto, pytorch, onnxruntime or tensorrt."),
    pose_config: str = typer.Option("openpose_coco", help="Network of --pose-weights: openpose_coco or "
                                    "openpose_coco_lite."),
    visible_keypoints: Optional[Path] = typer.Option(
        None, "--visible-keypoints", help="Keypoints of the visible source from another detector "
        "(JSON lines, one per frame)."),
    infrared_keypoints: Optional[Path] = typer.Option(None, "--infrared-keypoints",
                                                      help="Same for infrared."),
    pose_height: int = typer.Option(368, help="Frame height for the OpenPose network."),
    gallery: Optional[Path] = typer.Option(None, "--gallery", "-g",
                                           help="Gallery folder to match against (created if missing)."),
    observe: bool = typer.Option(True, "--observe/--no-observe",
                                 help="Add the people seen to the gallery (needs --gallery)."),
    threshold: Optional[float] = typer.Option(
        None, help="Similarity for a match, -1 to 1 (default: the gallery's calibrated threshold, "
        "else 0.5)."),
    top_k: int = typer.Option(5, "--top-k", help="Gallery entries reported per person."),
    batch: int = typer.Option(32, help="Most person crops per embedder call."),
    reconnect_timeout: float = typer.Option(
        DEFAULT_RECONNECT_TIMEOUT, "--reconnect-timeout", metavar="SECONDS",
        help="Give up a camera or stream that delivers no frame for this long, from the start or "
        "from a drop (inf: keep trying)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default runs/run-<time>)."),
    video: bool = typer.Option(True, "--video/--no-video", help="Write annotated_<source>.avi."),
    frames_every: int = typer.Option(0, help="Also write every n-th annotated frame as PNG (0: never)."),
    only_matches: bool = typer.Option(False, help="Write events only for matched people."),
    realtime: bool = typer.Option(False, help="Play files at their frame rate, dropping frames when "
                                  "behind, as a camera would (default: every frame)."),
    max_seconds: Optional[float] = typer.Option(None, help="Stop after this many seconds."),
    max_frames: Optional[int] = typer.Option(None, help="Stop each source after this many frames."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live status table."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON on stdout."),
    metrics_port: Optional[int] = typer.Option(
        None, "--metrics-port", metavar="PORT", help="Serve Prometheus /metrics and /healthz on this port."),
    metrics_host: Optional[str] = typer.Option(
        None, "--metrics-host", metavar="ADDRESS", help="Address for --metrics-port (default 127.0.0.1; "
        "0.0.0.0: every interface)."),
    health_grace: Optional[float] = typer.Option(
        None, "--health-grace", metavar="SECONDS", help="/healthz turns unhealthy (503) when a camera is "
        f"down this long (default {DEFAULT_HEALTH_GRACE:g})."),
    events_max_bytes: Optional[str] = typer.Option(
        None, "--events-max-bytes", metavar="SIZE", help="Rotate events.jsonl before this size (e.g. 50M)."),
    events_rotate_seconds: Optional[float] = typer.Option(
        None, "--events-rotate-seconds", metavar="SECONDS", help="Rotate events.jsonl after this long "
        "(86400: daily)."),
    events_keep: int = typer.Option(5, "--events-keep", help="Rotated events files kept (events.1.jsonl newest)."),
    publish: Optional[str] = typer.Option(
        None, "--publish", metavar="URL", help="Also publish each event to an MQTT broker: "
        "mqtt://host:1883/topic (?qos=0|1|2)."),
    publish_buffer: int = typer.Option(
        DEFAULT_PUBLISH_BUFFER, "--publish-buffer", help="Events kept while the broker is away (the oldest "
        "are dropped beyond)."),
) -> None:
    """Match people between a visible and an infrared camera in real time.

    Per frame: pose on the full frame, person crops of image and pose maps,
    SPOT embeddings (batched), search of the other modality's gallery
    entries, JSON-lines events. Frames are dropped (and counted) when the
    pipeline is behind. A camera or stream that drops is reopened with
    back-off; one that never opens, or stays down for --reconnect-timeout
    seconds, is given up and reported. Ctrl-C stops cleanly and saves the
    gallery. Writes events.jsonl, annotated videos and stats.json
    (per-stage latency p50/p90/p99) into --out.

    With a bundle as the model (-m DIR, from spot-edge export) both networks
    come from it, verified first: SPOT and OpenPose on their TensorRT engines
    where the bundle has them and TensorRT is installed, else their graphs on
    ONNX Runtime; --pose-weights is then not needed.

    As a service (see spot-edge service install): --metrics-port serves
    Prometheus metrics at /metrics and a health check at /healthz (503
    when a camera is down longer than --health-grace or was given up);
    --events-max-bytes / --events-rotate-seconds rotate events.jsonl;
    --publish sends every event to an MQTT broker from a bounded buffer,
    so a broker outage never stalls the pipeline.

    Exit codes: 0 the run ended (sources finished, time limit, Ctrl-C);
    1 the run ended with errors (a source failed or was given up, an
    output could not be written: see the summary); 2 bad usage or input.

    Examples:

      spot-edge run --visible 0 --infrared 1 -m spot.onnx --pose-weights op.pth

      spot-edge run --visible v.avi --infrared ir.avi -m bundle/ -g gallery/

      spot-edge run --infrared rtsp://cam/ir -m spot.onnx -g gallery/ -q

      spot-edge run --visible v.avi --visible-keypoints v.jsonl -m spot.onnx

      spot-edge run --visible 0 -m spot.onnx -g gal/ --reconnect-timeout 60

      spot-edge run --visible 0 -m spot.onnx -q --metrics-port 9400

      spot-edge run --infrared 1 -m spot.onnx --publish mqtt://broker/spot
    """
    from spot_edge.engines.bundle import is_bundle, load_bundle
    from spot_edge.gallery import Gallery
    from spot_edge.device import resolve_device
    from spot_edge.pipeline import Pipeline, PipelineConfig, build_inputs

    for option, value in (("--backend", backend), ("--pose-backend", pose_backend)):
        if value not in BACKENDS:
            raise CliError(f"{option} must be one of {', '.join(BACKENDS)}, got {value!r}")
    if pose_config not in POSE_CONFIGS:
        raise CliError(f"--pose-config must be one of {', '.join(POSE_CONFIGS)}, got {pose_config!r}")
    check_range("--top-k", top_k, 1)
    check_range("--batch", batch, 1)
    check_range("--pose-height", pose_height, 32)
    check_range("--threshold", threshold, -1.0, 1.0)
    check_range("--reconnect-timeout", reconnect_timeout, 0.1)
    check_range("--frames-every", frames_every, 0)
    check_range("--max-seconds", max_seconds, 0.1)
    check_range("--max-frames", max_frames, 1)
    resolve_device(device)  # an unknown or absent device is refused before any file is read
    service = _service_options(metrics_port, metrics_host, health_grace, events_max_bytes, events_rotate_seconds,
                               events_keep, publish, publish_buffer)
    config = PipelineConfig(top_k=top_k, threshold=threshold, max_batch=batch, realtime=realtime,
                            write_video=video, frames_every=frames_every, only_matches=only_matches,
                            reconnect_timeout=reconnect_timeout, max_seconds=max_seconds, max_frames=max_frames,
                            events_max_bytes=service["events_max_bytes"], events_keep=events_keep,
                            events_rotate_seconds=events_rotate_seconds)
    gallery_dir, out_dir = optional_user_path(gallery), optional_user_path(out)
    out_dir = out_dir or user_path(Path("runs") / time.strftime("run-%Y%m%d-%H%M%S"))

    bundle = None
    if model and is_bundle(user_path(model)):
        with console.status("verifying the bundle..."):
            bundle = load_bundle(user_path(model))  # every file's SHA-256, before anything runs

    _configure_logging(verbose=False)
    with ServiceHooks(**service["hooks"]) as hooks:  # binds --metrics-port now: a busy port fails early
        with console.status("opening the sources..."):
            inputs = build_inputs(_source_spec(visible), _source_spec(infrared),
                                  optional_user_path(visible_keypoints), optional_user_path(infrared_keypoints),
                                  optional_user_path(pose_weights) or bundle, pose_height=pose_height,
                                  pose_device=device, stream_timeout=min(reconnect_timeout, DEFAULT_STREAM_TIMEOUT),
                                  pose_backend=pose_backend, pose_config=pose_config)
        with console.status("loading the SPOT model..."):
            embedder = load_embedder(bundle or model or "", backend, device, batch)  # resolves a path it is given
        g = Gallery.open(gallery_dir, model=embedder) if gallery_dir is not None else None
        config.observe = observe and g is not None
        pipe = Pipeline(inputs, embedder, g, config, output_dir=out_dir, event_sinks=hooks.event_sinks)
        if g is not None and g.threshold is None and threshold is None:
            warn("the gallery has no calibrated threshold; using 0.5 (calibrate with `spot-edge gallery "
                 "calibrate`)")
        hooks.watch(pipe)
        if hooks.server is not None:
            note(f"metrics: {hooks.server.url}/metrics, health: {hooks.server.url}/healthz")
        summary = pipe.run() if quiet or as_json else _run_with_live_table(pipe)
    if as_json:
        print_json(summary.to_dict())
    else:
        console.print()
        console.print(pipe.stats.table())
        gallery_note = (f"; gallery: {summary.gallery_entries} entries "
                        f"({'saved' if summary.gallery_saved else 'unchanged'})" if g is not None else "")
        console.print(f"{summary.events} events -> {summary.outputs.get('events')}; statistics -> "
                      f"{summary.outputs.get('stats')}{gallery_note}", soft_wrap=True)
        if summary.interrupted:
            console.print("interrupted: shut down cleanly")
    if summary.errors:  # a source that failed or never came, an output that could not be written...
        raise CliError("; ".join(summary.errors), code=EXIT_RUN_FAILED)


def _finite(name: str, value: Optional[float]) -> None:
    if value is not None and not math.isfinite(value):
        raise CliError(f"{name} must be a finite number, got {value}")


def _service_options(metrics_port, metrics_host, health_grace, events_max_bytes, events_rotate_seconds,
                     events_keep, publish, publish_buffer) -> dict:
    """The service options checked (refused, never clamped): the :class:`ServiceHooks` arguments
    and the events file's size limit in bytes."""
    from spot_edge.pipeline.config import MIN_EVENTS_BYTES
    from spot_edge.service import parse_byte_size, parse_mqtt_url

    check_range("--metrics-port", metrics_port, 1, 65535)
    if metrics_port is None and (metrics_host is not None or health_grace is not None):
        raise CliError(f"{'--metrics-host' if metrics_host is not None else '--health-grace'} needs "
                       "--metrics-port (the health check is served there)")
    if metrics_host is not None and not metrics_host.strip():
        raise CliError("--metrics-host is empty; give an address such as 127.0.0.1 or 0.0.0.0")
    _finite("--health-grace", health_grace)
    check_range("--health-grace", health_grace, 0.0)
    max_bytes = parse_byte_size(events_max_bytes, "--events-max-bytes") if events_max_bytes is not None else None
    check_range("--events-max-bytes", max_bytes, MIN_EVENTS_BYTES)
    _finite("--events-rotate-seconds", events_rotate_seconds)
    check_range("--events-rotate-seconds", events_rotate_seconds, 1.0)
    check_range("--events-keep", events_keep, 0)
    check_range("--publish-buffer", publish_buffer, 1)
    hooks = {"metrics_port": metrics_port, "metrics_host": (metrics_host or "127.0.0.1").strip(),
             "health_grace": DEFAULT_HEALTH_GRACE if health_grace is None else health_grace,
             "publish": parse_mqtt_url(publish) if publish is not None else None, "publish_buffer": publish_buffer}
    return {"hooks": hooks, "events_max_bytes": max_bytes}


__all__ = ["app", "run", "EXIT_RUN_FAILED"]
