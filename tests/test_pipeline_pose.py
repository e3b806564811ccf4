"""Pose sources of the pipeline: keypoint files and callables, the OpenPose source, crops, the
IoU tracker."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from spot_edge.pipeline import Frame, KeypointFileSource, OpenPoseSource, Person, PoseResult
from spot_edge.pipeline.pose_sources import KeypointCallableSource
from spot_edge.pipeline.stages import crop_frame
from spot_edge.pose.synthetic_skeletons import standing_people

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_fakes import FakeEmbedder  # noqa: E402


def test_keypoint_file_formats(tmp_path):
    kp = standing_people([50], [10], [80])[0]
    f = tmp_path / "k.jsonl"
    f.write_text(json.dumps({"frame": 3, "people": [{"keypoints": kp.tolist(), "score": 0.7}]}) + "\n"
                 + json.dumps({"frame": 4, "people": [{"pose_keypoints_2d": kp.ravel().tolist()}]}) + "\n\n")
    src = KeypointFileSource(f)
    img = np.zeros((100, 120, 3), np.uint8)
    r3 = src(Frame("s", "visible", 3, 0.0, img))
    r4 = src(Frame("s", "visible", 4, 0.0, img))
    assert len(r3.people) == 1 and r3.people[0].score == pytest.approx(0.7)
    assert r3.maps.shape == (56, 13, 15) and r3.maps[:18].max() > 0.9
    assert np.allclose(r3.people[0].box, r4.people[0].box)
    assert src(Frame("s", "visible", 0, 0.0, img)).people == []


def test_crop_frame_shapes_and_callable_source(rng):
    emb = FakeEmbedder()
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    src = KeypointCallableSource(lambda image: standing_people([40, 110], [10, 12], [90, 95]))
    pose = src(Frame("s", "visible", 0, 0.0, img))
    images, heatmaps = crop_frame(img, pose, emb.preprocessing)
    assert images.shape == (2, 3, 64, 32) and images.dtype == np.float32
    assert heatmaps.shape == (2, 56, 8, 4) and heatmaps[:, :18].max() > 0.3
    empty_i, empty_h = crop_frame(img, PoseResult([], None), emb.preprocessing)
    assert empty_i.shape == (0, 3, 64, 32) and empty_h.shape == (0, 56, 8, 4)
    person = Person(box=np.array([10, 10, 60, 110], np.float32))
    no_maps_i, no_maps_h = crop_frame(img, PoseResult([person], None), emb.preprocessing)
    assert no_maps_i.shape == (1, 3, 64, 32) and not no_maps_h.any()


class RenderingEstimator:
    """Stands in for PoseEstimator: returns maps rendered from known keypoints of the (resized) frame."""

    def __init__(self, keypoints_full, full_size):
        self.keypoints_full = keypoints_full
        self.full_size = full_size
        self.calls = []

    def __call__(self, image):
        import math

        import torch

        from spot_edge.pose.render import render_pose_maps

        h, w = image.shape[:2]
        self.calls.append((h, w))
        scale = h / self.full_size[0]
        kp = self.keypoints_full.copy()
        kp[..., :2] = (kp[..., :2] + 0.5) * scale - 0.5
        mh, mw = math.ceil(h / 8), math.ceil(w / 8)
        return torch.from_numpy(render_pose_maps(kp, (mh * 8, mw * 8), (mh, mw)))[None]


def test_openpose_source_scales_back_to_the_frame():
    full = (480, 640)
    kp = standing_people([200, 450], [40, 60], [400, 380])
    est = RenderingEstimator(kp, full)
    src = OpenPoseSource(est, max_height=240)
    result = src(Frame("c", "visible", 0, 0.0, np.zeros((*full, 3), np.uint8)))
    assert est.calls == [(240, 320)]  # downscaled for the network
    assert result.stride == pytest.approx((16.0, 16.0)) and result.maps.shape == (56, 30, 40)
    assert len(result.people) == 2
    found = sorted(result.people, key=lambda p: p.box[0])
    for person, truth in zip(found, kp):
        assert np.abs(person.keypoints[:, :2] - truth[:, :2]).max() < 4.0  # within a quarter map pixel
        x0, y0, x1, y1 = person.box
        assert x0 < truth[:, 0].min() and x1 > truth[:, 0].max() and y0 < truth[:, 1].min()
    # the crops use the maps at stride 16 in full-frame coordinates
    images, heatmaps = crop_frame(np.zeros((*full, 3), np.uint8), result, FakeEmbedder().preprocessing)
    assert heatmaps.shape == (2, 56, 8, 4) and heatmaps[:, :18].max() > 0.2  # (bilinear down-sampling)


def test_openpose_source_with_the_network():
    """The real (1-stage, random-weight) network: shapes and plumbing only."""
    import warnings

    from spot_edge.backends.pose_estimators import TorchPoseEstimator
    from spot_edge.pose.network import OpenPoseBody, with_stages

    est = TorchPoseEstimator(OpenPoseBody(with_stages("openpose_coco", 1)), device="cpu")
    frame = Frame("c", "infrared", 0, 0.0, np.random.default_rng(0).integers(0, 255, (100, 130, 3), dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = OpenPoseSource(est, max_height=64)(frame)
    assert result.maps.shape == (56, 8, 11) and isinstance(result.maps, np.ndarray)  # CPU maps: host path
    assert result.stride == pytest.approx((8 * 100 / 64, 8 * 130 / 83))  # (y, x): 130 -> 83 columns
    assert isinstance(result.people, list)


@pytest.mark.parametrize("full", [(480, 640), (450, 700)])
def test_device_and_host_post_processing_give_the_same_people_and_crops(full):
    """The GPU path (torch parser, tensor crops) run on the CPU device against the host path
    (numpy parser, OpenCV crops), for a frame resized for the network (per-axis strides)."""
    import torch

    kp = standing_people([150, 330, 520], [40, 60, 30], [380, 360, 400])
    frame = Frame("c", "visible", 0, 0.0, np.random.default_rng(1).integers(0, 255, (*full, 3), dtype=np.uint8))
    results = {}
    for where in ("device", "host"):
        results[where] = OpenPoseSource(RenderingEstimator(kp, full), max_height=240, post_processing=where)(frame)
    device, host = results["device"], results["host"]
    assert isinstance(device.maps, torch.Tensor) and isinstance(host.maps, np.ndarray)
    assert device.stride == host.stride and len(host.people) == 3
    assert len(device.people) == len(host.people)
    for a, b in zip(device.people, host.people):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
        assert a.score == pytest.approx(b.score, abs=1e-5)
    for person, truth in zip(sorted(host.people, key=lambda p: p.box[0]), kp):
        assert np.abs(person.keypoints[:, :2] - truth[:, :2]).max() < 5.0  # in frame pixels
    prep = FakeEmbedder().preprocessing
    images_d, maps_d = crop_frame(frame.image, device, prep)
    images_h, maps_h = crop_frame(frame.image, host, prep)
    assert images_d.dtype == images_h.dtype == np.float32 and images_d.shape == images_h.shape == (3, 3, 64, 32)
    assert np.abs(images_d - images_h).max() <= 1.5 / 255 / min(prep.std)  # OpenCV's rounding
    np.testing.assert_allclose(maps_d, maps_h, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="post_processing"):
        OpenPoseSource(RenderingEstimator(kp, full), post_processing="gpu")


def test_pipeline_with_onnx_runtime_pose_finds_the_same_people_as_with_pytorch(tmp_path):
    """Generated weights, tiny frames: the whole pipeline with the pose network on ONNX Runtime and
    on PyTorch (both on the CPU) reports the same people."""
    import cv2

    from pose_networks import LOOSE, scaled_random_network
    from spot_edge.pipeline import CameraInput, Pipeline, PipelineConfig, open_source
    from spot_edge.pipeline.events import read_events
    from spot_edge.backends.pose_estimators import create_pose_estimator
    from spot_edge.engines.pose_onnx_export import export_pose_onnx

    model = scaled_random_network()
    graph = export_pose_onnx(model, tmp_path / "pose.onnx", sample_hw=(32, 48))
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 256, (90, 140, 3), dtype=np.uint8))
    people = {}
    for backend, source in (("pytorch", model), ("onnxruntime", graph)):
        pose = OpenPoseSource(create_pose_estimator(source, device="cpu"), max_height=64, parse_config=LOOSE)
        cfg = PipelineConfig(write_video=False, min_box_height=1.0)
        Pipeline([CameraInput("cam", "visible", open_source(str(folder)), pose)], FakeEmbedder(), None, cfg,
                 output_dir=tmp_path / backend).run(handle_signals=False)
        people[backend] = {}
        for e in read_events(tmp_path / backend / "events.jsonl"):
            people[backend].setdefault(e["frame_index"], []).append(e["box"])
    assert sorted(people["pytorch"]) == sorted(people["onnxruntime"]) == [0, 1, 2]
    for index, boxes in people["pytorch"].items():
        other = np.asarray(people["onnxruntime"][index])
        assert len(boxes) == len(other) > 0
        for box in boxes:  # each box has its twin (a near-tie peak of random maps may move 1 px)
            assert np.abs(other - np.asarray(box)).max(axis=1).min() <= 2.5


def test_openpose_source_missing_weights(tmp_path):
    from spot_edge.pipeline.pose_sources import OpenPoseSource

    with pytest.raises(FileNotFoundError, match="keypoints from another detector"):
        OpenPoseSource.from_weights(tmp_path / "body_pose_model.pth")


def test_iou_tracker():
    from spot_edge.pipeline.tracking import IoUTracker, box_iou

    assert box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30]]).round(3).tolist() == [[0.333, 0.0]]
    t = IoUTracker(iou_threshold=0.3, max_missing=2)
    assert t.update([[0, 0, 10, 20], [50, 0, 60, 20]], 0) == [0, 1]
    assert t.update([[52, 0, 62, 20], [1, 0, 11, 20]], 1) == [1, 0]  # order of detections does not matter
    assert t.update([[2, 0, 12, 20]], 2) == [0]
    assert t.update([[100, 0, 110, 20]], 3) == [2]  # a new person
    assert t.update([[54, 0, 64, 20]], 6) == [3]  # track 1 unseen for too long: ended
    assert t.update([], 7) == []
