"""``spot-edge model``: inspect SPOT configurations (presets, parameter counts, a forward pass)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from spot_edge.cli.common import CliApp, check_range, console, optional_user_path, print_json, print_table
from spot_edge.cli.model_options import model_from_options

app = CliApp(help="Inspect SPOT configurations.", no_args_is_help=True)


def component_parameters(model) -> dict[str, int]:
    """Parameters per top-level component; the backbone split into its modality-specific paths
    (stem..layer2, both modalities) and the modality-shared layer3..layer4."""
    counts: dict[str, int] = {}
    for name, module in model.named_children():
        if name == "backbone":
            counts["backbone: modality-specific (2 paths)"] = sum(p.numel() for p in module.specific.parameters())
            counts["backbone: modality-shared"] = sum(p.numel() for n, p in module.named_parameters()
                                                      if not n.startswith("specific"))
        else:
            counts[name] = sum(p.numel() for p in module.parameters())
    return {k: v for k, v in counts.items() if v}


@app.command("presets")
def presets() -> None:
    """List the named presets (Table I indices 1-6, each also as '-small' for CPUs).

    Example:
      spot-edge model presets
    """
    from spot_edge.model import preset, preset_names

    table = Table("preset", "branches", "embedding", "backbone", "input")
    for name in preset_names():
        c = preset(name)
        table.add_row(name, ",".join(c.branches), c.resolved_embedding, c.backbone,
                      "x".join(map(str, c.preprocessing.size)))
    print_table(table)


@app.command("info")
def info(
    preset_name: str = typer.Option("spot", "--preset", "-p", help="Preset name (see spot-edge model presets)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="A SpotConfig YAML/JSON file instead of "
                                          "a preset."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="A spot-edge checkpoint (its stored "
                                              "config is used)."),
    forward: bool = typer.Option(True, help="Run one forward pass on random input and time it."),
    batch: int = typer.Option(1, help="Batch size of the forward pass."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Parameter counts per component and one timed forward pass.

    Example:
      spot-edge model info --preset spot --batch 2
    """
    import torch

    check_range("--batch", batch, 1)
    model = model_from_options(preset_name, optional_user_path(config), optional_user_path(checkpoint)).eval()
    c = model.config
    report = {"config_fingerprint": c.fingerprint(), "branches": list(c.branches),
              "embedding": c.resolved_embedding, "embedding_dim": c.embedding_dim,
              "parameters": model.num_parameters(), "components": component_parameters(model)}
    if forward:
        h, w = c.preprocessing.size
        hs, ws = c.preprocessing.heatmap_size
        images = torch.randn(batch, 3, h, w)
        heatmaps = torch.rand(batch, c.num_pose_maps, hs, ws)
        with torch.no_grad():
            start = time.perf_counter()
            emb = model(images, heatmaps, "infrared")
            report["forward_seconds"] = round(time.perf_counter() - start, 4)
        report["output_shape"] = list(emb.shape)
        report["output_norms"] = [round(float(n), 5) for n in emb.norm(dim=1)]
    if as_json:
        print_json(report)
        return
    size = "x".join(map(str, c.preprocessing.size))
    table = Table("component", "parameters", title=f"SPOT ({c.backbone}, {size})")
    for name, count in report["components"].items():
        table.add_row(name, f"{count:,}")
    table.add_row(Text("total", style="bold"), Text(f"{report['parameters']:,}", style="bold"))
    print_table(table)
    if forward:
        console.print(f"forward pass: batch {batch} -> embedding {tuple(report['output_shape'])}, "
                      f"L2 norms {report['output_norms']}, {report['forward_seconds']:.3f} s on CPU", soft_wrap=True)


__all__ = ["app", "presets", "info", "component_parameters"]
