"""``spot-edge model``: inspect SPOT configurations (presets, parameter counts, a forward pass)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from spot_edge.cli.common import CliApp, console, friendly_errors, print_json

app = CliApp(help="Inspect SPOT configurations.", no_args_is_help=True)


def _components(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, module in model.named_children():
        if name == "backbone":
            counts["backbone: modality-specific (2 paths)"] = sum(p.numel() for p in module.specific.parameters())
            counts["backbone: modality-shared"] = sum(p.numel() for n, p in module.named_parameters() if not n.startswith("specific"))
        else:
            counts[name] = sum(p.numel() for p in module.parameters())
    return {k: v for k, v in counts.items() if v}


@app.command("presets")
def presets() -> None:
    """List the named presets (Table I indices 1-6, each also as '-small' for CPUs)."""
    from spot_edge.model import preset, preset_names

    table = Table("preset", "branches", "embedding", "backbone", "input")
    for name in preset_names():
        c = preset(name)
        table.add_row(name, ",".join(c.branches), c.resolved_embedding, c.backbone, "x".join(map(str, c.preprocessing.size)))
    console.print(table)


@app.command("info")
def info(
    preset_name: str = typer.Option("spot", "--preset", "-p", help="Preset name (see `spot-edge model presets`)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="A SpotConfig YAML/JSON file instead of a preset."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="A spot-edge checkpoint (its stored config is used)."),
    forward: bool = typer.Option(True, help="Run one forward pass on random input and time it."),
    batch: int = typer.Option(1, help="Batch size of the forward pass."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Parameter counts per component and one timed forward pass.

    Example: spot-edge model info --preset spot --batch 2
    """
    import torch

    from spot_edge.model import SPOT, SpotConfig, load_checkpoint, preset

    with friendly_errors():
        if checkpoint is not None:
            model = load_checkpoint(checkpoint)
        else:
            model = SPOT(SpotConfig.load(config) if config else preset(preset_name))
        model.eval()
        c = model.config
        report = {"config_fingerprint": c.fingerprint(), "branches": list(c.branches),
                  "embedding": c.resolved_embedding, "embedding_dim": c.embedding_dim,
                  "parameters": model.num_parameters(), "components": _components(model)}
        if forward:
            h, w = c.preprocessing.size
            images = torch.randn(batch, 3, h, w)
            heatmaps = torch.rand(batch, c.num_pose_maps, h // 8, w // 8)
            with torch.no_grad():
                start = time.perf_counter()
                emb = model(images, heatmaps, "infrared")
                report["forward_seconds"] = round(time.perf_counter() - start, 4)
            report["output_shape"] = list(emb.shape)
            report["output_norms"] = [round(float(n), 5) for n in emb.norm(dim=1)]
    if as_json:
        print_json(report)
        return
    table = Table("component", "parameters", title=f"SPOT ({c.backbone}, {'x'.join(map(str, c.preprocessing.size))})")
    for name, count in report["components"].items():
        table.add_row(name, f"{count:,}")
    table.add_row("[bold]total", f"[bold]{report['parameters']:,}")
    console.print(table)
    if forward:
        console.print(f"forward pass: batch {batch} -> embedding {tuple(report['output_shape'])}, "
                      f"L2 norms {report['output_norms']}, {report['forward_seconds']:.3f} s on CPU")
