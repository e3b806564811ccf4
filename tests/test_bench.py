"""Benchmark: statistics, report structure on a tiny model, backends, targets, chart, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import spot_edge.latency.runners as runners
from spot_edge.device import DeviceError
from spot_edge.latency import (REPORT_FORMAT, BenchmarkError, BenchSettings, Timer, TorchRunner, check_targets,
                               latency_stats, markdown_table, run_benchmark, write_report)
from spot_edge.model import SPOT, preset

TINY = dict(batch_sizes=(1, 2), iters=3, warmup=1, gallery_size=40, top_k=3, device="cpu", threads=1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SPOT(preset("spot-small", num_classes=4))


@pytest.fixture(scope="module")
def report(model):
    return run_benchmark(model, BenchSettings(precisions=("fp32", "fp16"), **TINY))


def test_latency_stats():
    stats = latency_stats([5.0, 1.0, 3.0, 2.0, 4.0])
    assert stats["median"] == 3.0 and stats["min"] == 1.0 and stats["max"] == 5.0 and stats["mean"] == 3.0
    assert stats["p10"] <= stats["median"] <= stats["p90"] <= stats["p99"] <= stats["max"]
    with pytest.raises(BenchmarkError):
        latency_stats([])


def test_timer_excludes_warmup_and_counts_iterations():
    calls = []
    times = Timer(torch.device("cpu")).latencies(lambda: calls.append(1), iters=4, warmup=3)
    assert len(times) == 4 and len(calls) == 7 and all(t >= 0 for t in times)


def test_report_structure(report):
    json.dumps(report)  # serialisable
    assert report["format"] == REPORT_FORMAT
    assert {"machine", "model", "settings", "results", "skipped", "targets", "created"} <= set(report)
    assert report["model"]["input_size"] == [128, 64] and report["model"]["embedding_dim"] == 512
    assert report["machine"]["device"] == "cpu" and report["machine"]["torch_threads"] == 1
    seen = {(r["stage"], r["batch"]) for r in report["results"]}
    assert seen == {(s, b) for s in ("preprocess", "search", "embed", "end_to_end") for b in (1, 2)}
    for r in report["results"]:
        assert r["iters"] == 3 and r["timer"] == "perf_counter"
        lat = r["latency_ms"]
        assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r["throughput_per_s"] > 0
    embed = [r for r in report["results"] if r["stage"] == "embed"]
    assert all(r["backend"] == "pytorch" and r["precision"] == "fp32" and not r["cuda_graphs"] for r in embed)
    # fp16 on the CPU and the pose stage are skipped with reasons, not errors
    reasons = " ".join(s["reason"] for s in report["skipped"])
    assert "fp16" in reasons and "CUDA" in reasons
    assert not any(s.get("stage") == "pose" for s in report["skipped"])   # pose was not asked for
    assert all(t["measured"] is None and "not measured" in t["note"] for t in report["targets"])


def test_report_files_and_markdown(report, tmp_path):
    json_path, png_path = write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text())["results"] == report["results"]
    assert png_path.stat().st_size > 1000
    import cv2

    image = cv2.imread(str(png_path))
    assert image is not None and image.shape[1] == 1100
    table = markdown_table(report)
    assert table.count("\n") == len(report["results"]) + 1 and "| embed | pytorch | fp32 | 1 |" in table


def test_model_is_left_usable(model, report):
    assert model.validate_inputs and next(model.parameters()).dtype == torch.float32


class _FakeEmbedder:
    def __init__(self, dim):
        self.dim, self.calls = dim, 0

    def embed(self, images, heatmaps, modality):
        assert isinstance(images, np.ndarray) and images.dtype == np.float32 and images.ndim == 4
        assert heatmaps.shape[:2] == (images.shape[0], 56) and modality == "infrared"
        self.calls += 1
        return np.ones((images.shape[0], self.dim), np.float32)


def test_external_backend_through_create_embedder(model, monkeypatch, tmp_path):
    made = {}

    def create_embedder(source, backend="auto", device="auto", **options):
        made.update(source=source, backend=backend, device=device)
        made["embedder"] = _FakeEmbedder(512)
        return made["embedder"]

    engine = tmp_path / "spot.engine"
    engine.write_bytes(b"x")
    monkeypatch.setattr(runners, "create_embedder", create_embedder)
    out = run_benchmark(model, BenchSettings(backends=("tensorrt",), stages=("embed", "end_to_end"),
                                             source=str(engine), **TINY))
    assert made["backend"] == "tensorrt" and made["source"] == str(engine) and made["embedder"].calls > 0
    assert {r["backend"] for r in out["results"]} == {"tensorrt"} and len(out["results"]) == 4


def test_tensorrt_without_source_is_skipped_with_reason(model):
    out = run_benchmark(model, BenchSettings(backends=("tensorrt",), stages=("embed",), **TINY))
    assert out["results"] == [] and "--source" in out["skipped"][0]["reason"]


@pytest.mark.parametrize("bad", [dict(batch_sizes=(0,)), dict(batch_sizes=()), dict(backends=("tflite",)),
                                 dict(precisions=("int4",)), dict(stages=("nope",)), dict(modality="thermal"),
                                 dict(iters=0), dict(warmup=-1), dict(gallery_size=0), dict(top_k=0),
                                 dict(kernels="fast"), dict(threads=0), dict(frame_size=(8, 640))])
def test_settings_are_validated(bad):
    with pytest.raises(BenchmarkError):
        BenchSettings(**bad).validate()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_absent_cuda_device_is_refused(model):
    with pytest.raises(DeviceError, match="CUDA"):
        run_benchmark(model, BenchSettings(device="cuda"))


def test_fp16_needs_cuda(model):
    with pytest.raises(BenchmarkError, match="CUDA"):
        TorchRunner(model, torch.device("cpu"), precision="fp16")


def test_targets_are_checked_when_the_configuration_matches():
    def result(batch, median, throughput):
        return {"stage": "embed", "backend": "pytorch", "precision": "fp16", "cuda_graphs": True, "batch": batch,
                "device": "cuda", "latency_ms": {"median": median}, "throughput_per_s": throughput}

    report = {"model": {"input_size": [288, 144]}, "results": [result(1, 1.5, 600.0), result(64, 7.0, 9000.0)]}
    first, second = check_targets(report)
    assert first["measured"] == 1.5 and first["met"] is True
    assert second["measured"] == 9000.0 and second["met"] is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_runner_matches_eager():
    m = SPOT(preset("spot-small", num_classes=4)).eval()
    device = torch.device("cuda")
    images, maps = torch.randn(2, 3, 128, 64), torch.rand(2, 56, 16, 8)
    eager = TorchRunner(m, device, "fp32", cuda_graphs=False)(images, maps).clone()
    graphed = TorchRunner(m, device, "fp32", cuda_graphs=True)
    out = graphed(images, maps).clone()
    assert torch.allclose(out, eager, atol=1e-4)
    out2 = graphed(images * 0.5, maps).clone()       # replay with new inputs copied into the buffers
    assert not torch.allclose(out2, out)


def test_cli_bench_json(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from spot_edge.cli.bench import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--preset", "baseline-small", "--batch", "1", "--iters", "2", "--warmup", "0",
                                      "--device", "cpu", "--threads", "1", "--gallery-size", "20",
                                      "--out", "results/bench", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["settings"]["batch_sizes"] == [1] and len(report["results"]) == 4
    assert (tmp_path / "results/bench/bench.json").is_file() and (tmp_path / "results/bench/bench.png").is_file()
    assert not list((tmp_path / "results/bench").glob(".*"))      # no temporary files left behind


def test_real_backends_module_pytorch_and_onnxruntime():
    pytest.importorskip("onnxruntime")
    model = SPOT(preset("baseline-small", num_classes=4))
    settings = dict(TINY, batch_sizes=(2,), iters=2)
    out = run_benchmark(model, BenchSettings(backends=("pytorch-embedder", "onnxruntime"), stages=("embed",),
                                             precisions=("fp32", "fp16"), **settings))
    assert [(r["backend"], r["precision"]) for r in out["results"]] == [("pytorch-embedder", "fp32"),
                                                                         ("onnxruntime", "fp32")]
    reasons = {s["backend"]: s["reason"] for s in out["skipped"]}
    assert "fp32 ONNX graph" in reasons["onnxruntime"]
    assert "CUDA" in reasons["pytorch-embedder"]


def test_pose_stage_with_random_weights(model):
    settings = dict(TINY, iters=1, warmup=0)
    out = run_benchmark(model, BenchSettings(stages=("pose",), pose_random=True, pose_config="openpose_coco_lite",
                                             frame_size=(64, 48), **settings))
    (pose,) = out["results"]
    assert pose["stage"] == "pose" and pose["random_weights"] and pose["frame_size"] == [64, 48]
    assert pose["unit"] == "frames" and pose["batch"] == 1
    skipped = run_benchmark(model, BenchSettings(stages=("pose",), **settings))
    assert skipped["results"] == [] and "pose weights" in skipped["skipped"][0]["reason"]
    with pytest.raises(FileNotFoundError):
        run_benchmark(model, BenchSettings(stages=("pose",), pose_weights="/nonexistent.pth", **settings))
