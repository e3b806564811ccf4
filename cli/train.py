"""``spot-edge`` training commands: train, evaluate, make-synthetic, build-heatmaps.

Errors are reported by the CLI guard (``cli/common.py``): one line on stderr, exit code 2 for
every usage and input error, 130 for an interruption. Every path a user types (arguments,
options, the YAML file's paths, ``--set`` overrides) is relative to the working directory and
resolved once, where it enters. For multi-GPU / multi-node training launch this module with
torchrun::

    torchrun --nproc_per_node 8 -m spot_edge.cli.train train -c cfg.yaml
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from spot_edge.cli.common import CliApp, CliError, check_range, console, note, optional_user_path, user_path

app = CliApp(help="Train and evaluate SPOT; generate the synthetic dataset.", no_args_is_help=True)

SYSU_MODES = ("all", "indoor", "both")
DATASETS = ("sysu", "regdb")
HEATMAP_SOURCES = ("keypoints", "openpose-png")
HEATMAP_DTYPES = ("uint8", "float16")


def _choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise CliError(f"{option} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _parse_size(option: str, text: str) -> tuple[int, int]:
    """``HxW`` -> ``(h, w)``, both at least 1."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CliError(f"{option} must look like HxW (e.g. 128x64), got {text!r}") from None
    if h < 1 or w < 1:
        raise CliError(f"{option} must be positive, got {text!r}")
    return h, w


def _parse_range(option: str, text: str) -> tuple[int, int]:
    """``lo-hi`` or ``n`` -> ``(lo, hi)`` with ``1 <= lo <= hi``."""
    try:
        lo, hi = (int(v) for v in text.split("-")) if "-" in text else (int(text), int(text))
    except ValueError:
        raise CliError(f"{option} must be a number or a range lo-hi (e.g. 4-8), got {text!r}") from None
    if not 1 <= lo <= hi:
        raise CliError(f"{option} must satisfy 1 <= lo <= hi, got {text!r}")
    return lo, hi


def _parse_splits(text: str) -> list[int]:
    """``1-10``, ``1,3`` or ``2`` -> split numbers in 1..10."""
    out: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part:
                a, b = part.split("-")
                out.extend(range(int(a), int(b) + 1))
            elif part.strip():
                out.append(int(part))
    except ValueError:
        raise CliError(f"--splits must look like 1-10 or 1,3,5, got {text!r}") from None
    if not out or any(not 1 <= s <= 10 for s in out):
        raise CliError(f"--splits must name RegDB splits 1..10, got {text!r}")
    return sorted(dict.fromkeys(out))


