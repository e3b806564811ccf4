"""``benchmarks/gpu_checks.sh --dry-run``: every step of the GPU check up to the first GPU call works
here (offline install command, kernel build, collection of the GPU tests, benchmark plans, the
end-to-end bench's command line), results land in $OUT, and any failing step fails the run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kernels_build

SCRIPT = kernels_build.ROOT / "benchmarks" / "gpu_checks.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and timeout")


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, OUT="results", PYTHON=sys.executable)
    environment.update(env)
    environment.pop("SPOT_EDGE_KERNELS_LIB", None)
    # From another working directory, with a relative OUT, as a user would run it.
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.skipif(kernels_build.toolchain_missing() is not None, reason=str(kernels_build.toolchain_missing()))
def test_dry_run_passes_every_step(tmp_path):
    build = kernels_build.shared_build()          # reuse the tests' build (same architectures)
    with kernels_build.build_lock():
        proc = _run(tmp_path, "--dry-run", "--arch", kernels_build.ARCHITECTURES, "--build-dir", str(build.directory))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    summary = (tmp_path / "results" / "summary.txt").read_text()
    rows = [line.split(None, 1) for line in summary.splitlines() if line.strip() and not line.startswith("(")]
    steps = {name: result for name, result in rows[1:]}          # rows[0] is the header
    assert set(steps) == {"install", "import", "configure", "build", "gpu-tests", "kernels", "end-to-end"}, summary
    assert all(result == "ok" for result in steps.values()), summary
    collected = (tmp_path / "results" / "gpu-tests.log").read_text()
    assert "test_kernels_gpu.py::" in collected
    assert "test_kernels_cuda_build" not in collected          # the marker keeps the build tests out
    assert (tmp_path / "results" / "bench-dry" / "bench.json").is_file()


def test_a_failing_step_fails_the_run(tmp_path):
    proc = _run(tmp_path, "--dry-run", PYTHON="false")
    assert proc.returncode != 0
    summary = (tmp_path / "results" / "summary.txt").read_text()
    assert "install" in summary and "FAILED" in summary


def test_unknown_option_is_refused(tmp_path):
    proc = _run(tmp_path, "--fast")
    assert proc.returncode == 2 and "unknown option --fast" in proc.stderr
