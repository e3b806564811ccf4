"""The package runs on Python 3.10 (JetPack 6's Python; ``requires-python = ">=3.10"``): vermin
checks the syntax and the standard-library names used by every source folder against 3.10, and
the check itself is shown to catch 3.11-only code."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Everything that is installed or run as part of spot-edge (tests run on CI's Python only).
CHECKED = ("spot_edge", "training", "kernels", "engines", "cli", "benchmarks", "docker")
TARGET = "3.10"


def vermin(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("vermin") is None:
        pytest.fail("vermin is not installed: it comes with the dev extra (pip install -e '.[dev]')")
    command = [sys.executable, "-c", "import sys; from vermin import main; sys.exit(main())",
               f"-t={TARGET}-", "--no-tips", "--violations", "--eval-annotations", "--no-parse-comments", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_sources_need_no_more_than_python_3_10():
    result = vermin(*CHECKED)
    assert result.returncode == 0, f"code that needs Python > {TARGET}:\n{result.stdout}\n{result.stderr}"


def test_the_check_catches_python_3_11_code(tmp_path):
    (tmp_path / "new.py").write_text(
        "import tomllib\nfrom datetime import UTC\n"
        "try:\n    pass\nexcept* ValueError:\n    pass\n")
    result = vermin(str(tmp_path / "new.py"), cwd=tmp_path)
    assert result.returncode != 0
    assert "tomllib" in result.stdout and "except*" in result.stdout
