"""The engines CLI: export-onnx, build-engine, parity, export-triton-repo, embed.

Every command runs from a temporary working directory with relative paths, as users type them.
"""

from __future__ import annotations

import json
import shutil
import sys

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import trt_double
from engines_helpers import small_exports, small_model, tiny_synthetic
from spot_edge.cli.engines import app

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch, checkpoint, crops):
    """A working directory holding model.safetensors, crops/, exports/spot.*.onnx, data/ (synthetic)."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(checkpoint, tmp_path / "model.safetensors")
    shutil.copytree(crops, tmp_path / "crops")
    (tmp_path / "exports").mkdir()
    for precision, prefix in (("fp32", "spot"), ("int8", "spot-int8")):
        for modality, path in small_exports(precision).items():
            shutil.copyfile(path, tmp_path / "exports" / f"{prefix}.{modality}.onnx")
    return tmp_path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from spot_edge.model import save_checkpoint

    return save_checkpoint(small_model(), tmp_path_factory.mktemp("ckpt") / "spot.safetensors")


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """6 crops: heatmap .npy files for most, keypoints for one; labels.csv with query/gallery."""
    folder = tmp_path_factory.mktemp("crops")
    spec = small_model().config.preprocessing
    rng = np.random.default_rng(0)
    rows = ["file,pid,camid,modality,split"]
    for i in range(6):
        name = f"{i:02d}.jpg"
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (96 + i, 40, 3), dtype=np.uint8))
        if i == 5:
            keypoints = np.column_stack([rng.uniform(0, 40, 18), rng.uniform(0, 96, 18), np.ones(18)])
            np.save(folder / f"{i:02d}.npy", keypoints.astype(np.float32))
        else:
            np.save(folder / f"{i:02d}.npy", rng.random((56, spec.heatmap_size[0] * 2, spec.heatmap_size[1] * 2),
                                                        dtype=np.float32))
        modality, split = ("infrared", "query") if i < 3 else ("visible", "gallery")
        rows.append(f"{name},{i % 3},{1 if i < 3 else 2},{modality},{split}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def _json(result) -> dict:
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_export_onnx_fp32_and_int8_with_relative_paths(workdir):
    result = runner.invoke(app, ["export-onnx", "--checkpoint", "model.safetensors", "--out", "out/m",
                                 "--modality", "visible"])
    assert result.exit_code == 0, result.output
    data = _json(result)
    assert list(data["onnx"]) == ["visible"] and (workdir / "out" / "m.visible.onnx").is_file()
    assert data["config_fingerprint"] == small_model().config.fingerprint() and data["precision"] == "fp32"
    shutil.copytree(tiny_synthetic(), workdir / "data")
    result = runner.invoke(app, ["export-onnx", "-c", "model.safetensors", "-o", "out/q", "--precision", "int8",
                                 "--calibration", "data", "--calibration-size", "4"])
    assert result.exit_code == 0, result.output
    from spot_edge.engines import read_onnx_info

    for modality in ("visible", "infrared"):
        record = read_onnx_info(workdir / "out" / f"q.{modality}.onnx").calibration
        assert record["kind"] == "sysu-train" and record["modality"] == modality and record["images"] == 4
        assert record["path"] == str(workdir / "data")  # resolved against the working directory


def test_embed_writes_embeddings(workdir):
    result = runner.invoke(app, ["embed", "exports/spot", "crops", "--out", "emb/e.npy", "--modality", "visible",
                                 "--threads", "1"])
    assert result.exit_code == 0, result.output
    embeddings = np.load(workdir / "emb" / "e.npy")
    assert embeddings.shape == (6, small_model().config.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert json.loads((workdir / "emb" / "e.npy.json").read_text())["files"][0] == "00.jpg"


def test_parity_on_a_folder_and_on_the_synthetic_protocol(workdir):
    result = runner.invoke(app, ["parity", "exports/spot", "exports/spot-int8", "--reference", "model.safetensors",
                                 "--images", "crops", "--min-cosine", "0.9", "--threads", "1", "--json", "p.json"])
    assert result.exit_code == 0, result.output
    report = json.loads((workdir / "p.json").read_text())
    names = [r["name"] for r in report["rows"]]
    assert names == ["pytorch fp32", "onnxruntime fp32 (spot)", "onnxruntime int8 (spot-int8)"]
    assert report["rows"][1]["agreement"]["cosine_min"] > 0.9999 and report["rows"][1]["agreement"]["num_images"] == 6
    assert abs(report["rows"][1]["change"]["labelled query/gallery"]["mAP"]) < 1e-6
    assert "| onnxruntime int8 (spot-int8) |" in result.stdout
    strict = runner.invoke(app, ["parity", "exports/spot-int8", "-r", "model.safetensors", "-i", "crops",
                                 "--min-cosine", "1.0"])
    assert strict.exit_code == 1 and "parity failed" in strict.output
    shutil.copytree(tiny_synthetic(), workdir / "data")
    result = runner.invoke(app, ["parity", "exports/spot", "-r", "model.safetensors", "--root", "data",
                                 "--trials", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "SYSU-MM01 all-search R-1" in result.stdout


def test_build_engine_and_triton_repo(workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", trt_double.as_module("11.1"))
    from spot_edge.engines import GpuInfo, trt_builder

    monkeypatch.setattr(trt_builder, "current_gpu", lambda device=0: GpuInfo("Orin", (8, 7)))
    result = runner.invoke(app, ["build-engine", "exports/spot-int8.infrared.onnx", "--target", "orin-nano",
                                 "--timing-cache", "t.cache"])
    assert result.exit_code == 0, result.output
    meta = _json(result)["metadata"]
    assert meta["target"] == "orin-nano" and meta["profiles"] == [[1, 4, 8]] and meta["precision"] == "int8"
    assert (workdir / "exports" / "spot-int8.infrared.int8.engine").is_file() and (workdir / "t.cache").is_file()
    pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs tritonclient[grpc]")
    result = runner.invoke(app, ["export-triton-repo", "exports/spot-int8.infrared.int8.engine", "--out", "repo"])
    assert result.exit_code == 0, result.output
    assert (workdir / "repo" / "spot_infrared" / "1" / "model.plan").is_file()


def test_help_pages_have_examples():
    for command in ("export-onnx", "build-engine", "parity", "export-triton-repo", "embed"):
        result = runner.invoke(app, [command, "--help"], terminal_width=80)
        assert result.exit_code == 0 and "spot-edge " + command in result.output


BAD_COMMANDS = [
    (["export-onnx", "--out", "m"], "--checkpoint"),
    (["export-onnx", "-o", "m", "-c", "model.safetensors", "--preset", "spot-small"], "not both"),
    (["export-onnx", "-o", "m", "-c", "missing.safetensors"], "missing.safetensors"),
    (["export-onnx", "-o", "m", "-c", "model.safetensors", "--modality", "thermal"], "--modality must be one of"),
    (["export-onnx", "-o", "m", "-c", "model.safetensors", "--precision", "int4"], "--precision must be one of"),
    (["export-onnx", "-o", "m", "-c", "model.safetensors", "--precision", "int8"], "needs --calibration"),
    (["export-onnx", "-o", "m", "-c", "model.safetensors", "--calibration", "crops"], "for --precision int8"),
    (["export-onnx", "-o", "m", "-c", "model.safetensors", "--precision", "int8", "--calibration", "nowhere"],
     "calibration data not found"),
    (["export-onnx", "-o", "m", "-c", "model.safetensors", "--precision", "int8", "--calibration", "crops",
      "--calibration-size", "0"], "--calibration-size must be at least 1"),
    (["export-onnx", "-o", "m", "-c", "model.safetensors", "--opset", "11"], "opset 11"),
    (["export-onnx", "-o", "m", "-c", "model.safetensors", "--static-batch", "0"], "--static-batch must be at least"),
    (["build-engine", "exports/spot.visible.onnx", "--min-batch", "1"], "--max-batch"),
    (["build-engine", "exports/spot.visible.onnx", "--min-batch", "0", "--opt-batch", "1", "--max-batch", "2"],
     "--min-batch must be at least 1"),
    (["build-engine", "exports/spot.visible.onnx", "--workspace-mib", "1"], "--workspace-mib must be at least 16"),
    (["build-engine", "exports/spot.visible.onnx", "--precision", "fp8"], "--precision must be one of"),
    (["build-engine", "exports/spot.visible.onnx", "--target", "jetson-tx1"], "unknown build target"),
    (["build-engine", "exports/missing.onnx"], "not found"),
    (["build-engine", "exports/spot.visible.onnx"], "TensorRT is not installed"),
    (["embed", "exports/spot", "crops", "-o", "e.npy", "--batch", "0"], "--batch must be at least 1"),
    (["embed", "exports/spot", "crops", "-o", "e.npy", "--threads", "-2"], "--threads must be at least 1"),
    (["embed", "exports/spot", "crops", "-o", "e.npy", "--modality", "thermal"], "--modality must be visible"),
    (["embed", "exports/spot", "crops", "-o", "e.npy", "--backend", "tflite"], "--backend must be one of"),
    (["embed", "exports/spot", "crops", "-o", "e.npy", "--missing-heatmaps", "guess"], "--missing-heatmaps"),
    (["embed", "exports/spot", "nowhere", "-o", "e.npy"], "image folder not found"),
    (["embed", "nothing/here", "crops", "-o", "e.npy"], "no checkpoint"),
    (["embed", "exports/spot", "crops", "-o", "e.npy", "--device", "tpu"], "unknown device"),
    (["parity", "exports/spot", "-r", "model.safetensors"], "either --root"),
    (["parity", "exports/spot", "-r", "model.safetensors", "--root", "crops", "--images", "crops"], "either --root"),
    (["parity", "exports/spot", "-r", "model.safetensors", "--images", "crops", "--trials", "11"],
     "--trials must be at most 10"),
    (["parity", "exports/spot", "-r", "model.safetensors", "--images", "crops", "--min-cosine", "2"],
     "--min-cosine must be at most 1"),
    (["parity", "exports/spot", "-r", "model.safetensors", "--root", "crops", "--dataset", "market"],
     "--dataset must be one of"),
    (["parity", "exports/spot", "-r", "model.safetensors", "--root", "nowhere"], "nowhere"),
    (["export-triton-repo", "exports/spot", "-o", "repo", "--max-batch", "0"], "--max-batch must be at least 1"),
    (["export-triton-repo", "exports/spot", "-o", "repo", "--instances", "0"], "--instances must be at least 1"),
    (["export-triton-repo", "exports/spot", "-o", "repo", "--preferred", "-4"], "--preferred must be at least 1"),
    (["export-triton-repo", "model.safetensors", "-o", "repo"], "export ONNX first"),
]


@pytest.mark.parametrize("args, message", BAD_COMMANDS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_COMMANDS])
def test_bad_input_is_one_line_and_exit_code_2(workdir, monkeypatch, args, message):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # no TensorRT here, whatever the machine
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output
