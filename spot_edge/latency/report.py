"""The benchmark report's outputs: the datacenter targets, a PNG chart, JSON and Markdown."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from spot_edge.atomic import atomic_path, atomic_write_json
from spot_edge.latency.settings import TARGETS

__all__ = ["check_targets", "plot_report", "write_report", "markdown_table"]


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The datacenter targets, each with ``measured`` and ``met`` when the report holds the
    configuration they are about (PyTorch, CUDA, fp16, CUDA graphs, 288x144 input, the batch),
    else ``measured: null`` and a note saying why."""
    out = []
    size_ok = report["model"]["input_size"] == [288, 144]
    for description, batch, metric, comparison, threshold in TARGETS:
        entry = {"target": description, "configuration": "pytorch, CUDA, fp16, CUDA graphs, 288x144",
                 "threshold": threshold, "measured": None, "met": None}
        match = [r for r in report["results"] if r["stage"] == "embed" and r["backend"] == "pytorch"
                 and r["precision"] == "fp16" and r.get("cuda_graphs") and r["batch"] == batch
                 and str(r.get("device", "")).startswith("cuda")]
        if match and size_ok:
            r = match[0]
            value = r["latency_ms"]["median"] if metric == "latency_median_ms" else r["throughput_per_s"]
            entry["measured"] = value
            entry["met"] = bool(value < threshold if comparison == "<" else value > threshold)
        else:
            entry["note"] = ("not measured: needs --device cuda --precision fp16 --cuda-graphs, batch "
                             f"{batch}, a 288x144 model" + ("" if size_ok else
                                                              f" (this model is {report['model']['input_size']})"))
        out.append(entry)
    return out


def _label(r: dict[str, Any]) -> str:
    parts = [r["stage"], r["backend"], r["precision"]]
    if r.get("cuda_graphs"):
        parts.append("graphs")
    return f"{' '.join(parts)}  b={r['batch']}"


def _title(report: dict[str, Any]) -> str:
    m = report["machine"]
    where = m.get("gpu") or m.get("processor") or "cpu"
    size = "x".join(map(str, report["model"]["input_size"]))
    return f"{report['model']['backbone']} {size} on {where} ({m['device']}, {m['torch_threads']} threads)"


def plot_report(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Bar chart PNG (written atomically): median latency (whiskers to p90) and throughput per
    measurement; returns the path."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    results = report["results"]
    path = Path(path)
    fig = Figure(figsize=(11, 1.6 + 0.32 * max(1, len(results))), dpi=100)
    FigureCanvasAgg(fig)
    ax_lat, ax_thr = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(results))
    medians = np.array([r["latency_ms"]["median"] for r in results], np.float64)
    upper = np.array([r["latency_ms"]["p90"] for r in results], np.float64) - medians
    throughput = np.array([r["throughput_per_s"] for r in results], np.float64)
    stages = sorted({r["stage"] for r in results})
    cmap = colormaps["tab10"]
    colours = [cmap(stages.index(r["stage"]) % 10) for r in results]
    if results:
        ax_lat.barh(y, medians, xerr=[np.zeros_like(upper), np.maximum(upper, 0)], color=colours, capsize=2)
        ax_thr.barh(y, throughput, color=colours)
        ax_lat.set_yticks(y, [_label(r) for r in results], fontsize=7)
        ax_lat.invert_yaxis()
    ax_lat.set_xlabel("latency, ms (median, whisker to p90)")
    ax_thr.set_xlabel("throughput, items/s")
    for ax, values in ((ax_lat, medians), (ax_thr, throughput)):
        ax.grid(axis="x", alpha=0.3)
        if results and values.min() > 0 and values.max() / values.min() > 50:
            ax.set_xscale("log")
    fig.suptitle(f"spot-edge bench: {_title(report)}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def write_report(report: dict[str, Any], out_dir: str | os.PathLike, name: str = "bench") -> tuple[Path, Path]:
    """Write ``<out_dir>/<name>.json`` and ``<out_dir>/<name>.png`` (atomically); returns both paths."""
    out_dir = Path(out_dir)
    json_path = atomic_write_json(out_dir / f"{name}.json", report)
    return json_path, plot_report(report, out_dir / f"{name}.png")


def markdown_table(report: dict[str, Any]) -> str:
    """The results as a Markdown table (for the README)."""
    lines = ["| stage | backend | precision | batch | median ms | p90 ms | p99 ms | items/s |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        lat = r["latency_ms"]
        backend = r["backend"] + (" + graphs" if r.get("cuda_graphs") else "")
        lines.append(f"| {r['stage']} | {backend} | {r['precision']} | {r['batch']} | {lat['median']:.3f} | "
                     f"{lat['p90']:.3f} | {lat['p99']:.3f} | {r['throughput_per_s']:,.0f} |")
    return "\n".join(lines)
