"""Jetson platform probes for ``spot-edge doctor``: the L4T / JetPack release, the board, the power
mode, and whether the Python environment uses JetPack's own stack (CUDA PyTorch, TensorRT, OpenCV
with GStreamer) -- with the fix for each problem found.

Facts are read from files under a root folder (``/`` on a device; a temporary folder in the
tests) and from commands through a ``run`` function (faked in the tests), so every probe runs
anywhere:

- ``/etc/nv_tegra_release``: ``# R36 (release), REVISION: 4.3, ...`` -> L4T 36.4.3;
- ``/var/lib/dpkg/status``: the ``nvidia-jetpack`` package's version -> JetPack 6.2 (else the
  L4T -> JetPack table below); ``/etc/apt/sources.list.d/nvidia-l4t-apt-source.list``: the
  release of NVIDIA's apt repository (``r36.4``);
- ``/proc/device-tree/model``: the board (``NVIDIA Jetson Orin Nano Engineering Reference
  Developer Kit Super``); ``/proc/meminfo``: its memory;
- ``nvpmodel -q`` (or ``/var/lib/nvpmodel/status`` with the names in ``/etc/nvpmodel.conf``):
  the power mode.

The Python stack comes from the doctor's report (:mod:`spot_edge.doctor`'s ``torch``,
``tensorrt`` and ``opencv`` probes: the GStreamer flag is read from ``cv2.getBuildInformation()``),
so each component is probed once. :func:`assess` is pure: facts + report -> findings and
warnings, each warning with its fix. :func:`probe` is what ``spot-edge doctor`` calls.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

#: L4T release -> JetPack release (NVIDIA's JetPack archive), for devices without the
#: ``nvidia-jetpack`` package (a flashed BSP, a container).
L4T_TO_JETPACK = {
    "36.4.4": "6.2.1", "36.4.3": "6.2", "36.4.0": "6.1", "36.3.0": "6.0", "36.2.0": "6.0 DP",
    "35.6.0": "5.1.4", "35.5.0": "5.1.3", "35.4.1": "5.1.2", "35.3.1": "5.1.1", "35.2.1": "5.1",
    "35.1.0": "5.0.2",
}
#: L4T major release -> JetPack major release, for a release missing from the table.
L4T_MAJOR_TO_JETPACK = {"36": "6", "35": "5", "34": "5", "32": "4"}
#: The L4T major release of JetPack 6, the supported install path (Python 3.10, TensorRT 10.3).
SUPPORTED_L4T_MAJOR = 36
JETPACK6_PYTHON = (3, 10)
MIN_TORCH = (2, 4)
#: NVIDIA's guide to its PyTorch wheels for Jetson (JetPack 6: torch 2.5 for CUDA 12.6).
TORCH_GUIDE = "https://docs.nvidia.com/deeplearning/frameworks/install-pytorch-jetson-platform/index.html"
OPENCV_DISTRIBUTIONS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                        "opencv-contrib-python-headless")

Runner = Callable[[Sequence[str]], "str | None"]


def run_command(argv: Sequence[str], timeout: float = 5.0) -> str | None:
    """stdout of a command that exited 0, else ``None`` (missing, failing or too slow)."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@dataclass
class JetsonFacts:
    """What the platform says about itself (``None``: not known)."""

    is_jetson: bool = False
    tegra_release: str | None = None
    l4t: str | None = None
    jetpack: str | None = None
    jetpack_source: str | None = None  # "dpkg" (nvidia-jetpack package) or "L4T table"
    apt_release: str | None = None
    model: str | None = None
    memory_gib: float | None = None
    power_mode: str | None = None
    power_mode_id: int | None = None
    max_power_mode: str | None = None
    max_power_mode_id: int | None = None
    python: str = field(default_factory=lambda: ".".join(map(str, sys.version_info[:3])))
    in_venv: bool = field(default_factory=lambda: sys.prefix != sys.base_prefix)
    system_site_packages: bool | None = None
    pip_opencv: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------- reading the facts


def _read(root: Path, path: str) -> str | None:
    try:
        return (root / path.lstrip("/")).read_text(errors="replace")
    except OSError:
        return None


