"""``spot-edge`` training commands: train, evaluate, make-synthetic, build-heatmaps.

Wire into the main app with ``app.add_typer(train.app)`` or register the functions one by one.
For multi-GPU / multi-node training launch this module with torchrun::

    torchrun --nproc_per_node 8 -m spot_edge.cli.train train --config training/configs/sysu-spot.yaml
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from spot_edge.cli.common import CliApp

app = CliApp(help="Train and evaluate SPOT; generate the synthetic dataset.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = text.lower().split("x")
        return int(h), int(w)
    except ValueError:
        raise typer.BadParameter(f"size must look like HxW (e.g. 128x64), got {text!r}") from None


@app.command("train")
def train_command(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Training config YAML (training/configs/*.yaml)."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Override a config value: section.key=value (repeatable)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from <out_dir>/checkpoints/last.pt when present."),
    max_epochs: Optional[int] = typer.Option(None, help="Stop after this many epochs in this call (resume later)."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Run the test protocol at the end."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Train a SPOT model (checkpoint every epoch, exact resume, metrics.jsonl + metrics.png).

    Example (CPU, synthetic set):

        spot-edge make-synthetic data/synthetic-sysu
        spot-edge train -c training/configs/synthetic-small.yaml --set optim.epochs=4

    Multi-GPU: torchrun --nproc_per_node 4 -m spot_edge.cli.train train -c training/configs/sysu-spot.yaml
    """
    from spot_edge.training.config import load_train_config
    from spot_edge.training.loop import train

    try:
        cfg = load_train_config(config, set_)
        summary = train(cfg, resume=resume, max_epochs=max_epochs, show_progress=not quiet, evaluate_at_end=evaluate)
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as exc:
        _fail(exc)
        return
    if quiet and "results" in summary:
        from spot_edge.training.evaluation import format_table

        typer.echo(format_table(summary["results"]))
    typer.echo(f"run folder: {summary['out_dir']} ({summary['epochs_done']} epochs done)")


@app.command("evaluate")
def evaluate_command(
    checkpoint: str = typer.Option(..., "--checkpoint", help="model.safetensors; for RegDB a pattern with {split}, "
                                                             "e.g. runs/regdb/split{split}/model.safetensors"),
    dataset: str = typer.Option("sysu", help="sysu or regdb."),
    root: Path = typer.Option(..., help="Dataset root."),
    heatmap_cache: Optional[Path] = typer.Option(None, help="Pose-map cache covering the test images "
                                                            "(needed unless the model is the baseline)."),
    mode: str = typer.Option("both", help="SYSU search mode: all, indoor or both."),
    trials: int = typer.Option(10, help="SYSU gallery trials (10 in the protocol)."),
    splits: str = typer.Option("1-10", help="RegDB splits, e.g. 1-10 or 1,3."),
    device: str = typer.Option("cpu", help="Torch device."),
    output: Optional[Path] = typer.Option(None, help="Write the results as JSON here."),
) -> None:
    """Evaluate with the community protocol (specs/evaluation.md) and print a paper-like table.

    Examples:

        spot-edge evaluate --checkpoint runs/sysu/model.safetensors --root data/SYSU-MM01 \\
            --heatmap-cache data/SYSU-MM01/heatmap_cache_36x18_uint8

        spot-edge evaluate --dataset regdb --root data/RegDB \\
            --checkpoint 'runs/regdb/split{split}/model.safetensors' --heatmap-cache data/RegDB/cache
    """
    from spot_edge.training.evaluation import checkpoint_embedder, evaluate_regdb, evaluate_sysu, format_table, save_results
    from spot_edge.training.heatmap_cache import HeatmapCache

    try:
        cache = HeatmapCache(heatmap_cache, root) if heatmap_cache else None
        if dataset == "sysu":
            modes = ["all", "indoor"] if mode == "both" else [mode]
            embed = checkpoint_embedder(checkpoint, cache, device=device)
            results = {f"SYSU-MM01 {m}-search": evaluate_sysu(embed, root, m, range(trials)) for m in modes}
        elif dataset == "regdb":
            split_list = _parse_splits(splits)
            if "{split}" not in checkpoint and len(split_list) > 1:
                raise ValueError("RegDB evaluates the model trained on each split: give a --checkpoint pattern with {split}")
            found = evaluate_regdb(lambda s: checkpoint_embedder(checkpoint.format(split=s), cache, device=device),
                                   root, split_list)
            results = {f"RegDB {d}": r for d, r in found.items()}
        else:
            raise ValueError(f"unknown dataset {dataset!r}; use sysu or regdb")
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as exc:
        _fail(exc)
        return
    typer.echo(format_table(results))
    if output:
        save_results(results, output)
        typer.echo(f"results written to {output}")


