"""``spot-edge kernels``: build the native kernels and show which backends run here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.text import Text
from rich.table import Table

from spot_edge.cli.common import CliApp, console, friendly_errors, print_json

app = CliApp(help="Custom kernels (fused structure attention, part pooling): build and inspect.",
                  no_args_is_help=True)


@app.command("info")
def info(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show the kernel backends available here and why the others are not.

    backend="auto" also checks each call's sizes against the device's limits.

    Example: spot-edge kernels info
    """
    import torch

    from spot_edge import kernels
    from spot_edge.device import resolve_device
    from spot_edge.kernels import cuda_ops
    from spot_edge.kernels.device_info import device_limits

    with friendly_errors():
        device = resolve_device("auto")
        if device.type == "cuda":
            limits = device_limits(device)
            described = (f"{limits.name} (sm_{limits.arch}, {limits.multiprocessors} SMs, "
                         f"{limits.shared_per_block_optin // 1024} KB shared memory per block)")
        else:
            described = "cpu (no CUDA GPU visible)"
        rows = {
            "device": described,
            "reference": "available",
            "triton": kernels.triton_unavailable_reason(torch.device("cuda")) or "available",
            "cuda": kernels.cuda_unavailable_reason(torch.device("cuda")) or "available",
            "cuda library": cuda_ops.library_path() or "not loaded",
            "backends on this device": ", ".join(kernels.available_backends(device)),
        }
        if cuda_ops.library_path() is not None:
            driver, runtime = cuda_ops.versions()
            rows["cuda runtime (library) / driver"] = (f"{runtime // 1000}.{runtime % 1000 // 10} / "
                                                       f"{driver // 1000}.{driver % 1000 // 10}" if driver else
                                                       f"{runtime // 1000}.{runtime % 1000 // 10} / no driver")
        if as_json:
            print_json(rows)
            return
        table = Table("item", "status")
        for key, value in rows.items():
            table.add_row(key, value)
        console.print(table)


@app.command("build")
def build(
    build_dir: Path = typer.Option(Path("build"), "--build-dir", help="CMake build directory."),
    arch: str = typer.Option("87;90", "--arch", help="CMAKE_CUDA_ARCHITECTURES, e.g. '87' for Orin, '90' for H100."),
    tensorrt_root: Optional[Path] = typer.Option(None, "--tensorrt-root",
                                                 help="TensorRT prefix; builds the IPluginV3 plugins."),
    jobs: int = typer.Option(os.cpu_count() or 2, "--jobs", "-j", help="Parallel compile jobs."),
) -> None:
    """Build libspot_edge_kernels.so (and the TensorRT plugins) with CMake + nvcc.

    Example: spot-edge kernels build --arch 87 --tensorrt-root /usr
    """
    from spot_edge.kernels.build import build_kernels

    with friendly_errors():
        with console.status("building the CUDA kernels (cmake + nvcc)...") as status:
            outputs = build_kernels(build_dir.resolve(), arch, tensorrt_root, jobs,
                                    log=lambda line: status.update(Text(line, style="dim")))
        console.print(f"kernels: {outputs['kernels']}")
        console.print(f"TensorRT plugins: {outputs['plugins'] or 'not built (TensorRT not found; pass --tensorrt-root)'}")
        if build_dir.resolve() != Path(__file__).resolve().parents[1] / "build":
            console.print(f"set SPOT_EDGE_KERNELS_LIB={outputs['kernels']} so spot_edge.kernels finds it")
