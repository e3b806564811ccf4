"""``spot-edge export-onnx | build-engine | parity | export-triton-repo | embed``.

The commands live on ``app`` (a typer app); :func:`register` attaches them at the top level of
the ``spot-edge`` command (``spot-edge build-engine ...``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from spot_edge.cli.common import CliApp, CliError, console, friendly_errors, print_json

app = CliApp(help="Export ONNX, build TensorRT engines, compare backends, serve with Triton.",
                  no_args_is_help=True)

MODALITY_CHOICES = ("both", "visible", "infrared")


def _modalities(modality: str) -> tuple[str, ...]:
    if modality not in MODALITY_CHOICES:
        raise CliError(f"--modality must be one of {', '.join(MODALITY_CHOICES)}, got {modality!r}")
    return ("visible", "infrared") if modality == "both" else (modality,)


def _load_model(checkpoint: Optional[Path], preset_name: Optional[str]):
    from spot_edge.model import SPOT, load_checkpoint, preset

    if checkpoint is not None and preset_name is not None:
        raise CliError("give either --checkpoint or --preset, not both")
    if checkpoint is not None:
        return load_checkpoint(checkpoint)
    if preset_name is not None:
        console.print(f"[yellow]note:[/] exporting a randomly initialised '{preset_name}' network (no --checkpoint)")
        return SPOT(preset(preset_name))
    raise CliError("give --checkpoint FILE.safetensors (or --preset NAME for a randomly initialised network)")


@app.command("export-onnx")
def export_onnx_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Output prefix: writes PREFIX.visible.onnx / PREFIX.infrared.onnx."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="spot-edge checkpoint (.safetensors)."),
    preset_name: Optional[str] = typer.Option(None, "--preset", help="Export a randomly initialised preset instead."),
    modality: str = typer.Option("both", help="both, visible or infrared (one graph per modality)."),
    opset: int = typer.Option(17, help="ONNX opset (17..20; TensorRT 10.3 parses up to 20)."),
    static_batch: Optional[int] = typer.Option(None, help="Fix the batch size instead of a dynamic batch."),
    plugins: bool = typer.Option(False, help="Use TensorRT plugin nodes for the fused kernels (needs the kernels' helper)."),
) -> None:
    """Export a SPOT checkpoint to ONNX, one graph per modality, with metadata and checks.

    Inputs of each graph: images (B,3,H,W) float32 normalised outside the graph, heatmaps
    (B,56,H/8,W/8); output: embedding (B,D), L2-normalised. The ONNX checker, shape inference and
    the TensorRT 10.3 operator check run on every graph.

    Example: spot-edge export-onnx --checkpoint runs/spot.safetensors --out exports/spot
    """
    from spot_edge.engines.onnx_export import export_onnx, onnx_path_for, onnx_operators

    with friendly_errors():
        model = _load_model(checkpoint, preset_name)
        written = {}
        with console.status("exporting...") as status:
            for m in _modalities(modality):
                status.update(f"exporting the {m} graph")
                path = export_onnx(model, onnx_path_for(out, m), m, opset=opset,
                                   dynamic_batch=static_batch is None, plugins=plugins,
                                   trace_batch=static_batch or 2)
                written[m] = str(path)
                console.print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, "
                              f"{sum(onnx_operators(path).values())} nodes)")
    print_json({"onnx": written, "config_fingerprint": model.config.fingerprint()})


@app.command("build-engine")
def build_engine_cmd(
    onnx_path: Path = typer.Argument(..., help="A spot-edge ONNX graph (one modality)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Engine file (default: NAME.PRECISION.engine beside the ONNX)."),
    target: Optional[str] = typer.Option(None, help="Build target: orin-nano, agx-orin, datacenter or a YAML file."),
    precision: Optional[str] = typer.Option(None, help="fp16 (default), fp32 or int8."),
    min_batch: Optional[int] = typer.Option(None, help="Profile minimum batch (overrides the target's profiles)."),
    opt_batch: Optional[int] = typer.Option(None, help="Profile batch TensorRT tunes for."),
    max_batch: Optional[int] = typer.Option(None, help="Profile maximum batch."),
    workspace_mib: Optional[int] = typer.Option(None, help="Builder workspace limit in MiB."),
    timing_cache: Optional[Path] = typer.Option(None, help="Timing cache file (read if present, updated)."),
    calibration_images: Optional[Path] = typer.Option(None, help="INT8: folder of crops with .npy pose files."),
    calibration_cache: Optional[Path] = typer.Option(None, help="INT8: calibration cache (read if present, written)."),
    plugin: List[Path] = typer.Option([], "--plugin", help="TensorRT plugin library to load (repeatable)."),
) -> None:
    """Build a serialized TensorRT engine (FP16 by default) from an ONNX graph.

    Writes the engine and ENGINE.json (spot-edge version, config hash, modality, preprocessing,
    precision, profiles, TensorRT version, GPU and compute capability, plugins), verified at load.

    Example: spot-edge build-engine exports/spot.infrared.onnx --target orin-nano --timing-cache trt.cache
    """
    from spot_edge.engines.metadata import BatchProfile
    from spot_edge.engines.trt_builder import BuildOptions, build_engine, engine_path_for

    with friendly_errors():
        overrides = dict(precision=precision, workspace_mib=workspace_mib, timing_cache=timing_cache,
                         calibration_images=calibration_images, calibration_cache=calibration_cache,
                         plugin_libraries=tuple(plugin))
        batches = (min_batch, opt_batch, max_batch)
        if any(b is not None for b in batches):
            if any(b is None for b in batches):
                raise CliError("give all of --min-batch, --opt-batch and --max-batch (or none, to use the target's)")
            overrides["profiles"] = (BatchProfile(*batches),)
        options = (BuildOptions.from_target(target, **overrides) if target
                   else BuildOptions(**{k: v for k, v in overrides.items() if v is not None}))
        engine_path = out or engine_path_for(onnx_path, options.precision)
        with console.status("building the engine (minutes)...") as status:
            metadata = build_engine(onnx_path, engine_path, options, log=lambda msg: status.update(msg))
    print_json({"engine": str(engine_path), "metadata": metadata.to_dict()})


def _embedder(source: str, backend: str, device: str, threads: Optional[int], max_batch: Optional[int]):
    from spot_edge.backends import create_embedder
    from spot_edge.backends.artifacts import classify

    options = {}
    runs_engine = backend == "tensorrt" or (backend == "auto" and classify(source) == "engine")
    if not runs_engine:  # the TensorRT backend's batch limits come from the engine profiles
        if threads is not None:
            options["threads"] = threads
        if max_batch is not None:
            options["max_batch"] = max_batch
    return create_embedder(source, backend=backend, device=device, **options)


@app.command("parity")
def parity_cmd(
    source: str = typer.Argument(..., help="What to check: ONNX file/prefix/dir, engine(s) or a checkpoint."),
    reference: Path = typer.Option(..., "--reference", "-r", help="The checkpoint (.safetensors): PyTorch fp32 reference."),
    images: Path = typer.Option(..., "--images", "-i", help="Folder of crops with .npy pose files (+ labels.csv)."),
    backend: str = typer.Option("auto", help="Backend for SOURCE: auto, pytorch, onnxruntime, tensorrt."),
    device: str = typer.Option("auto", help="auto, cpu, cuda..."),
    modality: str = typer.Option("infrared", help="Modality of the images (labels.csv overrides per image)."),
    protocol: str = typer.Option("regdb", help="Retrieval protocol for labelled sets: regdb or sysu."),
    missing_heatmaps: str = typer.Option("error", help="Images without .npy: error or zeros."),
    min_cosine: float = typer.Option(0.0, help="Exit with code 1 when the minimum cosine similarity is below this."),
    threads: Optional[int] = typer.Option(None, help="CPU threads."),
) -> None:
    """Compare a backend's embeddings with the PyTorch fp32 reference on a folder of images.

    Reports cosine similarity per image (mean / min / 1st percentile) and, when the folder has a
    labels.csv (file,pid,camid,modality,split), R-1 / mAP / mINP of both and their change.

    Example: spot-edge parity exports/spot --reference runs/spot.safetensors --images crops/ --min-cosine 0.999
    """
    from spot_edge.backends.image_folder import load_image_folder
    from spot_edge.backends.parity import parity_report
    from spot_edge.backends.torch_backend import TorchEmbedder

    with friendly_errors():
        ref = TorchEmbedder(reference, device="cpu", threads=threads)
        cand = _embedder(source, backend, device, threads, None)
        data = load_image_folder(images, ref.preprocessing, ref.num_pose_maps, missing=missing_heatmaps)
        report = parity_report(ref, cand, data.images, data.heatmaps, modality, data.files, data.labels, protocol)
    print_json(report)
    a = report["agreement"]
    console.print(f"cosine similarity to PyTorch fp32: mean {a['cosine_mean']:.6f}, min {a['cosine_min']:.6f} "
                  f"over {a['num_images']} images")
    if a["cosine_min"] < min_cosine:
        console.print(f"[bold red]parity failed:[/] minimum cosine {a['cosine_min']:.6f} < {min_cosine}")
        raise typer.Exit(1)


@app.command("export-triton-repo")
def export_triton_repo_cmd(
    source: str = typer.Argument(..., help="ONNX or engine files: a prefix, a directory or one file."),
    out: Path = typer.Option(..., "--out", "-o", help="Model repository folder."),
    name: str = typer.Option("spot", help="Model name prefix: NAME_visible, NAME_infrared."),
    max_batch: Optional[int] = typer.Option(None, help="max_batch_size (default 32 for ONNX, the profile max for engines)."),
    preferred: List[int] = typer.Option([4, 8], "--preferred", help="Preferred batch sizes of the dynamic batcher."),
    queue_delay_us: int = typer.Option(1000, help="Dynamic batcher max queue delay (microseconds)."),
    instances: int = typer.Option(1, help="Model instances."),
    overwrite: bool = typer.Option(False, help="Replace existing model folders."),
) -> None:
    """Write a Triton Inference Server model repository (one model per modality, dynamic batching).

    Each config.pbtxt is validated with Triton's model-config schema (tritonclient).

    Example: spot-edge export-triton-repo exports/spot --out triton_models
    """
    from spot_edge.backends.onnxruntime_backend import onnx_modality
    from spot_edge.backends.artifacts import ENGINE_SUFFIXES, ONNX_SUFFIXES, classify, find_per_modality
    from spot_edge.backends.tensorrt_backend import engine_modality
    from spot_edge.engines.triton_repo import export_triton_repo

    with friendly_errors():
        kind = classify(source)
        if kind == "onnx":
            models = find_per_modality(source, ONNX_SUFFIXES, onnx_modality, "ONNX model")
        elif kind == "engine":
            models = find_per_modality(source, ENGINE_SUFFIXES, engine_modality, "TensorRT engine")
        else:
            raise CliError(f"{source} is a {kind}; export ONNX first (spot-edge export-onnx)")
        dirs = export_triton_repo(models, out, name, max_batch, tuple(preferred), queue_delay_us, instances,
                                  overwrite=overwrite)
    print_json({m: str(d) for m, d in dirs.items()})


@app.command("embed")
def embed_cmd(
    source: str = typer.Argument(..., help="Checkpoint, ONNX file/prefix/dir or engine(s)."),
    images: Path = typer.Argument(..., help="Folder of crops with .npy pose files beside them."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npy of (N, D) embeddings (+ OUT.json with file names)."),
    modality: str = typer.Option("infrared", help="visible or infrared."),
    backend: str = typer.Option("auto", help="auto, pytorch, onnxruntime, tensorrt."),
    device: str = typer.Option("auto", help="auto, cpu, cuda..."),
    threads: Optional[int] = typer.Option(None, help="CPU threads."),
    batch: Optional[int] = typer.Option(None, help="Max batch per run."),
    missing_heatmaps: str = typer.Option("error", help="Images without .npy: error or zeros."),
) -> None:
    """Embed every image of a folder with any backend.

    Example: spot-edge embed exports/spot crops/ --modality infrared --out crops.npy
    """
    import numpy as np

    from spot_edge.backends.image_folder import load_image_folder

    with friendly_errors():
        embedder = _embedder(source, backend, device, threads, batch)
        data = load_image_folder(images, embedder.preprocessing, embedder.num_pose_maps, missing=missing_heatmaps)
        embeddings = embedder.embed(data.images, data.heatmaps, modality)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, embeddings)
        sidecar = out.with_name(out.name + ".json")
        sidecar.write_text(json.dumps({"files": data.files, "modality": modality, "backend": embedder.describe()},
                                      indent=2))
    print_json({"embeddings": str(out), "shape": list(embeddings.shape), "files": str(sidecar)})


COMMANDS = {"export-onnx": export_onnx_cmd, "build-engine": build_engine_cmd, "parity": parity_cmd,
            "export-triton-repo": export_triton_repo_cmd, "embed": embed_cmd}


def register(root: typer.Typer) -> None:
    """Attach the commands at the top level of ``root`` (``spot-edge build-engine ...``)."""
    for name, fn in COMMANDS.items():
        root.command(name)(fn)