def _parse_splits(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part.strip():
            out.append(int(part))
    return out


@app.command("make-synthetic")
def make_synthetic_command(
    out: Path = typer.Argument(..., help="Output folder (SYSU-MM01 layout)."),
    train_ids: int = typer.Option(120, "--train-ids", help="Training identities."),
    val_ids: int = typer.Option(20, "--val-ids", help="Validation identities (merged into training by the protocol)."),
    test_ids: int = typer.Option(60, "--test-ids", help="Test identities."),
    images: str = typer.Option("4-8", help="Images per identity and camera, a range lo-hi."),
    size: str = typer.Option("128x64", help="Image size HxW."),
    seed: int = typer.Option(0, help="Seed (the output is a pure function of it)."),
    workers: int = typer.Option(2, help="Processes."),
) -> None:
    """Generate the synthetic cross-modality ReID set with ground-truth keypoints.

    Example: spot-edge make-synthetic data/synthetic-sysu --train-ids 120 --test-ids 60
    """
    from rich.progress import Progress

    from spot_edge.training.synthetic_dataset import SyntheticConfig, generate_sysu_like

    try:
        lo, hi = (int(x) for x in images.split("-")) if "-" in images else (int(images), int(images))
        h, w = _parse_size(size)
        cfg = SyntheticConfig(num_train=train_ids, num_val=val_ids, num_test=test_ids, images_per_camera=(lo, hi),
                              height=h, width=w, seed=seed)
        with Progress() as progress:
            task = progress.add_task("rendering identities", total=train_ids + val_ids + test_ids)
            summary = generate_sysu_like(out, cfg, workers=workers,
                                         progress=lambda done, total: progress.update(task, completed=done))
    except (ValueError, FileExistsError, OSError) as exc:
        _fail(exc)
        return
    typer.echo(f"{summary['num_images']} images of {summary['num_ids']} identities written to {out}")


@app.command("build-heatmaps")
def build_heatmaps_command(
    root: Path = typer.Option(..., help="Dataset root."),
    out: Path = typer.Option(..., help="Cache folder to write."),
    source: str = typer.Option("keypoints", help="keypoints (synthetic ground truth) or openpose-png."),
    openpose_dir: Optional[Path] = typer.Option(None, help="Folder of <name>_pose_heatmaps.png files (openpose-png)."),
    size: str = typer.Option("32x16", help="Stored map size HxW (e.g. stride 8 of the network input)."),
    dtype: str = typer.Option("uint8", help="uint8 or float16."),
) -> None:
    """Build the pose-map cache of every image of a dataset tree.

    Example: spot-edge build-heatmaps --root data/synthetic-sysu --out data/synthetic-sysu/heatmap_cache_32x16_uint8
    """
    import os

    from rich.progress import Progress

    from spot_edge.training.datasets import IMAGE_EXTENSIONS
    from spot_edge.training.heatmap_cache import build_heatmap_cache, keypoint_source, openpose_png_source

    try:
        if source == "keypoints":
            from spot_edge.training.synthetic_dataset import load_keypoints

            keypoints = load_keypoints(root)
            images, src = sorted(keypoints), keypoint_source(keypoints)
        elif source == "openpose-png":
            if openpose_dir is None:
                raise ValueError("--source openpose-png needs --openpose-dir")
            images = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs
                            if f.lower().endswith(IMAGE_EXTENSIONS) and not os.path.abspath(d).startswith(os.path.abspath(out)))
            src = openpose_png_source(openpose_dir)
        else:
            raise ValueError(f"unknown source {source!r}; use keypoints or openpose-png")
        with Progress() as progress:
            task = progress.add_task("pose maps", total=len(images))
            cache = build_heatmap_cache(out, root, images, src, _parse_size(size), dtype=dtype, source_name=source,
                                        progress=lambda done, total: progress.update(task, completed=done))
    except (ValueError, FileNotFoundError, RuntimeError, KeyError) as exc:
        _fail(exc)
        return
    typer.echo(json.dumps({"entries": len(cache), "map_size": cache.map_size, "folder": str(out)}))


if __name__ == "__main__":
    app()
