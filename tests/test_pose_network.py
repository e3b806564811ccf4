"""OpenPose body network: shapes, preprocessing, weight loading (port layout, Caffe), bad input."""

from __future__ import annotations

import io
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from spot_edge.pose.caffe import CaffeModelError, caffemodel_to_state_dict, read_caffemodel, state_dict_to_caffemodel
from spot_edge.backends.pose_estimators import TorchPoseEstimator
from spot_edge.pose.network import (
    OpenPoseBody,
    PoseNetConfig,
    RandomWeightsWarning,
    preprocess_bgr,
    select_pose_maps,
    with_stages,
)
from spot_edge.pose.weights import PoseWeightsError, load_pose_weights, save_pose_weights


def _port_block(spec: "OrderedDict[str, tuple]", no_relu: set[str]) -> nn.Sequential:
    """A block built the way the pytorch-openpose port builds it (its module/state-dict layout)."""
    layers = []
    for name, v in spec.items():
        if name.startswith("pool"):
            layers.append((name, nn.MaxPool2d(kernel_size=v[0], stride=v[1], padding=v[2])))
            continue
        cin, cout, k, s, p = v
        layers.append((name, nn.Conv2d(cin, cout, k, s, p)))
        if name not in no_relu:
            layers.append(("relu_" + name, nn.ReLU(inplace=True)))
    return nn.Sequential(OrderedDict(layers))


class PortBodyModel(nn.Module):
    """Module-for-module equivalent of the port's ``bodypose_model`` (model0, model{t}_{1,2}),
    including its ReLU after Mconv7_stage6_L2 (the stage-6 L2 entry is missing from its no-ReLU
    list)."""

    def __init__(self, stages: int = 6) -> None:
        super().__init__()
        no_relu = {"conv5_5_CPM_L1", "conv5_5_CPM_L2"} | {f"Mconv7_stage{t}_L{b}" for t in range(2, 7) for b in (1, 2)}
        no_relu.discard("Mconv7_stage6_L2")
        front = OrderedDict()
        cfg = [("conv1_1", 3, 64), ("conv1_2", 64, 64), ("pool1_stage1",), ("conv2_1", 64, 128), ("conv2_2", 128, 128),
               ("pool2_stage1",), ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256),
               ("conv3_4", 256, 256), ("pool3_stage1",), ("conv4_1", 256, 512), ("conv4_2", 512, 512),
               ("conv4_3_CPM", 512, 256), ("conv4_4_CPM", 256, 128)]
        for entry in cfg:
            front[entry[0]] = (2, 2, 0) if len(entry) == 1 else (entry[1], entry[2], 3, 1, 1)
        self.model0 = _port_block(front, no_relu)
        self.stages = stages
        for t in range(1, stages + 1):
            for b, out in ((1, 38), (2, 19)):
                if t == 1:
                    spec = OrderedDict([(f"conv5_1_CPM_L{b}", (128, 128, 3, 1, 1)), (f"conv5_2_CPM_L{b}", (128, 128, 3, 1, 1)),
                                        (f"conv5_3_CPM_L{b}", (128, 128, 3, 1, 1)), (f"conv5_4_CPM_L{b}", (128, 512, 1, 1, 0)),
                                        (f"conv5_5_CPM_L{b}", (512, out, 1, 1, 0))])
                else:
                    spec = OrderedDict([(f"Mconv{i}_stage{t}_L{b}", (185 if i == 1 else 128, 128, 7, 1, 3)) for i in range(1, 6)])
                    spec[f"Mconv6_stage{t}_L{b}"] = (128, 128, 1, 1, 0)
                    spec[f"Mconv7_stage{t}_L{b}"] = (128, out, 1, 1, 0)
                setattr(self, f"model{t}_{b}", _port_block(spec, no_relu))

    def forward(self, x):
        feat = self.model0(x)
        h = feat
        for t in range(1, self.stages + 1):
            paf = getattr(self, f"model{t}_1")(h)
            heat = getattr(self, f"model{t}_2")(h)
            h = torch.cat([paf, heat, feat], 1)
        return paf, heat


@pytest.fixture(scope="module")
def port_model():
    torch.manual_seed(1)
    return PortBodyModel().eval()


