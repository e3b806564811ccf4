"""``spot-edge doctor``: what this machine has and which backends spot-edge will use."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from spot_edge.cli.common import CliApp, console, note, print_json, print_table, warn

app = CliApp(help="Report what this machine has and which backends spot-edge will use.")

_SOURCE_LABELS = {"tensorrt_engine": "a TensorRT engine", "onnx_model": "an ONNX model", "checkpoint": "a checkpoint"}


def _yes_no(ok: bool) -> Text:
    return Text("yes", style="green") if ok else Text("no", style="red")


@app.command("doctor")
def doctor(as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON.")) -> None:
    """Report what this machine has and which backends spot-edge will use.

    Lists Python, PyTorch/CUDA, GPUs, TensorRT, ONNX Runtime, Triton, cuda-python, faiss, OpenCV
    (GStreamer) and the kernel libraries, then what the 'auto' settings choose here. Never fails
    because a package is missing: missing pieces are listed with the reason.

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
        table.add_row(name, _yes_no(ok), detail)
    print_table(table)
    from spot_edge.jetson import advice_lines

    for line in advice_lines(report.get("jetson", {}), ("error", "warning")):
        warn(line)
    for line in advice_lines(report.get("jetson", {}), ("info",)):
        note(line)
    defaults = report.get("defaults", {})
    if "error" in defaults:
        console.print(Text.assemble(("could not resolve the default backends: ", "red"), defaults["error"]),
                      soft_wrap=True)
        return
    lines = Table("setting", "choice", "why", title="defaults ('auto')", title_justify="left")
    lines.add_row("device", defaults["device"], "")
    if defaults.get("onnxruntime_providers"):
        lines.add_row("ONNX Runtime providers", ", ".join(defaults["onnxruntime_providers"]), "in order of preference")
    for kind, choice in defaults.get("embedder_by_source", {}).items():
        runs = Text(choice["backend"], style=None if choice["runs_here"] else "red")
        lines.add_row(f"embedder for {_SOURCE_LABELS.get(kind, kind)}", runs, choice["detail"])
    lines.add_row("kernel backend", defaults["kernels"]["backend"], defaults["kernels"]["reason"])
    lines.add_row("pose network", defaults["pose"]["device"], "")
    lines.add_row("gallery search", defaults["gallery_search"]["backend"], defaults["gallery_search"]["reason"])
    lines.add_row("camera input", defaults["camera_input"], "")
    print_table(lines)


__all__ = ["app", "doctor"]
