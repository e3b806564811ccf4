"""``spot-edge export | export-onnx | build-engine | parity | export-triton-repo | embed``.

Every path is resolved once, where it enters (:func:`spot_edge.paths.user_path`: relative to the
working directory); every option value is checked (one-line errors, exit code 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from spot_edge.cli.common import (CliApp, CliError, check_range, console, note, optional_user_path, print_json,
                                  stdout, user_path)
from spot_edge.cli.embedding_inputs import check_modality_option
from spot_edge.modality import MODALITIES

app = CliApp(help="Export ONNX, build TensorRT engines, compare backends, serve with Triton.",
             no_args_is_help=True)

MODALITY_CHOICES = ("both", *MODALITIES)
PRECISION_CHOICES = ("fp32", "fp16", "int8")
BACKEND_CHOICES = ("auto", "pytorch", "onnxruntime", "tensorrt")


def _choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise CliError(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _modalities(modality: str) -> tuple[str, ...]:
    _choice("--modality", modality, MODALITY_CHOICES)
    return MODALITIES if modality == "both" else (modality,)


def _load_model(checkpoint: Optional[Path], preset_name: Optional[str]):
    from spot_edge.model import SPOT, load_checkpoint, preset

    if checkpoint is not None and preset_name is not None:
        raise CliError("give either --checkpoint or --preset, not both")
    if checkpoint is not None:
        return load_checkpoint(checkpoint)
    if preset_name is not None:
        note(f"exporting a randomly initialised '{preset_name}' network (no --checkpoint)")
        return SPOT(preset(preset_name))
    raise CliError("give --checkpoint FILE.safetensors (or --preset NAME for a randomly initialised network)")


@app.command("export-onnx")
def export_onnx_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Output prefix: PREFIX.visible.onnx, PREFIX.infrared.onnx."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", "-c", help="spot-edge checkpoint."),
    preset_name: Optional[str] = typer.Option(None, "--preset", help="Export a randomly initialised preset."),
    modality: str = typer.Option("both", help="both, visible or infrared (one graph each)."),
    precision: str = typer.Option("fp32", help="fp32, fp16 or int8 (int8 needs --calibration)."),
    calibration: Optional[Path] = typer.Option(None, help="INT8: dataset root (SYSU layout) or crop folder."),
    calibration_size: int = typer.Option(128, help="INT8: images per modality to calibrate on."),
    opset: int = typer.Option(17, help="ONNX opset (17..20)."),
    static_batch: Optional[int] = typer.Option(None, help="Fix the batch size (default: dynamic)."),
    plugins: bool = typer.Option(False, help="Fused kernels as TensorRT plugin nodes."),
) -> None:
    """Export a SPOT checkpoint to ONNX, one graph per modality, in fp32, fp16 or int8.

    Inputs of each graph: images (B,3,H,W) float32 normalised outside the graph, heatmaps
    (B,56,H/8,W/8) float32; output: embedding (B,D) float32, L2-normalised, whatever the
    precision. fp16 keeps FP32 islands; int8 is a Q/DQ graph calibrated on the training split
    of a SYSU-layout dataset root, or on a folder of crops with pose files. The ONNX checker,
    shape inference, the precision check and the TensorRT operator check run on every graph.

    Examples:

    spot-edge export-onnx -c runs/spot/model.safetensors -o exports/spot

    spot-edge export-onnx -c model.safetensors -o exports/spot-int8 \\
        --precision int8 --calibration data/synthetic-sysu
    """
    from spot_edge.engines.onnx_export import export_onnx, onnx_path_for
    from spot_edge.engines.trt_ops import onnx_operators

    out = user_path(out)
    checkpoint = optional_user_path(checkpoint)
    calibration = optional_user_path(calibration)
    modalities = _modalities(modality)
    _check_precision_options(precision, calibration, calibration_size)
    check_range("--static-batch", static_batch, 1)
    model = _load_model(checkpoint, preset_name)
    written = {}
    with console.status("exporting...") as status:
        for m in modalities:
            batches = _calibration(model, calibration, m, calibration_size, status)
            status.update(f"exporting the {precision} {m} graph")
            path = export_onnx(model, onnx_path_for(out, m), m, opset=opset, dynamic_batch=static_batch is None,
                               precision=precision, calibration=batches, plugins=plugins,
                               trace_batch=static_batch or 2)
            written[m] = str(path)
            console.print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, {precision}, "
                          f"{sum(onnx_operators(path).values())} nodes)", soft_wrap=True)
    print_json({"onnx": written, "precision": precision, "config_fingerprint": model.config.fingerprint()})


def _calibration(model, calibration: Optional[Path], modality: str, size: int, status):
    """INT8 calibration batches of ``modality`` from ``--calibration`` (None without it)."""
    if calibration is None:
        return None
    from spot_edge.calibration_data import calibration_set

    status.update(f"reading {modality} calibration images")
    config = model.config
    return calibration_set(calibration, modality, config.preprocessing, config.num_pose_maps, size=size)


def _check_precision_options(precision: str, calibration: Optional[Path], calibration_size: int) -> None:
    _choice("--precision", precision, PRECISION_CHOICES)
    check_range("--calibration-size", calibration_size, 1)
    if precision == "int8" and calibration is None:
        raise CliError("--precision int8 needs --calibration DATA (a dataset root in the SYSU layout, or a folder "
                       "of crops with pose files)")
    if precision != "int8" and calibration is not None:
        raise CliError(f"--calibration is for --precision int8 (got --precision {precision})")


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="spot-edge checkpoint (SPOT)."),
    pose_weights: Path = typer.Option(..., "--pose-weights", help="OpenPose COCO body weights (.pth, "
                                      ".caffemodel, .safetensors)."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle folder (new, empty, or a bundle with --force)."),
    precision: str = typer.Option("fp32", help="SPOT's graphs: fp32, fp16 or int8 (needs --calibration)."),
    pose_precision: str = typer.Option("auto", help="Pose graph: fp32, fp16 or auto (fp32 in an fp32 bundle, "
                                       "else fp16)."),
    pose_config: str = typer.Option("openpose_coco", help="openpose_coco or openpose_coco_lite."),
    pose_stages: int = typer.Option(0, help="Use only the first N pose stages (1-6; 0: the config's)."),
    calibration: Optional[Path] = typer.Option(None, help="INT8: dataset root (SYSU layout) or crop folder."),
    calibration_size: int = typer.Option(128, help="INT8: images per modality to calibrate on."),
    engines: bool = typer.Option(False, "--engines", help="Also build TensorRT engines (needs TensorRT and a GPU)."),
    target: Optional[str] = typer.Option(None, help="--engines: orin-nano, agx-orin, datacenter or a YAML file."),
    timing_cache: Optional[Path] = typer.Option(None, help="--engines: timing cache (read if present, updated)."),
    force: bool = typer.Option(False, "--force", help="Replace a bundle already in --out."),
) -> None:
    """Write a bundle: SPOT's two graphs, the pose graph, engines, a manifest.

    The bundle folder holds spot.visible.onnx, spot.infrared.onnx and pose.onnx
    (dynamic batch, height and width), with --engines a TensorRT engine per graph
    (profiles of the --target, the pose network's over batch, height and width),
    and bundle.json: every file's SHA-256, the preprocessing, precisions, the pose
    network's configuration and stride. The manifest is written last; loading a
    bundle verifies every file. run, embed, bench and parity take the folder.

    Examples:

    spot-edge export -c model.safetensors --pose-weights op.pth -o bundle

    spot-edge export -c m.safetensors --pose-weights op.pth -o b --engines \\
        --target orin-nano --precision fp16
    """
    from spot_edge.engines.bundle_export import (check_out_folder, check_tensorrt_for_engines, default_pose_precision,
                                                 export_bundle)
    from spot_edge.model import load_checkpoint

    checkpoint, pose_weights, out = user_path(checkpoint), user_path(pose_weights), user_path(out)
    calibration, timing_cache = optional_user_path(calibration), optional_user_path(timing_cache)
    _check_precision_options(precision, calibration, calibration_size)
    _choice("--pose-precision", pose_precision, ("auto", "fp32", "fp16"))
    _choice("--pose-config", pose_config, ("openpose_coco", "openpose_coco_lite"))
    check_range("--pose-stages", pose_stages, 0, 6)
    if not engines and (target is not None or timing_cache is not None):
        raise CliError(f"{'--target' if target is not None else '--timing-cache'} is for --engines")
    for option, path in (("--checkpoint", checkpoint), ("--pose-weights", pose_weights)):
        if not path.is_file():
            raise FileNotFoundError(f"{option} {path} does not exist")
    check_out_folder(out, force)  # before minutes of work; export_bundle checks again before writing
    options = None
    if engines:
        from spot_edge.engines.trt_builder import BuildOptions

        check_tensorrt_for_engines()

        target = str(user_path(target)) if target and Path(target).suffix else target
        options = (BuildOptions.from_target(target, timing_cache=timing_cache) if target
                   else BuildOptions(timing_cache=timing_cache))
    config = pose_config
    if pose_stages:
        from spot_edge.pose.network import with_stages

        config = with_stages(pose_config, pose_stages)
    model = load_checkpoint(checkpoint)
    with console.status("exporting the bundle...") as status:
        batches = {m: _calibration(model, calibration, m, calibration_size, status) for m in MODALITIES} \
            if calibration is not None else None
        bundle = export_bundle(model, pose_weights, out, precision=precision,
                               pose_precision=default_pose_precision(precision) if pose_precision == "auto"
                               else pose_precision, calibration=batches, pose_config=config, engines=engines,
                               build_options=options, force=force, sources={"checkpoint": checkpoint.name},
                               log=lambda message: status.update(message))
    print_json({"bundle": str(bundle.folder), **bundle.describe(), "files": sorted(bundle.manifest["files"])})


@app.command("build-engine")
def build_engine_cmd(
    onnx_path: Path = typer.Argument(..., help="A spot-edge ONNX graph (one modality, or the pose graph)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Engine file (default: beside the ONNX)."),
    target: Optional[str] = typer.Option(None, help="orin-nano, agx-orin, datacenter or a YAML file."),
    precision: Optional[str] = typer.Option(None, help="Default: the graph's. fp16 on fp32: legacy, TRT 10."),
    min_batch: Optional[int] = typer.Option(None, help="Profile minimum batch (overrides the target)."),
    opt_batch: Optional[int] = typer.Option(None, help="Profile batch TensorRT tunes for."),
    max_batch: Optional[int] = typer.Option(None, help="Profile maximum batch."),
    workspace_mib: Optional[int] = typer.Option(None, help="Builder workspace limit in MiB."),
    timing_cache: Optional[Path] = typer.Option(None, help="Timing cache file (read if present, updated)."),
    plugin: List[Path] = typer.Option([], "--plugin", help="TensorRT plugin library (repeatable)."),
) -> None:
    """Build a serialized TensorRT engine (10.3 to 11) that computes what the graph says.

    fp32, fp16 and int8 (Q/DQ) graphs build as strongly typed networks: export the precision
    you want with export-onnx --precision. Writes the engine and ENGINE.json (spot-edge version,
    config hash, modality, preprocessing, precision, profiles, TensorRT version, GPU and
    compute capability, plugins), verified at load. The pose graph (spot-edge pose export-onnx)
    builds too, with the target's pose profiles over batch, height and width.

    Example:

    spot-edge build-engine exports/spot-fp16.infrared.onnx --target orin-nano
    """
    from spot_edge.engines.metadata import BatchProfile, read_graph_info
    from spot_edge.engines.trt_builder import BuildOptions, build_engine, engine_path_for, engine_precision

    onnx_path = user_path(onnx_path)
    out = optional_user_path(out)
    timing_cache = optional_user_path(timing_cache)
    plugins = tuple(user_path(p) for p in plugin)
    target = str(user_path(target)) if target and Path(target).suffix else target
    if precision is not None:
        _choice("--precision", precision, PRECISION_CHOICES)
    for name, value in (("--min-batch", min_batch), ("--opt-batch", opt_batch), ("--max-batch", max_batch)):
        check_range(name, value, 1)
    check_range("--workspace-mib", workspace_mib, 16)
    overrides = dict(precision=precision, workspace_mib=workspace_mib, timing_cache=timing_cache,
                     plugin_libraries=plugins)
    info = read_graph_info(onnx_path)
    batches = (min_batch, opt_batch, max_batch)
    if info.kind == "pose" and any(b is not None for b in batches):
        raise CliError("a pose graph's profiles span batch, height and width: they come from the target's pose "
                       "section (--target, or a YAML file with a pose: section), not from --min/--opt/--max-batch")
    if any(b is not None for b in batches):
        if any(b is None for b in batches):
            raise CliError("give all of --min-batch, --opt-batch and --max-batch (or none, to use the target's)")
        overrides["profiles"] = (BatchProfile(*batches),)
    options = (BuildOptions.from_target(target, **overrides) if target
               else BuildOptions(**{k: v for k, v in overrides.items() if v is not None}))
    engine_path = out or engine_path_for(onnx_path, engine_precision(info.precision, options.precision)[0])
    with console.status("building the engine (minutes)...") as status:
        metadata = build_engine(onnx_path, engine_path, options, log=lambda msg: status.update(msg))
    print_json({"engine": str(engine_path), "metadata": metadata.to_dict()})


def _embedder(source: Path, backend: str, device: str, threads: Optional[int], max_batch: Optional[int]):
    from spot_edge.backends import create_embedder, resolve_backend

    _choice("--backend", backend, BACKEND_CHOICES)
    options = {}
    if resolve_backend(source, backend) != "tensorrt":  # TensorRT's batch limits come from the engine profiles
        if threads is not None:
            options["threads"] = threads
        if max_batch is not None:
            options["max_batch"] = max_batch
    return create_embedder(source, backend=backend, device=device, **options)


def _artefact_name(embedder, source: Path) -> str:
    precision = getattr(embedder, "precision", "fp32")
    return f"{embedder.name} {precision} ({source.name})"


@app.command("parity")
def parity_cmd(
    sources: List[Path] = typer.Argument(..., help="Artefacts: ONNX prefixes/files/folders, engines, bundles."),
    reference: Path = typer.Option(..., "--reference", "-r", help="The checkpoint: PyTorch fp32 reference."),
    root: Optional[Path] = typer.Option(None, help="Protocol: a SYSU-MM01-layout root or a RegDB root."),
    dataset: str = typer.Option("sysu", help="sysu (SYSU-MM01 layout, e.g. synthetic) or regdb."),
    mode: str = typer.Option("all", help="SYSU search mode: all or indoor."),
    trials: int = typer.Option(10, help="SYSU galleries (1..10)."),
    regdb_split: int = typer.Option(1, help="RegDB split (1..10)."),
    heatmap_cache: Optional[Path] = typer.Option(None, help="Pose maps of the test images."),
    images: Optional[Path] = typer.Option(None, "--images", "-i", help="Or: crops with pose files."),
    modality: str = typer.Option("infrared", help="--images: modality (labels.csv overrides)."),
    missing_heatmaps: str = typer.Option("error", help="--images without .npy: error or zeros."),
    backend: str = typer.Option("auto", help="Backend for the artefacts."),
    device: str = typer.Option("auto", help="Device for the artefacts: auto, cpu, cuda..."),
    threads: Optional[int] = typer.Option(None, help="CPU threads."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON here."),
    min_cosine: float = typer.Option(-1.0, help="Exit with code 1 when a cosine is below this."),
) -> None:
    """Compare artefacts with the PyTorch fp32 reference: cosine and R-1 / mAP / mINP.

    On a protocol (--root: the test split of a SYSU-layout root, e.g. the synthetic set, or a
    RegDB root with --dataset regdb) or on a folder of crops (--images, with labels.csv for
    the retrieval metrics). Prints a table; --json writes the full report.

    Examples:

    spot-edge parity exports/spot exports/spot-int8 -r model.safetensors \\
        --root data/synthetic-sysu --json parity.json

    spot-edge parity exports/spot-fp16 -r model.safetensors --images crops/
    """
    from spot_edge.parity import folder_parity, protocol_parity
    from spot_edge.backends.torch_backend import TorchEmbedder

    sources = [user_path(s) for s in sources]
    reference = user_path(reference)
    root, images = optional_user_path(root), optional_user_path(images)
    heatmap_cache, json_out = optional_user_path(heatmap_cache), optional_user_path(json_out)
    _choice("--dataset", dataset, ("sysu", "regdb"))
    _choice("--mode", mode, ("all", "indoor"))
    _choice("--missing-heatmaps", missing_heatmaps, ("error", "zeros"))
    check_modality_option(modality)
    check_range("--trials", trials, 1, 10)
    check_range("--regdb-split", regdb_split, 1, 10)
    check_range("--threads", threads, 1)
    check_range("--min-cosine", min_cosine, -1, 1)
    if (root is None) == (images is None):
        raise CliError("give either --root (a dataset's test protocol) or --images (a folder of crops)")
    ref = TorchEmbedder(reference, device="cpu", threads=threads)
    candidates = {}
    for source in sources:
        embedder = _embedder(source, backend, device, threads, None)
        candidates[_artefact_name(embedder, source)] = embedder
    with console.status("embedding with the reference and every artefact..."):
        if root is not None:
            report = protocol_parity(ref, candidates, root, dataset=dataset, mode=mode, trials=trials,
                                     regdb_split=regdb_split, heatmap_cache=heatmap_cache)
        else:
            from spot_edge.image_folder import load_image_folder

            data = load_image_folder(images, ref.preprocessing, ref.num_pose_maps, missing=missing_heatmaps)
            report = folder_parity(ref, candidates, data.images, data.heatmaps, modality, data.files, data.labels,
                                   source=f"images {images}")
    stdout.print(report.table(), soft_wrap=True)
    if json_out is not None:
        from spot_edge.atomic import atomic_write_json

        atomic_write_json(json_out, report.to_dict())
    if report.min_cosine() < min_cosine:
        raise CliError(f"parity failed: minimum cosine {report.min_cosine():.6f} < {min_cosine}", code=1)


@app.command("export-triton-repo")
def export_triton_repo_cmd(
    source: Path = typer.Argument(..., help="ONNX or engine files: a prefix, a directory or one file."),
    out: Path = typer.Option(..., "--out", "-o", help="Model repository folder."),
    name: str = typer.Option("spot", help="Model name prefix: NAME_visible, NAME_infrared."),
    max_batch: Optional[int] = typer.Option(None, help="max_batch_size (default 32 / the profile max)."),
    preferred: List[int] = typer.Option([4, 8], "--preferred", help="Preferred batch sizes (repeatable)."),
    queue_delay_us: int = typer.Option(1000, help="Dynamic batcher max queue delay (microseconds)."),
    instances: int = typer.Option(1, help="Model instances."),
    overwrite: bool = typer.Option(False, help="Replace existing model folders."),
) -> None:
    """Write a Triton Inference Server model repository (one model per modality, dynamic batching).

    Each config.pbtxt is validated with Triton's model-config schema (tritonclient).

    Example:

    spot-edge export-triton-repo exports/spot --out triton_models
    """
    from spot_edge.engines.triton_repo import export_triton_repo

    from spot_edge.backends.artifacts import ENGINE_SUFFIXES, ONNX_SUFFIXES, classify, find_per_modality
    from spot_edge.backends.onnxruntime_backend import onnx_modality
    from spot_edge.backends.tensorrt_backend import engine_modality

    source, out = user_path(source), user_path(out)
    check_range("--max-batch", max_batch, 1)
    check_range("--queue-delay-us", queue_delay_us, 0)
    check_range("--instances", instances, 1)
    for size in preferred:
        check_range("--preferred", size, 1)
    if not name.replace("_", "").replace("-", "").isalnum():
        raise CliError(f"--name must be letters, digits, '-' or '_', got {name!r}")
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
    source: Path = typer.Argument(..., help="Checkpoint, ONNX file/prefix/dir, engine(s) or a bundle."),
    images: Path = typer.Argument(..., help="Folder of crops with .npy pose files beside them."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .npy of (N, D) embeddings (+ OUT.json)."),
    modality: str = typer.Option("infrared", help="visible or infrared."),
    backend: str = typer.Option("auto", help="auto, pytorch, onnxruntime, tensorrt."),
    device: str = typer.Option("auto", help="auto, cpu, cuda..."),
    threads: Optional[int] = typer.Option(None, help="CPU threads."),
    batch: Optional[int] = typer.Option(None, help="Max batch per run."),
    missing_heatmaps: str = typer.Option("error", help="Images without .npy: error or zeros."),
) -> None:
    """Embed every image of a folder with any backend.

    Example:

    spot-edge embed exports/spot crops/ --modality infrared --out crops.npy
    """
    import numpy as np

    from spot_edge.atomic import atomic_write, atomic_write_json
    from spot_edge.gallery import ModelIdentity
    from spot_edge.image_folder import load_image_folder

    source, images, out = user_path(source), user_path(images), user_path(out)
    check_modality_option(modality)
    check_range("--threads", threads, 1)
    check_range("--batch", batch, 1)
    _choice("--missing-heatmaps", missing_heatmaps, ("error", "zeros"))
    embedder = _embedder(source, backend, device, threads, batch)
    data = load_image_folder(images, embedder.preprocessing, embedder.num_pose_maps, missing=missing_heatmaps)
    embeddings = embedder.embed(data.images, data.heatmaps, modality)
    atomic_write(out, lambda f: np.save(f, embeddings))
    sidecar = atomic_write_json(out.with_name(out.name + ".json"),
                                {"files": data.files, "modality": modality, "backend": embedder.describe(),
                                 "model": ModelIdentity.of(embedder).to_dict()})
    print_json({"embeddings": str(out), "shape": list(embeddings.shape), "files": str(sidecar)})