@app.command("train")
def train_command(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training config YAML."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Override a value: section.key=value (repeatable)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the run's saved state."),
    max_epochs: Optional[int] = typer.Option(None, help="Stop after this many epochs in this call."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Run the test protocol at the end."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train a SPOT model (checkpoint every epoch, exact resume, metrics).

    Paths in the YAML file and in --set overrides are relative to the
    working directory. An interrupted run (Ctrl-C) resumes from its last
    finished epoch when the same command is run again.

    Examples (CPU, synthetic set):
      spot-edge make-synthetic data/synthetic-sysu
      spot-edge train -c training/configs/synthetic-small.yaml
      spot-edge train -c cfg.yaml --set data.root=data/s --set optim.epochs=4

    Multi-GPU:
      torchrun --nproc_per_node 4 -m spot_edge.cli.train train -c cfg.yaml
    """
    from spot_edge.training.config import load_train_config
    from spot_edge.training.loop import interrupted_message, train

    check_range("--max-epochs", max_epochs, 1)
    cfg = load_train_config(optional_user_path(config), set_)
    try:
        summary = train(cfg, resume=resume, max_epochs=max_epochs, show_progress=not quiet, evaluate_at_end=evaluate)
    except KeyboardInterrupt:
        raise CliError(interrupted_message(cfg), code=130) from None
    if quiet and "results" in summary:
        from spot_edge.training.evaluation import format_table

        typer.echo(format_table(summary["results"]))
    typer.echo(f"run folder: {summary['out_dir']} ({summary['epochs_done']} epochs done)")


@app.command("evaluate")
def evaluate_command(
    checkpoint: str = typer.Option(..., "--checkpoint", help="model.safetensors; for RegDB a pattern with "
                                                             "{split}, e.g. runs/split{split}/model.safetensors"),
    dataset: str = typer.Option("sysu", help="sysu or regdb."),
    root: Path = typer.Option(..., help="Dataset root."),
    heatmap_cache: Optional[Path] = typer.Option(None, help="Pose-map cache covering the test images "
                                                            "(needed unless the model is the baseline)."),
    mode: str = typer.Option("both", help="SYSU search mode: all, indoor or both."),
    trials: int = typer.Option(10, help="SYSU gallery trials (10 in the protocol)."),
    splits: str = typer.Option("1-10", help="RegDB splits, e.g. 1-10 or 1,3."),
    device: str = typer.Option("cpu", help="Torch device: cpu, cuda, cuda:N or auto."),
    output: Optional[Path] = typer.Option(None, help="Write the results as JSON here."),
) -> None:
    """Evaluate with the community protocol and print a paper-like table.

    The protocol is described in docs/evaluation-protocol.md. An incomplete
    test set (missing images, a test identity without images of one
    modality) is refused rather than silently skipped.

    Examples:
      spot-edge evaluate --checkpoint runs/sysu/model.safetensors \\
        --root data/SYSU-MM01 --heatmap-cache data/SYSU-MM01/cache
      spot-edge evaluate --dataset regdb --root data/RegDB \\
        --checkpoint 'runs/regdb/split{split}/model.safetensors' \\
        --heatmap-cache data/RegDB/cache
    """
    from spot_edge.training.evaluation import (checkpoint_embedder, evaluate_regdb, evaluate_sysu, format_table,
                                               save_results)
    from spot_edge.training.heatmap_cache import HeatmapCache

    from spot_edge.device import DeviceError, resolve_device

    _choice("--dataset", dataset, DATASETS)
    _choice("--mode", mode, SYSU_MODES)
    check_range("--trials", trials, 1)
    try:
        device = str(resolve_device(device))
    except DeviceError as exc:
        raise CliError(f"--device: {exc}") from None
    checkpoint = str(user_path(checkpoint))
    root = user_path(root)
    heatmap_cache = optional_user_path(heatmap_cache)
    output = optional_user_path(output)
    cache = HeatmapCache(heatmap_cache, root) if heatmap_cache else _cache_under(root)
    if dataset == "sysu":
        modes = ["all", "indoor"] if mode == "both" else [mode]
        embed = checkpoint_embedder(checkpoint, cache, device=device)
        results = {f"SYSU-MM01 {m}-search": evaluate_sysu(embed, root, m, range(trials)) for m in modes}
    else:
        split_list = _parse_splits(splits)
        if "{split}" not in checkpoint and len(split_list) > 1:
            raise CliError("RegDB evaluates the model trained on each split: give a --checkpoint pattern with {split}")
        missing = [checkpoint.format(split=s) for s in split_list
                   if not Path(checkpoint.format(split=s)).is_file()]
        if missing:
            raise CliError(f"{len(missing)} of {len(split_list)} split checkpoints do not exist, e.g. "
                           f"{', '.join(missing[:2])}; refusing to evaluate untrained models")
        found = evaluate_regdb(lambda s: checkpoint_embedder(checkpoint.format(split=s), cache, device=device),
                               root, split_list)
        results = {f"RegDB {d}": r for d, r in found.items()}
    typer.echo(format_table(results))
    if output:
        save_results(results, output)
        typer.echo(f"results written to {output}")


@app.command("make-synthetic")
def make_synthetic_command(
    out: Path = typer.Argument(..., metavar="OUT", help="Output folder (SYSU-MM01 layout)."),
    train_ids: int = typer.Option(120, "--train-ids", help="Training identities."),
    val_ids: int = typer.Option(20, "--val-ids", help="Validation identities (merged into training)."),
    test_ids: int = typer.Option(60, "--test-ids", help="Test identities."),
    images: str = typer.Option("4-8", help="Images per identity and camera, a range lo-hi."),
    size: str = typer.Option("128x64", help="Image size HxW."),
    seed: int = typer.Option(0, help="Seed (the output is a pure function of it)."),
    workers: int = typer.Option(2, help="Processes."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier synthetic set in OUT."),
) -> None:
    """Generate the synthetic cross-modality ReID set with ground-truth keypoints.

    OUT must be new or empty. An earlier synthetic set there is replaced
    only with --force, entirely (nothing of the old tree stays); a folder
    that is not a synthetic set is never deleted, even with --force.

    Examples:
      spot-edge make-synthetic data/synthetic-sysu
      spot-edge make-synthetic data/s --train-ids 8 --test-ids 4 --force
    """
    from rich.progress import Progress

    from spot_edge.training.synthetic_dataset import SyntheticConfig, check_synthetic_target, generate_sysu_like

    check_range("--train-ids", train_ids, 1)
    check_range("--val-ids", val_ids, 0)
    check_range("--test-ids", test_ids, 1)
    check_range("--seed", seed, 0)
    check_range("--workers", workers, 1)
    lo, hi = _parse_range("--images", images)
    h, w = _parse_size("--size", size)
    out = user_path(out)
    check_synthetic_target(out, force)
    cfg = SyntheticConfig(num_train=train_ids, num_val=val_ids, num_test=test_ids, images_per_camera=(lo, hi),
                          height=h, width=w, seed=seed)
    with Progress(console=console) as progress:
        task = progress.add_task("rendering identities", total=train_ids + val_ids + test_ids)
        summary = generate_sysu_like(out, cfg, workers=workers, force=force,
                                     progress=lambda done, total: progress.update(task, completed=done))
    typer.echo(f"{summary['num_images']} images of {summary['num_ids']} identities written to {out}")


def _cache_under(root: Path):
    """The pose-map cache that training built under the dataset root (``heatmap_cache_*``), when there
    is exactly one; None otherwise (a model that reads maps then asks for --heatmap-cache)."""
    from spot_edge.training.heatmap_cache import HeatmapCache

    found = sorted(p for p in root.glob("heatmap_cache_*") if p.is_dir())
    if len(found) != 1:
        return None
    note(f"pose maps from {found[0]} (the cache under the dataset root; --heatmap-cache to choose another)")
    return HeatmapCache(found[0], root)


@app.command("build-heatmaps")
def build_heatmaps_command(
    root: Path = typer.Option(..., help="Dataset root."),
    out: Path = typer.Option(..., help="Cache folder to write."),
    source: str = typer.Option("keypoints", help="keypoints (synthetic ground truth) or openpose-png."),
    openpose_dir: Optional[Path] = typer.Option(None, help="Folder of <name>_pose_heatmaps.png (openpose-png)."),
    size: str = typer.Option("32x16", help="Stored map size HxW (e.g. stride 8 of the network input)."),
    dtype: str = typer.Option("uint8", help="uint8 or float16."),
) -> None:
    """Build the pose-map cache of every image of a dataset tree.

    Example:
      spot-edge build-heatmaps --root data/s --out data/s/heatmap_cache_32x16
    """
    import os

    from rich.progress import Progress

    from spot_edge.training.datasets import IMAGE_EXTENSIONS
    from spot_edge.training.heatmap_cache import build_heatmap_cache, keypoint_source, openpose_png_source

    _choice("--source", source, HEATMAP_SOURCES)
    _choice("--dtype", dtype, HEATMAP_DTYPES)
    map_size = _parse_size("--size", size)
    root, out = user_path(root), user_path(out)
    if not root.is_dir():
        raise CliError(f"dataset root {root} does not exist or is not a folder")
    if source == "keypoints":
        from spot_edge.training.synthetic_dataset import load_keypoints

        keypoints = load_keypoints(root)
        images, src = sorted(keypoints), keypoint_source(keypoints)
    else:
        if openpose_dir is None:
            raise CliError("--source openpose-png needs --openpose-dir")
        openpose_dir = user_path(openpose_dir)
        if not openpose_dir.is_dir():
            raise CliError(f"--openpose-dir {openpose_dir} does not exist or is not a folder")
        images = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
                        if f.lower().endswith(IMAGE_EXTENSIONS) and not Path(d).is_relative_to(out))
        src = openpose_png_source(openpose_dir)
    if not images:
        raise CliError(f"no images found under {root}")
    with Progress(console=console) as progress:
        task = progress.add_task("pose maps", total=len(images))
        cache = build_heatmap_cache(out, root, images, src, map_size, dtype=dtype, source_name=source,
                                    progress=lambda done, total: progress.update(task, completed=done))
    typer.echo(json.dumps({"entries": len(cache), "map_size": cache.map_size, "folder": str(out)}))


if __name__ == "__main__":
    app()
