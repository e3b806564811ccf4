"""The engines CLI: export-onnx, build-engine, parity, export-triton-repo, embed."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import trt_double
from engines_helpers import small_exports, small_model, small_prefix
from spot_edge.cli import engines as engines_cli

runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    root = typer.Typer()
    engines_cli.register(root)
    return root


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


def test_help_texts_have_examples(app):
    for command in engines_cli.COMMANDS:
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Example: spot-edge " + command in result.output.replace("\n", " ")


def test_export_onnx_from_a_checkpoint(app, checkpoint, tmp_path):
    result = runner.invoke(app, ["export-onnx", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m"),
                                 "--modality", "visible"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert list(data["onnx"]) == ["visible"] and (tmp_path / "m.visible.onnx").is_file()
    assert data["config_fingerprint"] == small_model().config.fingerprint()
    bad = runner.invoke(app, ["export-onnx", "--out", str(tmp_path / "m")])
    assert bad.exit_code == 2 and "--checkpoint" in bad.output


def test_embed_writes_embeddings(app, crops, tmp_path):
    out = tmp_path / "emb.npy"
    result = runner.invoke(app, ["embed", str(small_prefix()), str(crops), "--out", str(out), "--modality", "visible",
                                 "--threads", "1"])
    assert result.exit_code == 0, result.output
    embeddings = np.load(out)
    assert embeddings.shape == (6, small_model().config.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert json.loads((tmp_path / "emb.npy.json").read_text())["files"][0] == "00.jpg"


def test_embed_reports_missing_pose_files(app, crops, tmp_path):
    folder = tmp_path / "nopose"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((crops / "00.jpg").read_bytes())
    result = runner.invoke(app, ["embed", str(small_prefix()), str(folder), "--out", str(tmp_path / "e.npy")])
    assert result.exit_code == 2 and "a.npy" in result.output
    (folder / "b.jpg").write_bytes(b"not an image")
    result = runner.invoke(app, ["embed", str(small_prefix()), str(folder), "--out", str(tmp_path / "e.npy"),
                                 "--missing-heatmaps", "zeros"])
    assert result.exit_code == 2 and "cannot read image" in result.output


def test_parity_against_the_pytorch_reference(app, checkpoint, crops):
    result = runner.invoke(app, ["parity", str(small_prefix()), "--reference", str(checkpoint), "--images", str(crops),
                                 "--min-cosine", "0.9999", "--threads", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["agreement"]["num_images"] == 6
    assert report["agreement"]["cosine_min"] > 0.9999
    assert report["candidate"]["backend"] == "onnxruntime"
    retrieval = report["retrieval"]
    assert set(retrieval["reference"]) == {"R1", "mAP", "mINP"}
    assert abs(retrieval["change"]["mAP"]) < 1e-6


def test_build_engine_and_triton_repo(app, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", trt_double.as_module())
    from spot_edge.engines import GpuInfo
    from spot_edge.engines import trt_builder

    monkeypatch.setattr(trt_builder, "current_gpu", lambda device=0: GpuInfo("Orin", (8, 7)))
    engine = tmp_path / "spot.infrared.fp16.engine"
    result = runner.invoke(app, ["build-engine", str(small_exports()["infrared"]), "--out", str(engine),
                                 "--target", "orin-nano", "--timing-cache", str(tmp_path / "t.cache")])
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout[result.stdout.index("{"):])["metadata"]
    assert meta["target"] == "orin-nano" and meta["profiles"] == [[1, 4, 8]] and meta["precision"] == "fp16"
    partial = runner.invoke(app, ["build-engine", str(small_exports()["infrared"]), "--min-batch", "1"])
    assert partial.exit_code == 2 and "--max-batch" in partial.output
    pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs tritonclient[grpc]")
    result = runner.invoke(app, ["export-triton-repo", str(tmp_path / "spot"), "--out", str(tmp_path / "repo")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "repo" / "spot_infrared" / "1" / "model.plan").is_file()
