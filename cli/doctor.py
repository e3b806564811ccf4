"""``spot-edge doctor``: what this machine has (GPU, CUDA, TensorRT, ONNX Runtime, Triton, ...)
and which backends spot-edge will use.

Wire into the main app with ``app.command("doctor")(doctor.doctor)``.
"""

from __future__ import annotations

import typer
from rich.table import Table

from spot_edge.cli.common import CliApp, console, print_json


def doctor(as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON.")) -> None:
    """Report Python, PyTorch/CUDA, GPUs, TensorRT, ONNX Runtime, Triton, cuda-python, faiss, OpenCV
    (GStreamer), the kernel libraries, and the backends the 'auto' settings choose here.

    Never fails because a package is missing: missing pieces are listed with the reason.

    Examples:
      spot-edge doctor
      spot-edge doctor --json > machine.json
    """
    from spot_edge.doctor import collect, summary_rows

    report = collect()
    if as_json:
        print_json(report)
        return
    table = Table("component", "", "details", title="spot-edge doctor", title_justify="left")
    for name, ok, detail in summary_rows(report):
        table.add_row(name, "[green]yes[/]" if ok else "[red]no[/]", detail)
    console.print(table)
    defaults = report.get("defaults", {})
    if "error" in defaults:
        console.print(f"[red]could not resolve the default backends:[/] {defaults['error']}")
        return
    lines = Table("setting", "choice", "why", title="defaults ('auto')", title_justify="left")
    emb = defaults["embedder"]
    lines.add_row("device", defaults["device"], "")
    lines.add_row("embedding backend", str(emb["backend"]), emb["reason"])
    if defaults.get("onnxruntime_providers"):
        lines.add_row("ONNX Runtime providers", ", ".join(defaults["onnxruntime_providers"]), "in order of preference")
    labels = {"tensorrt_engine": "a TensorRT engine", "onnx_model": "an ONNX model",
              "checkpoint_or_model": "a checkpoint"}
    for kind, choice in defaults.get("embedder_by_source", {}).items():
        lines.add_row(f"  for {labels.get(kind, kind)}", choice, "create_embedder(source) picks it")
    lines.add_row("kernel backend", defaults["kernels"]["backend"], defaults["kernels"]["reason"])
    lines.add_row("pose network", defaults["pose"]["device"], "")
    lines.add_row("gallery search", defaults["gallery_search"]["backend"], defaults["gallery_search"]["reason"])
    lines.add_row("camera input", defaults["camera_input"], "")
    console.print(lines)


app = CliApp(help="Report what this machine has and which backends spot-edge will use.")
app.command("doctor")(doctor)

__all__ = ["doctor", "app"]
