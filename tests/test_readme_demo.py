"""The README's main command, exactly as a new user types it: ``spot-edge demo``.

Runs the installed console script as a subprocess in a fresh, empty working directory with the
default output folder and the default budget (under 10 minutes on 2 free cores), then checks the
results folder (tests/demo_results.py): the protocol metrics, the fp32 and int8 graphs, the parity
table, the pipeline's events on the int8 graphs, the pictures.
Marked ``slow``; it runs with the README's test command (``python -m pytest -q``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from demo_results import check_demo_results

TIMEOUT_S = 15 * 60            # under 10 minutes on 2 free cores; fail clearly, never hang


def _spot_edge() -> str:
    beside = Path(sys.executable).parent / "spot-edge"
    found = str(beside) if beside.is_file() else shutil.which("spot-edge")
    assert found, "the spot-edge console script is not installed (pip install -e .)"
    return found


@pytest.mark.slow
def test_spot_edge_demo_as_typed_in_an_empty_folder(tmp_path, tmp_path_factory):
    assert not any(tmp_path.iterdir())
    log = tmp_path_factory.mktemp("demo-log") / "demo.log"
    with open(log, "w") as out:
        try:
            done = subprocess.run([_spot_edge(), "demo"], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=TIMEOUT_S, env={**os.environ, "COLUMNS": "100"})
        except subprocess.TimeoutExpired:
            done = None
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    if done is None:
        pytest.fail(f"spot-edge demo did not finish in {TIMEOUT_S // 60} minutes (a busy machine?); "
                    f"last lines:\n{tail}")
    assert done.returncode == 0, f"spot-edge demo failed (exit {done.returncode}):\n{tail}"
    assert [p.name for p in tmp_path.iterdir()] == ["spot-edge-demo"], "the demo wrote outside its folder"
    check_demo_results(tmp_path / "spot-edge-demo")
