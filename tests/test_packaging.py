"""The one namespace: every package folder is listed in pyproject and imports as spot_edge.*."""

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def _declared():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return data["package-dir"], set(data["packages"])


def test_every_package_folder_is_declared():
    package_dir, packages = _declared()
    found = set()
    for dotted, folder in package_dir.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            name = ".".join([dotted, *rel.parts]) if rel.parts else dotted
            # a folder mapped explicitly elsewhere is declared there
            elsewhere = [k for k in package_dir if k != dotted and k.startswith(dotted)]
            if not any(name.startswith(k + ".") or name == k for k in elsewhere):
                found.add(name)
    missing = found - packages
    assert not missing, f"add these packages to pyproject.toml [tool.setuptools] packages: {sorted(missing)}"
    for name in packages:
        importlib.import_module(name)


def test_subpackages_live_in_top_level_folders():
    import spot_edge.cli
    import spot_edge.engines
    import spot_edge.kernels
    import spot_edge.training

    for mod, folder in [(spot_edge.training, "training"), (spot_edge.kernels, "kernels"),
                        (spot_edge.engines, "engines"), (spot_edge.cli, "cli")]:
        assert Path(mod.__file__).resolve().parent == ROOT / folder


def test_cli_help_and_version():
    from spot_edge import __version__
    from spot_edge.cli.app import app

    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    listed = result.output.split("Commands:")[1].split()
    for command in ("train", "evaluate", "make-synthetic", "build-heatmaps", "export-onnx", "build-engine",
                    "parity", "export-triton-repo", "embed", "run", "gallery", "match", "bench", "doctor",
                    "demo", "model", "pose", "kernels", "visualize"):
        assert command in listed, command


def test_console_script_installed():
    exe = Path(sys.executable).parent / "spot-edge"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "spot-edge" in out.stdout