def parse_tegra_release(text: str) -> str | None:
    """``# R36 (release), REVISION: 4.3, GCID: ...`` -> ``"36.4.3"``."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2).strip('.')}" if m else None


def jetpack_from_dpkg_status(text: str) -> str | None:
    """The ``nvidia-jetpack`` package's version (``6.2+b77`` -> ``"6.2"``) from dpkg's status file."""
    for block in text.split("\n\n"):
        if re.search(r"^Package: nvidia-jetpack\s*$", block, re.M) and re.search(r"^Status: .*installed", block, re.M):
            m = re.search(r"^Version:\s*(\S+)", block, re.M)
            if m:
                return m.group(1).split("+")[0].split("-")[0]
    return None


def jetpack_from_l4t(l4t: str | None) -> str | None:
    """The JetPack release of an L4T release (:data:`L4T_TO_JETPACK`), or ``None``."""
    if not l4t:
        return None
    parts = (l4t.split(".") + ["0", "0"])[:3]
    exact = L4T_TO_JETPACK.get(".".join(parts))
    if exact:
        return exact
    major = L4T_MAJOR_TO_JETPACK.get(parts[0])
    return f"{major}.x" if major else None


def parse_nvpmodel_query(text: str) -> tuple[str | None, int | None]:
    """``nvpmodel -q`` output (``NV Power Mode: 15W`` then the mode id) -> ``("15W", 0)``."""
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    if not m:
        return None, None
    rest = text[m.end():].split()
    return m.group(1), (int(rest[0]) if rest and rest[0].isdigit() else None)


def parse_nvpmodel_conf(text: str) -> dict[int, str]:
    """``< POWER_MODEL ID=0 NAME=15W >`` lines of ``/etc/nvpmodel.conf`` -> ``{0: "15W"}``."""
    return {int(i): name for i, name in re.findall(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)", text)}


def _venv_system_site_packages(prefix: Path) -> bool | None:
    try:
        text = (prefix / "pyvenv.cfg").read_text()
    except OSError:
        return None
    m = re.search(r"^include-system-site-packages\s*=\s*(\w+)", text, re.M)
    return None if m is None else m.group(1).lower() == "true"


def installed_distributions() -> dict[str, str]:
    """``{normalised name: version}`` of the installed Python distributions."""
    from importlib import metadata

    out = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            out[re.sub(r"[-_.]+", "-", name).lower()] = dist.version
    return out


def read_facts(root: str | Path = "/", run: Runner = run_command, distributions: Mapping[str, str] | None = None,
               python: str | None = None, in_venv: bool | None = None, venv_prefix: str | Path | None = None
               ) -> JetsonFacts:
    """The platform's facts (see the module docstring); every argument can be faked.

    Args:
        root: the file-system root the files are read under.
        run: runs a command, returns its stdout or ``None`` (:func:`run_command`).
        distributions: installed Python distributions (:func:`installed_distributions`).
        python: the Python version (``"3.10.12"``); ``in_venv``, ``venv_prefix``: the virtual
            environment (default: this interpreter's).
    """
    root = Path(root)
    f = JetsonFacts()
    if python is not None:
        f.python = python
    if in_venv is not None:
        f.in_venv = in_venv
    if f.in_venv:
        f.system_site_packages = _venv_system_site_packages(Path(venv_prefix if venv_prefix is not None
                                                                 else sys.prefix))
    tegra = _read(root, "/etc/nv_tegra_release")
    model = _read(root, "/proc/device-tree/model") or _read(root, "/sys/firmware/devicetree/base/model")
    compatible = _read(root, "/proc/device-tree/compatible") or ""
    f.model = model.replace("\x00", "").strip() or None if model else None
    f.is_jetson = tegra is not None or "nvidia,tegra" in compatible or "jetson" in (f.model or "").lower()
    if not f.is_jetson:
        return f
    if tegra:
        f.tegra_release = tegra.splitlines()[0].strip() if tegra.strip() else None
        f.l4t = parse_tegra_release(tegra)
    dpkg = _read(root, "/var/lib/dpkg/status")
    jetpack = jetpack_from_dpkg_status(dpkg) if dpkg else None
    if jetpack:
        f.jetpack, f.jetpack_source = jetpack, "dpkg"
    elif jetpack_from_l4t(f.l4t):
        f.jetpack, f.jetpack_source = jetpack_from_l4t(f.l4t), "L4T table"
    apt = _read(root, "/etc/apt/sources.list.d/nvidia-l4t-apt-source.list") or ""
    m = re.search(r"^\s*deb\s+\S+\s+(r\d+(?:\.\d+)*)\s", apt, re.M)
    f.apt_release = m.group(1) if m else None
    meminfo = _read(root, "/proc/meminfo") or ""
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", meminfo, re.M)
    f.memory_gib = round(int(m.group(1)) / 2**20, 1) if m else None
    modes = parse_nvpmodel_conf(_read(root, "/etc/nvpmodel.conf") or "")
    name, mode_id = parse_nvpmodel_query(run(["nvpmodel", "-q"]) or "")
    if name is None:  # nvpmodel missing or not allowed: its status file
        m = re.search(r"pmode:(\d+)", _read(root, "/var/lib/nvpmodel/status") or "")
        mode_id = int(m.group(1)) if m else None
        name = modes.get(mode_id) if mode_id is not None else None
    f.power_mode, f.power_mode_id = name, mode_id
    fastest = [(i, n) for i, n in sorted(modes.items()) if n.upper().startswith("MAXN")]
    if fastest:
        f.max_power_mode_id, f.max_power_mode = fastest[-1]
    dists = installed_distributions() if distributions is None else dict(distributions)
    f.pip_opencv = {name: dists[name] for name in OPENCV_DISTRIBUTIONS if name in dists}
    return f


# ----------------------------------------------------------------------------- the assessment


@dataclass(frozen=True)
class Advice:
    """A problem and its fix. ``severity``: ``"error"`` (a broken install: the build check of
    the containers fails on it), ``"warning"`` (works, but not as it should here) or ``"info"``."""

    problem: str
    fix: str
    severity: str = "error"


def _version_tuple(text: str | None) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text or "")[:3])


def _stack_advice(f: JetsonFacts, report: Mapping[str, Any]) -> list[Advice]:
    """OpenCV, PyTorch and TensorRT as JetPack provides them."""
    out: list[Advice] = []
    venv_hint = " in a virtual environment created with --system-site-packages" if f.in_venv else ""
    cv = report.get("opencv", {})
    if not cv.get("available"):
        reason = cv.get("reason", "not installed")
        fix = ("pip install 'numpy<2' (JetPack's OpenCV is built against NumPy 1.x)" if "numpy" in reason.lower()
               else f"sudo apt install nvidia-opencv (JetPack's OpenCV, with GStreamer){venv_hint}")
        out.append(Advice(f"cv2 cannot be imported ({reason})", fix))
    elif not cv.get("gstreamer"):
        shadow = ", ".join(f"{n} {v}" for n, v in f.pip_opencv.items())
        fix = (f"pip uninstall -y {' '.join(f.pip_opencv)} (so JetPack's cv2 is imported)" if f.pip_opencv
               else "sudo apt install nvidia-opencv (JetPack's OpenCV, with GStreamer)")
        out.append(Advice(f"the importable cv2 {cv.get('version', '')} has no GStreamer"
                          + (f" (pip's {shadow} shadows JetPack's)" if shadow else "")
                          + ": csi:// cameras and GStreamer pipelines will not open", fix))
    torch = report.get("torch", {})
    wheels = f"install NVIDIA's PyTorch wheels for JetPack {f.jetpack or '6'} ({TORCH_GUIDE})"
    if not torch.get("available"):
        out.append(Advice(f"PyTorch cannot be imported ({torch.get('reason', 'not installed')})", wheels))
    else:
        if not torch.get("cuda_build"):
            out.append(Advice(f"PyTorch {torch.get('version')} is a CPU-only build (PyPI's, not NVIDIA's)",
                              f"pip uninstall -y torch torchvision, then {wheels}"))
        elif not torch.get("cuda_available"):
            out.append(Advice(f"PyTorch has CUDA {torch.get('cuda_build')} but sees no GPU "
                              f"({torch.get('cuda_reason', 'no device')})",
                              "add the user to the video and render groups (sudo usermod -aG video,render "
                              "$USER, then log in again); in a container use --runtime nvidia", "warning"))
        if _version_tuple(torch.get("version"))[:2] < MIN_TORCH:
            out.append(Advice(f"spot-edge needs torch >= {'.'.join(map(str, MIN_TORCH))}, this is "
                              f"{torch.get('version')}", f"JetPack 6.1 or later, then {wheels}"))
    trt = report.get("tensorrt", {})
    if not trt.get("available"):
        out.append(Advice(f"TensorRT's Python bindings cannot be imported ({trt.get('reason', 'not installed')})",
                          f"sudo apt install python3-libnvinfer (part of nvidia-jetpack){venv_hint}"))
    return out


def assess(facts: JetsonFacts, report: Mapping[str, Any]) -> dict[str, Any]:
    """Findings and advice for a Jetson (pure: facts + the doctor's report).

    Returns ``{"is_jetson": bool, "findings": {...}, "advice": [Advice as dicts]}``; on other
    machines only ``is_jetson: False`` (nothing to advise).
    """
    f = facts
    if not f.is_jetson:
        return {"is_jetson": False, "findings": {}, "advice": []}
    findings = {"model": f.model, "l4t": f.l4t, "jetpack": f.jetpack, "jetpack_source": f.jetpack_source,
                "apt_release": f.apt_release, "memory_gib": f.memory_gib, "power_mode": f.power_mode,
                "power_mode_id": f.power_mode_id, "python": f.python, "in_venv": f.in_venv,
                "system_site_packages": f.system_site_packages, "pip_opencv": dict(f.pip_opencv)}
    advice: list[Advice] = []
    major = _version_tuple(f.l4t)[:1]
    if major and major[0] < SUPPORTED_L4T_MAJOR:
        advice.append(Advice(f"L4T {f.l4t} (JetPack {f.jetpack or '5 or older'}) is not supported: spot-edge "
                             "needs JetPack 6 (L4T R36: Python 3.10, TensorRT 10.3)",
                             "flash JetPack 6 (L4T R36) with NVIDIA's SDK Manager or the SD card image"))
    if major and major[0] == SUPPORTED_L4T_MAJOR and _version_tuple(f.python)[:2] != JETPACK6_PYTHON:
        advice.append(Advice(f"Python {f.python}: JetPack 6's TensorRT and OpenCV bindings are built for "
                             "Python 3.10", "create the environment with the system Python: /usr/bin/python3 -m "
                             "venv --system-site-packages .venv"))
    if f.in_venv and f.system_site_packages is False:
        advice.append(Advice("this virtual environment does not see JetPack's system packages (TensorRT, "
                             "OpenCV with GStreamer, NVIDIA's PyTorch)",
                             "recreate it with python3 -m venv --system-site-packages .venv (or set "
                             "include-system-site-packages = true in its pyvenv.cfg)"))
    advice.extend(_stack_advice(f, report))
    if f.max_power_mode and f.power_mode and f.power_mode != f.max_power_mode:
        advice.append(Advice(f"power mode {f.power_mode}: the fastest here is {f.max_power_mode}",
                             f"for full speed (and benchmarks): sudo nvpmodel -m {f.max_power_mode_id} && "
                             "sudo jetson_clocks", "info"))
    return {"is_jetson": True, "findings": findings, "advice": [asdict(a) for a in advice]}


def probe(report: Mapping[str, Any], root: str | Path = "/", run: Runner = run_command, **facts: Any
          ) -> dict[str, Any]:
    """What ``spot-edge doctor`` reports under ``"jetson"``: :func:`assess` of this machine (``root``,
    ``run`` and ``facts``: :func:`read_facts`'s arguments, for tests)."""
    return {"available": True, **assess(read_facts(root, run, **facts), report)}


def summary_rows(jetson: Mapping[str, Any]) -> list[tuple[str, bool, str]]:
    """``(component, ok, detail)`` rows for the doctor's table (none off a Jetson)."""
    if not jetson.get("is_jetson"):
        return []
    f = jetson.get("findings", {})
    release = f"L4T {f.get('l4t') or '?'}, JetPack {f.get('jetpack') or '?'}"
    board = f.get("model") or "unknown board"
    memory = f", {f['memory_gib']} GiB" if f.get("memory_gib") else ""
    power = f.get("power_mode") or "unknown (nvpmodel not readable)"
    errors = [a for a in jetson.get("advice", []) if a["severity"] == "error"]
    return [("Jetson", True, f"{board}{memory}; {release}"), ("power mode", True, power),
            ("JetPack stack", not errors, "as JetPack provides it" if not errors else
             f"{len(errors)} problem(s): see the advice below")]


def advice_lines(jetson: Mapping[str, Any], severities: Sequence[str] = ("error", "warning", "info")) -> list[str]:
    """One line per piece of advice: ``<problem>; fix: <fix>``."""
    return [f"{a['problem']}; fix: {a['fix']}" for a in jetson.get("advice", []) if a["severity"] in severities]


__all__ = ["JetsonFacts", "Advice", "read_facts", "assess", "probe", "summary_rows", "advice_lines", "run_command",
           "parse_tegra_release", "parse_nvpmodel_query", "parse_nvpmodel_conf", "jetpack_from_dpkg_status",
           "jetpack_from_l4t", "installed_distributions", "L4T_TO_JETPACK"]
