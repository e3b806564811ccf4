"""``spot-edge pose`` sub-commands on tiny inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from spot_edge.cli.pose import app
from spot_edge.pose.caffe import state_dict_to_caffemodel
from spot_edge.pose.network import OpenPoseBody, with_stages
from spot_edge.pose.openpose_json import read_openpose_json, write_openpose_json
from spot_edge.pose.openpose_png import read_pose_heatmaps_png
from spot_edge.pose.synthetic_skeletons import standing_people

runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)       # every command gets relative paths, as users type them


@pytest.fixture(scope="module")
def one_stage_weights():
    torch.manual_seed(0)
    return OpenPoseBody(with_stages("openpose_coco", 1)).state_dict()


def test_info():
    result = runner.invoke(app, ["info", "--size", "368x368"])
    assert result.exit_code == 0, result.output
    assert "52.311" in result.output and "136" in result.output


def test_convert_caffe_then_maps_with_keypoints(tmp_path, one_stage_weights, rng):
    caffe = tmp_path / "pose.caffemodel"
    caffe.write_bytes(state_dict_to_caffemodel(one_stage_weights))
    out = tmp_path / "pose.safetensors"
    result = runner.invoke(app, ["convert-caffe", "pose.caffemodel", "pose.safetensors", "--stages", "1"])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"f{i}.png"), rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))
    cv2.imwrite(str(frames / "grey.png"), rng.integers(0, 256, (40, 30), dtype=np.uint8))
    result = runner.invoke(app, ["maps", "frames", "maps", "--weights", "pose.safetensors", "--stages", "1",
                                 "--net-height", "32", "--keypoints"])
    assert result.exit_code == 0, result.output
    m = read_pose_heatmaps_png(tmp_path / "maps" / "f0_pose_heatmaps.png")
    assert m.shape == (56, 4, 3)  # 40x30 resized to 32x24, stride 8
    assert read_openpose_json(tmp_path / "maps" / "grey_keypoints.json").shape[1:] == (18, 3)


def test_convert_caffe_wrong_architecture(tmp_path):
    caffe = tmp_path / "other.caffemodel"
    caffe.write_bytes(state_dict_to_caffemodel({"fc.weight": torch.randn(3, 4)}))
    result = runner.invoke(app, ["convert-caffe", "other.caffemodel", "x.pth"])
    assert result.exit_code == 2
    assert "unexpected keys (1): fc.weight" in result.output


def test_render_from_openpose_json(tmp_path, rng):
    js = tmp_path / "json"
    write_openpose_json(js / "cam_0001_keypoints.json", standing_people([72], [10], [260], rng))
    write_openpose_json(js / "cam_0002_keypoints.json", np.zeros((0, 18, 3)))
    result = runner.invoke(app, ["render", "json", "maps", "--image-size", "288x144", "--out-size", "36x18"])
    assert result.exit_code == 0, result.output
    m = read_pose_heatmaps_png(tmp_path / "maps" / "cam_0001_pose_heatmaps.png")
    assert m.shape == (56, 36, 18) and m[:18].max() > 0.9
    assert not read_pose_heatmaps_png(tmp_path / "maps" / "cam_0002_pose_heatmaps.png").any()


@pytest.mark.filterwarnings("ignore::spot_edge.pose.network.RandomWeightsWarning")
def test_export_onnx_cli(tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "p.onnx"
    result = runner.invoke(app, ["export-onnx", "p.onnx", "--stages", "1", "--size", "32x24"])
    assert result.exit_code == 0, result.output
    assert "parity" in result.output and out.is_file()


def test_friendly_errors_from_the_pose_group(tmp_path):
    result = runner.invoke(app, ["render", "nonexistent", "x", "--image-size", "288x144"])
    assert result.exit_code == 2
    assert result.stderr == f"error: keypoint folder not found: {tmp_path / 'nonexistent'}\n"
    result = runner.invoke(app, ["info", "--size", "big"])
    assert result.exit_code == 2 and result.stderr.startswith("error: --size must look like")
    assert not (tmp_path / "x").exists()
