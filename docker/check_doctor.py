"""The containers' build check: reads ``spot-edge doctor --json`` on stdin and fails (exit code 1,
one line per problem) when the image is not what spot-edge is meant to use there.

    spot-edge doctor --json | python3 docker/check_doctor.py --jetson
    spot-edge doctor --json | python3 docker/check_doctor.py --server

Both: TensorRT's Python bindings import; PyTorch is a CUDA build; the CUDA kernel library and the
TensorRT plugin library were built. Jetson also: OpenCV has GStreamer (``csi://`` cameras), and
the doctor's Jetson advice has no error (:mod:`spot_edge.jetson`). Nothing here needs a GPU at
build time (``torch.cuda.is_available()`` is not required).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def problems(report: dict[str, Any], jetson: bool) -> list[str]:
    """What is wrong with the image, from the doctor's JSON report (empty: all good)."""
    found = []
    trt = report.get("tensorrt", {})
    if not trt.get("available"):
        found.append(f"TensorRT's Python bindings do not import: {trt.get('reason', 'missing')}")
    torch = report.get("torch", {})
    if not torch.get("available"):
        found.append(f"PyTorch does not import: {torch.get('reason', 'missing')}")
    elif not torch.get("cuda_build"):
        found.append(f"PyTorch {torch.get('version')} is a CPU-only build")
    kernels = report.get("kernels", {})
    if not kernels.get("cuda_library"):
        found.append(f"the CUDA kernel library was not built or does not load: "
                     f"{kernels.get('cuda_library_reason') or kernels.get('reason', 'missing')}")
    if not kernels.get("trt_plugin_library"):
        found.append("the TensorRT plugin library was not built (CMake did not find TensorRT)")
    if jetson:
        cv = report.get("opencv", {})
        if not cv.get("available"):
            found.append(f"OpenCV does not import: {cv.get('reason', 'missing')}")
        elif not cv.get("gstreamer"):
            found.append(f"OpenCV {cv.get('version')} has no GStreamer (csi:// cameras would not open)")
        advice = report.get("jetson", {}).get("advice", [])
        found += [f"{a['problem']} (fix: {a['fix']})" for a in advice if a.get("severity") == "error"]
    return found


def main(argv: list[str] | None = None, stdin=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--jetson", action="store_true", help="the Jetson image")
    target.add_argument("--server", action="store_true", help="the GPU server image")
    args = parser.parse_args(argv)
    try:
        report = json.load(stdin or sys.stdin)
    except json.JSONDecodeError as exc:
        print(f"check_doctor: the input is not spot-edge doctor --json output ({exc})", file=sys.stderr)
        return 2
    found = problems(report, jetson=args.jetson)
    for line in found:
        print(f"check_doctor: {line}", file=sys.stderr)
    if not found:
        print("check_doctor: ok")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
