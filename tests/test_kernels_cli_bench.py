"""The kernels CLI and the benchmark's CPU-only behaviour."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_kernels", ROOT / "benchmarks" / "bench_kernels.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_kernels"] = module      # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_cli_info_reports_backends():
    from spot_edge.cli.kernels import app
    result = CliRunner().invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["reference"] == "available"
    assert "reference" in data["backends on this device"]


def test_cli_build_help_has_example():
    from spot_edge.cli.kernels import app
    result = CliRunner().invoke(app, ["build", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


def test_build_refuses_missing_tensorrt_root(tmp_path, monkeypatch):
    from spot_edge.kernels import build
    monkeypatch.setattr(build.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    with pytest.raises(FileNotFoundError, match="TensorRT root"):
        build.build_kernels(tmp_path / "b", tensorrt_root=tmp_path / "missing")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_benchmark_without_gpu_says_so_and_exits_zero(capsys):
    bench = _bench_module()
    assert bench.main([]) == 0
    assert "No CUDA GPU" in capsys.readouterr().out


def test_benchmark_cost_model():
    bench = _bench_module()
    bytes_moved, flops = bench.attention_cost(1, torch.float16)
    assert bytes_moved == 2 * 162 * (2 * 256 + 2 * 2048)
    assert flops == 2 * 162 * 162 * (256 + 2048)
    bytes_moved, flops = bench.pool_cost(2, torch.float32)
    assert flops == 2 * 2 * 7 * 2048 * 162


@pytest.mark.parametrize("op", ["attention", "part_pool"])
@pytest.mark.parametrize("batch", [1, 8, 32, 64])
def test_benchmark_rotates_input_sets_larger_than_l2(op, batch):
    """Every timed call reads inputs that are not in L2: >= 3 sets, together >= 2 x L2 (unless
    the cap on sets is reached), and the CUDA graph cycles through all of them."""
    bench = _bench_module()
    l2 = 50 * 1024 * 1024
    plan = bench.case_plan(op, batch, torch.float16, l2, min_calls=24)
    assert plan["sets"] >= 3
    assert plan["sets"] * plan["bytes"] >= 2 * l2 or plan["sets"] == bench.MAX_SETS
    assert plan["calls"] >= 24 and plan["calls"] % plan["sets"] == 0


def test_benchmark_dry_run_prints_the_plan(capsys):
    bench = _bench_module()
    assert bench.main(["--dry-run", "--batches", "32", "--dtypes", "fp16"]) == 0
    out = capsys.readouterr().out
    assert "attention" in out and "part_pool" in out and "calls per graph" in out


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--calls", "0"], ["--batches", "0"], ["--dtypes", "fp64"]])
def test_benchmark_refuses_bad_arguments(argv):
    bench = _bench_module()
    with pytest.raises(SystemExit) as excinfo:
        bench.main(argv)
    assert excinfo.value.code == 2
