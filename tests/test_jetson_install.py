"""The JetPack 6 install path (``requirements/jetson.txt``, installed with ``pip install --no-deps``):
it never names a package JetPack provides (torch, torchvision, OpenCV, TensorRT, NVIDIA's CUDA
wheels), pins everything exactly, keeps NumPy 1.x, and covers every dependency of pyproject.toml
and every entry of ``jetson.in``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
#: What JetPack (or NVIDIA's wheels) provides on the device; pip must never install these there.
FROM_JETPACK = re.compile(r"^(torch|torchvision|torchaudio|opencv-.*|tensorrt.*|nvidia-.*|cuda-.*|onnxruntime-gpu)$")


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def pins() -> dict[str, Version]:
    out = {}
    for line in _lines(ROOT / "requirements" / "jetson.txt"):
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==" and not req.marker and not req.extras, \
            f"jetson.txt must pin exactly (name==version): {line}"
        assert _name(req.name) not in out, f"{req.name} pinned twice"
        out[_name(req.name)] = Version(spec[0].version)
    return out


def test_nothing_jetpack_provides_is_installed_by_pip():
    assert not [n for n in pins() if FROM_JETPACK.match(n)]
    assert not [n for n in (Requirement(r).name for r in _lines(ROOT / "requirements" / "jetson.in"))
                if FROM_JETPACK.match(_name(n))]


def test_numpy_stays_1_x_for_jetpacks_opencv():
    assert pins()["numpy"] < Version("2")


def test_every_dependency_of_the_package_is_pinned():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {_name(Requirement(d).name) for d in deps} - {n for n in map(_name, (Requirement(d).name for d in deps))
                                                         if FROM_JETPACK.match(n)}
    missing = wanted - set(pins())
    assert not missing, f"pyproject.toml dependencies missing from requirements/jetson.txt: {sorted(missing)}"


def test_the_pins_satisfy_jetson_in():
    pinned = pins()
    for line in _lines(ROOT / "requirements" / "jetson.in"):
        req = Requirement(line)
        assert _name(req.name) in pinned, f"{req.name} of jetson.in is not pinned in jetson.txt"
        assert req.specifier.contains(pinned[_name(req.name)], prereleases=True), \
            f"{req.name}=={pinned[_name(req.name)]} does not satisfy jetson.in's {req}"
