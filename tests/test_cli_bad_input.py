"""Bad input to bench, doctor, demo, model, pose and visualize: one line on stderr, exit code 2.

Every command runs from a temporary working directory with paths as users type them (relative);
each case fails before any heavy work, so the table is fast.
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from spot_edge.cli.app import app

# (arguments, what the error line must say)
CASES = [
    # bench: out-of-range values are refused, never clamped
    (["bench", "--batch", "0"], "--batch must be at least 1, got 0"),
    (["bench", "--batch", "4", "--batch", "-1"], "--batch must be at least 1, got -1"),
    (["bench", "--iters", "0"], "--iters must be at least 1"),
    (["bench", "--warmup", "-1"], "--warmup must be at least 0"),
    (["bench", "--threads", "-2"], "--threads must be at least 1"),
    (["bench", "--gallery-size", "0"], "--gallery-size must be at least 1"),
    (["bench", "--top-k", "0"], "--top-k must be at least 1"),
    (["bench", "--frame", "8x8"], "--frame height must be at least 16"),
    (["bench", "--frame", "big"], "--frame must look like 480x640"),
    (["bench", "--backend", "tflite"], "unknown backend 'tflite'"),
    (["bench", "--backend", "[red]x[/]"], "unknown backend '[red]x[/]'"),            # not rich markup
    (["bench", "--precision", "int4"], "unknown precision 'int4'"),
    (["bench", "--stage", "warp"], "unknown stage 'warp'"),
    (["bench", "--modality", "thermal"], "modality must be 'visible' or 'infrared'"),
    (["bench", "--kernels", "fast"], "kernels must be auto, reference, triton, cuda"),
    (["bench", "--device", "banana"], "unknown device 'banana'"),
    (["bench", "--backend", "onnxruntime", "--source", "models/missing.onnx"], "missing.onnx does not exist"),
    (["bench", "--pose-weights", "nothere.pth"], "--pose-weights"),
    (["bench", "--config", "spot.yaml", "--checkpoint", "spot.safetensors"], "not both"),
    # demo
    (["demo", "--epochs", "0"], "--epochs must be at least 1"),
    (["demo", "--num-train", "3"], "--num-train must be at least 8"),
    (["demo", "--num-test", "1"], "--num-test must be at least 2"),
    (["demo", "--batches-per-epoch", "0"], "--batches-per-epoch must be at least 1"),
    (["demo", "--video-frames", "-5"], "--video-frames must be at least 1"),
    # model
    (["model", "info", "--batch", "0"], "--batch must be at least 1"),
    (["model", "info", "--preset", "spot-huge", "--no-forward"], "spot-huge"),
    (["model", "info", "--checkpoint", "runs/none.safetensors"], "none.safetensors"),
    (["model", "info", "--config", "broken.yaml"], "broken.yaml"),
    # pose
    (["pose", "info", "--size", "big"], "--size must look like HEIGHTxWIDTH"),
    (["pose", "info", "--size", "4x4"], "smaller than the network's stride"),
    (["pose", "render", "json/", "maps/", "--image-size", "288x144"], "keypoint folder not found"),
    (["pose", "render", "kp/", "maps/", "--image-size", "288x144", "--sigma", "0"], "must be positive"),
    (["pose", "render", "kp/", "maps/", "--image-size", "0x144"], "--image-size height must be at least 1"),
    (["pose", "maps", "frames/", "maps/", "--weights", "pose.pth"], "image folder not found"),
    (["pose", "maps", "imgs/", "maps/", "--weights", "pose.pth", "--stages", "9"], "--stages must be at most 6"),
    (["pose", "maps", "imgs/", "maps/", "--weights", "pose.pth", "--net-height", "-1"], "--net-height"),
    (["pose", "maps", "imgs/", "maps/", "--weights", "nothere.pth"], "pose weights not found"),
    (["pose", "export-onnx", "p.onnx", "--size", "30x30"], "multiples of 8"),
    (["pose", "convert-caffe", "missing.caffemodel", "out.pth"], "Caffe model not found"),
    # visualize
    (["visualize", "cam", "-o", "cam.jpg"], "--out must be a .png file"),
    (["visualize", "cam", "--synthetic", "0"], "--synthetic must be at least 1"),
    (["visualize", "cam", "--modality", "thermal"], "unknown modality 'thermal'"),
    (["visualize", "cam", "--method", "saliency"], "--method must be one of mean, gradcam"),
    (["visualize", "cam", "-i", "crops/[/]"], "image or folder not found"),
    (["visualize", "parts", "--checkpoint", "runs/none.safetensors"], "checkpoint not found"),
    (["visualize", "tsne", "--iterations", "10"], "--iterations must be at least 250"),
    (["visualize", "tsne", "--perplexity", "-1"], "--perplexity must be positive"),
    (["visualize", "tsne", "--embeddings", "missing.npz"], "embeddings file not found"),
    (["visualize", "tsne", "--embeddings", "corrupt.npz"], "is not a readable .npz file"),
    (["visualize", "tsne", "--embeddings", "partial.npz"], "lacks arrays"),
    (["visualize", "retrieval", "--queries", "0"], "--queries must be at least 1"),
    (["visualize", "retrieval", "-k", "0"], "-k must be at least 1"),
    (["visualize", "retrieval", "--dataset-root", "data/none"], "dataset root not found"),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory holding the few files the cases name (all relative)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spot.yaml").write_text("preset: spot-small\n")
    (tmp_path / "spot.safetensors").write_bytes(b"")
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    (tmp_path / "pose.pth").write_bytes(b"")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip file")
    np.savez(tmp_path / "partial.npz", embeddings=np.zeros((4, 8), np.float32))
    (tmp_path / "kp").mkdir()
    (tmp_path / "imgs").mkdir()
    return tmp_path


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_and_exit_code_2(workdir, args, message):
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    assert message in errors[0]
    assert "Traceback" not in result.output
