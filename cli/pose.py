"""``spot-edge pose``: OpenPose weights (download, conversion), heatmaps for image folders, ONNX export, info."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer

from spot_edge.cli.common import (CliApp, CliError, check_range, console, optional_user_path, print_table, stdout,
                                  user_path, warn)

app = CliApp(
    name="pose",
    help="OpenPose COCO body heatmaps (the 56 maps SPOT reads): convert weights, make maps, export.\n\n"
         "Example: spot-edge pose maps frames/ heatmaps/ --weights body_pose_model.pth",
    no_args_is_help=True,
)

_STAGES = typer.Option(0, "--stages", help="Use only the first N stages (1-6; 0: the config's).")


def parse_size(text: str, option: str) -> tuple[int, int]:
    """``"368x368"`` -> ``(368, 368)``; anything else is a one-line usage error naming ``option``."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CliError(f"{option} must look like HEIGHTxWIDTH, e.g. 368x368; got {text!r}") from None
    check_range(f"{option} height", h, 1)
    check_range(f"{option} width", w, 1)
    return h, w


def _config(name: str, stages: int):
    from spot_edge.pose.network import get_pose_config, with_stages

    check_range("--stages", stages, 0, 6)
    return with_stages(name, stages) if stages else get_pose_config(name)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console)


@app.command("info")
def info(
    config: list[str] = typer.Option(["openpose_coco", "openpose_coco_lite"], "--config", "-c",
                                     help="Network config(s): openpose_coco, openpose_coco_lite, "
                                          "openpose_coco_caffe."),
    size: list[str] = typer.Option(["368x368", "288x144"], "--size", help="Input HxW (repeatable)."),
) -> None:
    """Parameter counts and GMAC of the pose network next to the published model's.

    Example:
      spot-edge pose info --size 368x656
    """
    from rich.table import Table

    from spot_edge.pose.info import cost_table

    sizes = tuple(parse_size(s, "--size") for s in size)
    for h, w in sizes:
        if h < 8 or w < 8:
            raise CliError(f"--size {h}x{w} is smaller than the network's stride (8)")
    rows = cost_table(tuple(config), sizes)
    table = Table(title="OpenPose body network (COCO, 56 maps)")
    for col in ("config", "stages", "input", "params M", "pub. M", "GMAC", "pub. GMAC", "VGG"):
        table.add_column(col, justify="left" if col == "config" else "right")
    for r in rows:
        table.add_row(r["config"], str(r["stages"]), r["input"], f"{r['params_M']:.3f}",
                      "-" if r["published_params_M"] is None else f"{r['published_params_M']:.3f}",
                      f"{r['gmac']:.1f}", "-" if r["published_gmac"] is None else f"{r['published_gmac']:.0f}",
                      f"{r['backbone_share']:.0%}")
    print_table(table, stdout)


@app.command("convert-caffe")
def convert_caffe(
    caffemodel: Path = typer.Argument(..., help="pose_iter_440000.caffemodel (CMU COCO body model)."),
    output: Path = typer.Argument(..., help="Output weights: .safetensors or .pth (PyTorch-port key layout)."),
    stages: int = _STAGES,
) -> None:
    """Convert the CMU Caffe model to PyTorch weights (no Caffe needed) and check they fit.

    Example:
      spot-edge pose convert-caffe pose_iter_440000.caffemodel pose.safetensors
    """
    from spot_edge.pose.caffe import caffemodel_to_state_dict
    from spot_edge.pose.network import OpenPoseBody
    from spot_edge.pose.weights import load_pose_weights, save_pose_weights

    caffemodel, output = user_path(caffemodel), user_path(output)
    body = OpenPoseBody(_config("openpose_coco", stages))
    if not caffemodel.is_file():
        raise FileNotFoundError(f"Caffe model not found: {caffemodel}")
    sd = caffemodel_to_state_dict(caffemodel)
    report = load_pose_weights(body, dict(sd))  # raises with the mismatching keys
    save_pose_weights(sd, output)
    typer.echo(f"wrote {output} ({report.loaded} tensors, {sum(v.numel() for v in sd.values()):,} parameters)")