def _bgr(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_parameter_count_matches_published_model():
    # The CMU pose_iter_440000 COCO model: 52,311,446 parameters.
    assert sum(p.numel() for p in OpenPoseBody().parameters()) == 52_311_446
    assert sum(p.numel() for p in OpenPoseBody("openpose_coco_lite").parameters()) < 30_000_000


def test_output_shapes_and_random_weights_warning(rng):
    model = OpenPoseBody("openpose_coco_lite").eval()
    x, size = preprocess_bgr(_bgr(rng, 45, 61))
    assert size == (45, 61) and x.shape == (1, 3, 48, 64)
    with pytest.warns(RandomWeightsWarning, match="WITHOUT pretrained weights"):
        with torch.no_grad():
            paf, heat = model(x)
    assert paf.shape == (1, 38, 6, 8) and heat.shape == (1, 19, 6, 8)
    assert select_pose_maps(paf, heat).shape == (1, 56, 6, 8)
    with pytest.warns(RandomWeightsWarning):  # every run, not just the first
        with torch.no_grad():
            model(x)


def test_preprocess_normalisation_and_padding():
    img = np.full((10, 13, 3), 200, np.uint8)
    x, _ = preprocess_bgr(img)
    assert x.shape == (1, 3, 16, 16)
    assert torch.allclose(x[0, :, :10, :13], torch.tensor(200 / 256 - 0.5))
    assert torch.all(x[0, :, 10:, :] == 0) and torch.all(x[0, :, :, 13:] == 0)  # pad 128 -> 0


@pytest.mark.parametrize("bad, match", [
    (np.zeros((32, 32), np.uint8), "3-channel"),
    (np.zeros((32, 32, 4), np.uint8), "3-channel"),
    (np.zeros((0, 32, 3), np.uint8), "empty"),
    (np.zeros((4, 32, 3), np.uint8), "outside"),
    (torch.zeros(1, 1, 32, 32), "3, H, W"),
    ([], "empty list"),
])
def test_preprocess_rejects_bad_frames(bad, match):
    with pytest.raises(ValueError, match=match):
        preprocess_bgr(bad)


def test_absurd_size_is_rejected_before_allocation():
    huge = torch.zeros(1, 3, 1, 1).expand(1, 3, 20000, 16)  # no real allocation
    with pytest.raises(ValueError, match="outside"):
        preprocess_bgr(huge)


def test_port_state_dict_loads_and_gives_the_same_outputs(port_model, rng):
    buffer = io.BytesIO()
    torch.save(port_model.state_dict(), buffer)  # keys like model0.conv1_1.weight
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    ours = OpenPoseBody().eval()  # default config: the port's graph
    report = load_pose_weights(ours, saved)
    assert ours.weights_loaded and report.loaded == 184  # 92 convs
    x, _ = preprocess_bgr(_bgr(rng, 40, 48))
    with torch.no_grad():
        ref_paf, ref_heat = port_model(x)
        paf, heat = ours(x)
    torch.testing.assert_close(paf, ref_paf, rtol=0, atol=0)
    torch.testing.assert_close(heat, ref_heat, rtol=0, atol=0)
    # The raw Caffe graph differs only by the port's final ReLU on the heatmaps.
    caffe_like = OpenPoseBody("openpose_coco_caffe").eval()
    load_pose_weights(caffe_like, saved)
    with torch.no_grad():
        paf2, heat2 = caffe_like(x)
    torch.testing.assert_close(paf2, ref_paf, rtol=0, atol=0)
    torch.testing.assert_close(heat2.clamp_min(0), ref_heat, rtol=0, atol=0)


def _port_outputs(port_model, x):
    with torch.no_grad():
        return port_model(x)


def test_flat_port_layout_loads_into_the_full_model(port_model, rng):
    flat = OrderedDict((k.split(".", 1)[1], v) for k, v in port_model.state_dict().items())  # body_pose_model.pth
    assert "conv1_1.weight" in flat and "Mconv7_stage6_L2.bias" in flat
    model = OpenPoseBody("openpose_coco").eval()
    load_pose_weights(model, flat)
    x, _ = preprocess_bgr(_bgr(rng, 24, 32))
    with torch.no_grad():
        got = model(x)
    for a, b in zip(got, _port_outputs(port_model, x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_caffemodel_pth_and_safetensors_files_give_the_same_model(port_model, rng, tmp_path):
    two_stage = with_stages("openpose_coco", 2)
    keys = set(OpenPoseBody(two_stage).state_dict())
    flat = OrderedDict((k.split(".", 1)[1], v) for k, v in port_model.state_dict().items() if k.split(".", 1)[1] in keys)
    pth = tmp_path / "body_pose_model.pth"
    torch.save(flat, pth)
    caffe = tmp_path / "pose_iter_440000.caffemodel"
    caffe.write_bytes(state_dict_to_caffemodel(flat))  # a synthetic CMU-style caffemodel
    converted = caffemodel_to_state_dict(caffe)
    assert list(converted) == list(flat)
    for k in flat:
        assert torch.equal(converted[k], flat[k]), k
    st = save_pose_weights(converted, tmp_path / "pose.safetensors")
    x, _ = preprocess_bgr(_bgr(rng, 32, 40))
    outs = []
    for src in (pth, caffe, st):
        model = OpenPoseBody(two_stage).eval()
        load_pose_weights(model, src)
        with torch.no_grad():
            outs.append(model(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    torch.testing.assert_close(outs[0], outs[2], rtol=0, atol=0)


def test_legacy_caffemodel_and_corrupt_files(tmp_path):
    sd = OrderedDict([("conv1_1.weight", torch.randn(64, 3, 3, 3)), ("conv1_1.bias", torch.randn(64))])
    layers = read_caffemodel(state_dict_to_caffemodel(sd, legacy=True))
    assert layers["conv1_1"][0].shape == (64, 3, 3, 3) and layers["conv1_1"][1].shape == (1, 1, 1, 64)
    assert caffemodel_to_state_dict(state_dict_to_caffemodel(sd, legacy=True))["conv1_1.bias"].shape == (64,)
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(b"\xff\xff\xff garbage")
    with pytest.raises(CaffeModelError):
        caffemodel_to_state_dict(bad)
    with pytest.raises(FileNotFoundError):
        caffemodel_to_state_dict(tmp_path / "nope.caffemodel")


def test_wrong_architecture_names_missing_and_unexpected_keys(tmp_path):
    body25_like = OrderedDict([("conv1_1.weight", torch.randn(64, 3, 3, 3)), ("conv1_1.bias", torch.randn(64)),
                               ("Mconv1_stage0_L2.weight", torch.randn(96, 128, 3, 3))])
    path = tmp_path / "other.pth"
    torch.save(body25_like, path)
    with pytest.raises(PoseWeightsError) as err:
        load_pose_weights(OpenPoseBody("openpose_coco_lite"), path)
    msg = str(err.value)
    assert "unexpected keys (1): Mconv1_stage0_L2.weight" in msg
    assert "missing keys (" in msg and "conv1_2.weight" in msg
    lenient = load_pose_weights(OpenPoseBody(with_stages("openpose_coco", 1)), path, strict=False)
    assert lenient.ignored_unexpected == ["Mconv1_stage0_L2.weight"] and "conv1_2.weight" in lenient.missing
    wrong_shape = OrderedDict((k, torch.zeros(1)) for k in OpenPoseBody("openpose_coco_lite").state_dict())
    with pytest.raises(PoseWeightsError, match="shape mismatches"):
        load_pose_weights(OpenPoseBody("openpose_coco_lite"), wrong_shape)
    with pytest.raises(FileNotFoundError, match="cannot be downloaded"):
        load_pose_weights(OpenPoseBody("openpose_coco_lite"), tmp_path / "missing.pth")


def test_pose_estimator_returns_raw_56_maps_at_stride_8(rng):
    model = OpenPoseBody(PoseNetConfig(name="tiny", num_stages=1))
    sd = {k: v * 40 if k.startswith("conv5_5_CPM") else v for k, v in model.state_dict().items()}
    load_pose_weights(model, sd)  # big outputs: the raw maps leave OpenPose's ranges
    est = TorchPoseEstimator(model, device="cpu")
    frames = [_bgr(rng, 50, 34), _bgr(rng, 50, 34)]
    maps = est(frames)
    assert maps.shape == (2, 56, 7, 5)
    assert maps[:, 18:].abs().max() > 1  # raw, as the parser reads them
    clamped = TorchPoseEstimator(model, device="cpu", clamp=True)(frames)
    torch.testing.assert_close(clamped[:, :18], maps[:, :18].clamp(0, 1))
    torch.testing.assert_close(clamped[:, 18:], maps[:, 18:].clamp(-1, 1))
    people = est.detect(_bgr(rng, 50, 34))
    assert people.keypoints.shape[1:] == (18, 3)


def test_lite_network_is_the_first_three_stages_of_the_full_one(port_model, rng):
    lite = OpenPoseBody("openpose_coco_lite").eval()
    report = load_pose_weights(lite, port_model.state_dict())  # stages 4-6 reported, not an error
    assert len(report.skipped_later_stages) == 3 * 28
    assert all(any(f"stage{t}" in k for t in (4, 5, 6)) for k in report.skipped_later_stages)
    x, _ = preprocess_bgr(_bgr(rng, 24, 32))
    with torch.no_grad():
        feat = port_model.model0(x)
        h = feat
        for t in (1, 2, 3):  # the full network's stage-3 output
            paf, heat = getattr(port_model, f"model{t}_1")(h), getattr(port_model, f"model{t}_2")(h)
            h = torch.cat([paf, heat, feat], dim=1)
        lite_paf, lite_heat = lite(x)
    torch.testing.assert_close(lite_paf, paf, rtol=0, atol=0)
    torch.testing.assert_close(lite_heat, heat.clamp_min(0), rtol=0, atol=0)  # + the port's final ReLU


def test_config_validation():
    with pytest.raises(ValueError, match="num_stages"):
        PoseNetConfig(num_stages=7)
    with pytest.raises(ValueError, match="unknown pose network config"):
        OpenPoseBody("openpose_body25")


def test_frame_without_people_gives_no_detections(rng):
    model = OpenPoseBody(with_stages("openpose_coco", 1)).eval()
    sd = {k: torch.zeros_like(v) if k.startswith("conv5_5_CPM") else v for k, v in model.state_dict().items()}
    load_pose_weights(model, sd)  # silent: weights are loaded; all maps are exactly zero
    est = TorchPoseEstimator(model, device="cpu")
    people = est.detect(_bgr(rng, 64, 48))
    assert len(people) == 0 and people.boxes.shape == (0, 4)
    assert not est(_bgr(rng, 64, 48)).any()