@app.command("maps")
def maps(
    images: Path = typer.Argument(..., help="Folder of images (BGR/grey; grey is replicated to 3 channels)."),
    output: Path = typer.Argument(..., help="Folder for <name>_pose_heatmaps.png (OpenPose format)."),
    weights: Path = typer.Option(..., "--weights", "-w", help="body_pose_model.pth, .safetensors or "
                                 ".caffemodel."),
    config: str = typer.Option("openpose_coco", "--config", "-c", help="openpose_coco or openpose_coco_lite."),
    stages: int = _STAGES,
    net_height: int = typer.Option(368, "--net-height", help="Resize frames to this height first (0: keep "
                                   "size)."),
    keypoints: bool = typer.Option(False, "--keypoints/--no-keypoints", help="Also write <name>_keypoints.json."),
    device: str = typer.Option("cpu", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Run the OpenPose network over an image folder and write the 56 maps per image.

    Example:
      spot-edge pose maps frames/ heatmaps/ --weights body_pose_model.pth
    """
    import cv2

    from spot_edge.imageio import list_images, read_image
    from spot_edge.backends.pose_estimators import create_pose_estimator
    from spot_edge.pose.openpose_json import write_openpose_json
    from spot_edge.pose.openpose_png import heatmaps_png_name, write_pose_heatmaps_png
    from spot_edge.pose.parse import parse_pose_maps

    images, output, weights = user_path(images), user_path(output), user_path(weights)
    check_range("--net-height", net_height, 0)
    if 0 < net_height < 8:
        raise CliError(f"--net-height must be 0 (keep size) or at least 8 (the network's stride), got {net_height}")
    pose_config = _config(config, stages)
    if not weights.is_file():
        raise FileNotFoundError(f"pose weights not found: {weights}")
    files = list_images(images)
    est = create_pose_estimator(weights, backend="pytorch", device=device, config=pose_config)
    with _progress() as progress:
        task = progress.add_task("pose maps", total=len(files))
        for f in files:
            img = read_image(f)  # grey files come back as 3 equal channels
            scale = 1.0
            if net_height > 0:
                scale = net_height / img.shape[0]
                img = cv2.resize(img, (max(8, round(img.shape[1] * scale)), net_height),
                                 interpolation=cv2.INTER_CUBIC)
            m = est(img)[0].float().cpu().numpy()
            write_pose_heatmaps_png(output / heatmaps_png_name(f.name), m)
            if keypoints:
                people = parse_pose_maps(m, image_size=(m.shape[1] * 8, m.shape[2] * 8))
                kp = people.keypoints.copy()
                kp[..., :2] /= scale  # back to the original image's pixels
                kp[kp[..., 2] == 0] = 0
                write_openpose_json(output / (f.stem + "_keypoints.json"), kp)
            progress.advance(task)
    typer.echo(f"wrote {len(files)} heatmap files to {output}")


@app.command("render")
def render(
    keypoints_dir: Path = typer.Argument(..., help="Folder of OpenPose <name>_keypoints.json files (COCO-18)."),
    output: Path = typer.Argument(..., help="Folder for <name>_pose_heatmaps.png."),
    image_size: str = typer.Option(..., "--image-size", help="HxW of the images the keypoints belong to."),
    out_size: str = typer.Option("", "--out-size", help="HxW of the maps (default: image size / 8)."),
    sigma: float = typer.Option(7.0, help="Keypoint Gaussian std, image pixels."),
    paf_width: float = typer.Option(8.0, help="PAF half-width, image pixels."),
) -> None:
    """Render the 56 maps from keypoints (any detector / annotations) instead of running the network.

    Example:
      spot-edge pose render json/ heatmaps/ --image-size 288x144 --out-size 36x18
    """
    from spot_edge.pose.openpose_json import KEYPOINTS_SUFFIX, read_openpose_json
    from spot_edge.pose.openpose_png import HEATMAPS_SUFFIX, write_pose_heatmaps_png
    from spot_edge.pose.render import render_pose_maps

    keypoints_dir, output = user_path(keypoints_dir), user_path(output)
    ih, iw = parse_size(image_size, "--image-size")
    oh, ow = parse_size(out_size, "--out-size") if out_size else (-(-ih // 8), -(-iw // 8))
    if not sigma > 0 or not paf_width > 0:   # also refuses NaN
        raise CliError(f"--sigma and --paf-width must be positive, got {sigma:g} and {paf_width:g}")
    if not keypoints_dir.is_dir():
        raise FileNotFoundError(f"keypoint folder not found: {keypoints_dir}")
    files = sorted(keypoints_dir.glob("*" + KEYPOINTS_SUFFIX))
    if not files:
        raise FileNotFoundError(f"no *{KEYPOINTS_SUFFIX} files in {keypoints_dir}")
    with _progress() as progress:
        task = progress.add_task("render", total=len(files))
        for f in files:
            m = render_pose_maps(read_openpose_json(f), (ih, iw), (oh, ow), sigma=sigma, paf_width=paf_width)
            write_pose_heatmaps_png(output / (f.name[: -len(KEYPOINTS_SUFFIX)] + HEATMAPS_SUFFIX), m)
            progress.advance(task)
    typer.echo(f"rendered {len(files)} heatmap files ({oh}x{ow}) to {output}")


@app.command("export-onnx")
def export_onnx(
    output: Path = typer.Argument(..., help="Output .onnx file."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Weights; omit only for a shape-only "
                                           "test graph."),
    config: str = typer.Option("openpose_coco", "--config", "-c", help="openpose_coco or openpose_coco_lite."),
    stages: int = _STAGES,
    size: str = typer.Option("368x368", "--size", help="Sample input HxW (multiples of 8); H, W stay dynamic."),
    normalize: bool = typer.Option(False, "--normalize/--no-normalize",
                                   help="Put BGR/256-0.5 inside the graph (input: raw BGR 0-255)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 or fp16 (float16 weights and compute, "
                                  "float32 input/output; for TensorRT and GPUs)."),
    clamp: bool = typer.Option(False, "--clamp/--no-clamp", help="Clamp the maps to OpenPose's output ranges "
                               "(default: the raw maps, what the parser reads)."),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare with onnxruntime on two input sizes."),
) -> None:
    """Export the pose network to ONNX (dynamic batch, height, width); output (B, 56, H/8, W/8).

    The graph records its weights fingerprint, input spec and precision; spot-edge
    build-engine builds it into a TensorRT engine (the target's pose profiles).

    Examples:
      spot-edge pose export-onnx pose.onnx --weights body_pose_model.pth

      spot-edge pose export-onnx pose16.onnx -w op.pth --precision fp16
    """
    import torch

    from spot_edge.pose.network import OpenPoseBody, RandomWeightsWarning
    from spot_edge.engines.pose_onnx_export import check_onnx_parity, export_pose_onnx
    from spot_edge.pose.weights import load_pose_weights

    output, weights = user_path(output), optional_user_path(weights)
    h, w = parse_size(size, "--size")
    if h % 8 or w % 8:
        raise CliError(f"--size must be multiples of 8 (the network's stride), got {h}x{w}")
    if precision not in ("fp32", "fp16"):
        raise CliError(f"--precision must be fp32 or fp16 for the pose graph, got {precision!r}")
    model = OpenPoseBody(_config(config, stages)).eval()
    if weights is not None:
        if not weights.is_file():
            raise FileNotFoundError(f"pose weights not found: {weights}")
        load_pose_weights(model, weights)
    else:
        warn("no --weights: exporting RANDOM weights (shape tests only)")
    with warnings.catch_warnings():
        if weights is None:   # said once above, not on every forward pass
            warnings.simplefilter("ignore", RandomWeightsWarning)
        export_pose_onnx(model, output, (h, w), normalize=normalize, clamp=clamp, precision=precision)
        if check:
            scale = 255.0 if normalize else 1.0
            offset = 0.0 if normalize else 0.5
            g = torch.Generator().manual_seed(0)
            inputs = [torch.rand(1, 3, h, w, generator=g) * scale - offset,
                      torch.rand(2, 3, h + 16, max(8, w - 8), generator=g) * scale - offset]
            tolerance = dict(atol=1e-3) if precision == "fp32" else dict(atol=1e-2, rtol=1e-2)  # fp16 rounding
            diff = check_onnx_parity(model, output, inputs, normalize=normalize, clamp=clamp, **tolerance)
            typer.echo(f"onnxruntime parity ({precision} graph vs PyTorch fp32): max abs diff {diff:.2e}")
    typer.echo(f"wrote {output}")


@app.command("fetch-weights")
def fetch_weights(
    url: Optional[str] = typer.Option(None, "--url", help="Where to get body_pose_model.pth (http(s):// or "
                                      "file://; default: the public Hugging Face mirror)."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="Expected SHA-256 (64 hex digits; known "
                                         "for the default URL)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Destination file (default: "
                                       "~/.cache/spot-edge/body_pose_model.pth)."),
    force: bool = typer.Option(False, "--force", help="Download again over an existing file."),
    retries: int = typer.Option(3, "--retries", help="Resumptions after a dropped connection."),
    timeout: float = typer.Option(30.0, "--timeout", metavar="SECONDS",
                                  help="Seconds without data before a connection counts as dropped."),
) -> None:
    """Download the CMU OpenPose body model (body_pose_model.pth), verified.

    A partial download (OUT.part) is resumed; the file's SHA-256 and its state
    dict's keys and shapes are checked (read without running pickle code) before
    it is moved into place atomically. Prints the file's path on stdout.
    Offline, one line says how to copy the file over instead.

    Examples:
      spot-edge pose fetch-weights

      spot-edge pose fetch-weights --out models/body_pose_model.pth
    """
    import math
    from urllib.parse import urlparse

    from spot_edge.pose.fetch import DEFAULT_URL, default_weights_path, fetch_pose_weights

    url = url or DEFAULT_URL
    if urlparse(url).scheme not in ("http", "https", "file"):
        raise CliError(f"--url must be an http://, https:// or file:// address, got {url!r}")
    check_range("--retries", retries, 0, 100)
    if not math.isfinite(timeout) or timeout <= 0:
        raise CliError(f"--timeout must be a positive number of seconds, got {timeout:g}")
    out = user_path(out) if out is not None else default_weights_path()
    with _download_progress() as (progress, task):
        def report(done: int, total: Optional[int]) -> None:
            progress.update(task, completed=done, total=total)

        path = fetch_pose_weights(url, sha256=sha256, out=out, progress=report, retries=retries, timeout=timeout,
                                  force=force)
    typer.echo(str(path))


def _download_progress():
    """A rich download bar on stderr (bytes, speed, time left) and its task, as a context manager."""
    import contextlib

    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    @contextlib.contextmanager
    def bar():
        with Progress(TextColumn("body_pose_model.pth", markup=False), BarColumn(), DownloadColumn(),
                      TransferSpeedColumn(), TimeRemainingColumn(), console=console, transient=False) as progress:
            yield progress, progress.add_task("download", total=None)

    return bar()


__all__ = ["app", "parse_size"]

if __name__ == "__main__":  # python -m spot_edge.cli.pose ...
    app()
