"""``spot-edge export`` bundles (issue 13): one command for every artefact, used by run, embed,
bench and parity; ONNX Runtime for both networks on the CPU, checked against the PyTorch path.

Generated weights: ``spot-small`` with random weights (tests/engines_helpers.py) and a 1-stage
OpenPose network whose output layers are scaled so that its maps hold people at the parser's
default thresholds (tests/pose_networks.py). Every command runs from a temporary working
directory with relative paths, as a user types them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from engines_helpers import pose_config, small_checkpoint, small_model
from pose_networks import scaled_random_network
from spot_edge.cli.app import app
from spot_edge.hashing import sha256_file

runner = CliRunner()

#: seed of the generated pose weights: its scaled random maps give people at the default thresholds
POSE_SEED = 1
FRAME_HW = (64, 96)
FRAMES = 3
EXPORT = ["export", "-c", "ck.safetensors", "--pose-weights", "pose.safetensors", "-o", "bundle",
          "--pose-stages", "1"]


def _write_images(folder: Path, count: int, hw: tuple[int, int], seed: int) -> None:
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 256, (*hw, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A working directory holding ck.safetensors, pose.safetensors, vis/ and ir/ (frames), crops/,
    and bundle/ written by ``spot-edge export`` with relative paths."""
    from spot_edge.pose.weights import save_pose_weights

    work = tmp_path_factory.mktemp("bundle-work")
    shutil.copyfile(small_checkpoint(), work / "ck.safetensors")
    save_pose_weights(scaled_random_network(pose_config(), seed=POSE_SEED).state_dict(), work / "pose.safetensors")
    _write_images(work / "vis", FRAMES, FRAME_HW, seed=3)
    _write_images(work / "ir", FRAMES, FRAME_HW, seed=4)
    _write_images(work / "crops", 3, (96, 40), seed=5)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setitem(sys.modules, "tensorrt", None)  # no TensorRT here, whatever the machine
        result = runner.invoke(app, EXPORT)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["bundle"] == str(work / "bundle")
    return work


@pytest.fixture
def workdir(exported, monkeypatch) -> Path:
    monkeypatch.chdir(exported)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    return exported


def _torch_pose():
    from spot_edge.backends.pose_estimators import create_pose_estimator

    return create_pose_estimator("pose.safetensors", backend="pytorch", device="cpu", config=pose_config())


def _json(result) -> dict:
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_export_writes_a_bundle_with_fingerprints_preprocessing_and_pose_config(workdir):
    from spot_edge.engines.bundle import load_bundle

    manifest = json.loads((workdir / "bundle" / "bundle.json").read_text())
    assert manifest["format"] == "spot-edge-bundle/1"
    on_disk = {p.relative_to(workdir / "bundle").as_posix() for p in (workdir / "bundle").rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"bundle.json"} == {"pose.onnx", "spot.visible.onnx",
                                                                    "spot.infrared.onnx"}
    for name, entry in manifest["files"].items():
        path = workdir / "bundle" / name
        assert entry == {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    config = small_model().config
    assert manifest["spot"]["preprocessing"] == config.preprocessing.to_dict()
    assert manifest["spot"]["config_fingerprint"] == config.fingerprint()
    assert manifest["spot"]["graphs"] == {"visible": "spot.visible.onnx", "infrared": "spot.infrared.onnx"}
    pose = manifest["pose"]
    assert pose["config"] == {"name": pose_config().name, "num_stages": 1, "relu_on_final_heatmaps": True}
    assert pose["stride"] == 8 and pose["precision"] == "fp32" and pose["engine"] is None
    assert pose["weights_fingerprint"] == _torch_pose().weights_fingerprint
    bundle = load_bundle("bundle")  # relative: resolved against the working directory
    assert bundle.folder == workdir / "bundle" and str(bundle) == str(workdir / "bundle")
    assert bundle.pose_graph == workdir / "bundle" / "pose.onnx" and not bundle.has_engines("spot")


def test_both_networks_of_the_bundle_run_on_onnx_runtime_as_pytorch_does(workdir, rng):
    from spot_edge.backends import create_embedder, resolve_backend
    from spot_edge.backends.torch_backend import TorchEmbedder
    from spot_edge.backends.pose_estimators import OnnxRuntimePoseEstimator, create_pose_estimator, resolve_pose_backend
    from spot_edge.pose.parse import parse_pose_maps
    from engines_helpers import random_inputs

    assert resolve_backend("bundle") == resolve_pose_backend("bundle") == "onnxruntime"
    ort_pose, torch_pose = create_pose_estimator("bundle"), _torch_pose()
    assert isinstance(ort_pose, OnnxRuntimePoseEstimator) and ort_pose.device.type == "cpu"
    for batch in (rng.integers(0, 256, (2, *FRAME_HW, 3), dtype=np.uint8),
                  rng.integers(0, 256, (1, 45, 70, 3), dtype=np.uint8)):
        got, ref = ort_pose(batch), torch_pose(batch)
        assert got.shape == ref.shape == (len(batch), 56, -(-batch.shape[1] // 8), -(-batch.shape[2] // 8))
        assert float((got - ref).abs().max()) < 1e-4
    frame = batch[0]
    maps = {name: est(frame)[0].numpy() for name, est in (("onnxruntime", ort_pose), ("pytorch", torch_pose))}
    people = {name: parse_pose_maps(m, image_size=(m.shape[1] * 8, m.shape[2] * 8), valid_size=frame.shape[:2])
              for name, m in maps.items()}  # the default thresholds of the pipeline
    a, b = people["pytorch"], people["onnxruntime"]
    assert len(a) > 0 and len(a) == len(b)
    np.testing.assert_array_equal(a.keypoints[..., 2] > 0, b.keypoints[..., 2] > 0)
    np.testing.assert_allclose(a.keypoints[..., :2], b.keypoints[..., :2], atol=0.5)  # flat random peaks
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-2)

    embedder = create_embedder("bundle")
    assert embedder.name == "onnxruntime"
    reference = TorchEmbedder("ck.safetensors", device="cpu")
    images, heatmaps = random_inputs(small_model().config, 2, seed=7)
    for modality in ("visible", "infrared"):
        np.testing.assert_allclose(embedder.embed(images, heatmaps, modality),
                                   reference.embed(images, heatmaps, modality), atol=1e-4)


def _people_by_frame(events_file: Path) -> dict[tuple[str, int], np.ndarray]:
    from spot_edge.pipeline.events import read_events

    boxes: dict[tuple[str, int], list] = {}
    for event in read_events(events_file):
        boxes.setdefault((event["source"], event["frame_index"]), []).append(event["box"])
    return {key: np.asarray(sorted(value)) for key, value in boxes.items()}


def test_run_with_a_bundle_alone_finds_the_people_of_the_pytorch_path(workdir):
    from spot_edge.backends.torch_backend import TorchEmbedder
    from spot_edge.pipeline import CameraInput, OpenPoseSource, Pipeline, PipelineConfig, open_source

    result = runner.invoke(app, ["run", "--visible", "vis", "--infrared", "ir", "-m", "bundle", "-o", "out", "-q",
                                 "--json", "--no-video", "--pose-height", "64"])
    assert result.exit_code == 0, result.output
    summary = _json(result)
    assert not summary["errors"]
    for source in ("visible", "infrared"):
        assert summary["sources"][source]["frames_processed"] == FRAMES
        assert summary["sources"][source]["people"] > 0

    pose = OpenPoseSource(_torch_pose(), max_height=64)  # the PyTorch path: weights and checkpoint
    inputs = [CameraInput(name, name, open_source(str(workdir / folder)), pose)
              for name, folder in (("visible", "vis"), ("infrared", "ir"))]
    Pipeline(inputs, TorchEmbedder("ck.safetensors", device="cpu"), None, PipelineConfig(write_video=False),
             output_dir=workdir / "out-pytorch").run(handle_signals=False)
    bundle_people = _people_by_frame(workdir / "out" / "events.jsonl")
    torch_people = _people_by_frame(workdir / "out-pytorch" / "events.jsonl")
    assert sorted(bundle_people) == sorted(torch_people) and len(bundle_people) == 2 * FRAMES
    for key, boxes in torch_people.items():
        assert boxes.shape == bundle_people[key].shape
        np.testing.assert_allclose(bundle_people[key], boxes, atol=2.5)  # a near-tie peak may move 1 px


def test_embed_parity_and_bench_take_the_bundle(workdir):
    from spot_edge.backends.torch_backend import TorchEmbedder
    from spot_edge.image_folder import load_image_folder

    result = runner.invoke(app, ["embed", "bundle", "crops", "-o", "e.npy", "--missing-heatmaps", "zeros",
                                 "--modality", "visible"])
    assert result.exit_code == 0, result.output
    reference = TorchEmbedder("ck.safetensors", device="cpu")
    data = load_image_folder(workdir / "crops", reference.preprocessing, reference.num_pose_maps, missing="zeros")
    np.testing.assert_allclose(np.load(workdir / "e.npy"), reference.embed(data.images, data.heatmaps, "visible"),
                               atol=1e-4)

    result = runner.invoke(app, ["parity", "bundle", "-r", "ck.safetensors", "--images", "crops",
                                 "--missing-heatmaps", "zeros", "--json", "parity.json", "--min-cosine", "0.9999"])
    assert result.exit_code == 0, result.output
    assert (workdir / "parity.json").is_file()

    result = runner.invoke(app, ["bench", "--source", "bundle", "--backend", "onnxruntime", "--stage", "pose",
                                 "--stage", "embed", "-b", "1", "--iters", "1", "--warmup", "0", "--frame", "64x96",
                                 "-o", "bench", "--json"])
    assert result.exit_code == 0, result.output
    measured = {(r["stage"], r["backend"]) for r in _json(result)["results"]}
    assert measured == {("pose", "onnxruntime"), ("embed", "onnxruntime")}


def test_export_with_engines_replaces_an_unfinished_export_and_runs_on_tensorrt(workdir, monkeypatch):
    """With TensorRT (the test double, TensorRT 10.3) and a GPU: engines in the bundle, the
    remains of an export that did not finish replaced with --force, and ``auto`` runs the engines."""
    import trt_double
    from spot_edge.backends import create_embedder, resolve_backend
    from spot_edge.engines import trt_builder, trt_runtime
    from spot_edge.engines.metadata import GpuInfo
    from spot_edge.backends.pose_estimators import TensorRTPoseEstimator, create_pose_estimator, resolve_pose_backend

    orin = GpuInfo("Orin", (8, 7))
    monkeypatch.setitem(sys.modules, "tensorrt", trt_double.as_module("10.3"))
    for module in (trt_builder, trt_runtime):
        monkeypatch.setattr(module, "current_gpu", lambda device=0: orin)
    (workdir / "trt").mkdir()
    (workdir / "trt" / "pose.onnx").write_bytes(b"cut short")  # an export that died after its first file
    (workdir / "trt" / ".spot.visible.onnx.x1.tmp.onnx").write_bytes(b"cut short")
    result = runner.invoke(app, _export_args({"-o": "trt"}, ["--engines", "--target", "orin-nano", "--force"]))
    assert result.exit_code == 0, result.output
    manifest = json.loads((workdir / "trt" / "bundle.json").read_text())
    on_disk = {p.relative_to(workdir / "trt").as_posix() for p in (workdir / "trt").rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"bundle.json"}  # the leftovers are gone
    assert {"engines/pose.engine", "engines/pose.engine.json", "engines/spot.visible.engine"} <= on_disk
    assert manifest["pose"]["engine"] == "engines/pose.engine"
    assert manifest["tensorrt"]["target"] == "orin-nano"
    assert manifest["tensorrt"]["gpu"] == {"name": "Orin", "compute_capability": [8, 7]}

    assert resolve_backend("trt") == resolve_pose_backend("trt") == "tensorrt"
    pose = create_pose_estimator("trt", device="cpu")
    assert isinstance(pose, TensorRTPoseEstimator)
    frame = np.random.default_rng(8).integers(0, 256, (128, 160, 3), dtype=np.uint8)  # in the 128..368 profile
    reference = create_pose_estimator("trt", backend="onnxruntime")
    assert float((pose(frame) - reference(frame)).abs().max()) < 1e-4
    assert create_embedder("trt", device="cpu").name == "tensorrt"


# ----------------------------------------------------------------------------- bad bundles
def _edit_manifest(folder: Path, change) -> None:
    path = folder / "bundle.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.unlink()  # the copy's files are hard links: never write through them
    path.write_text(json.dumps(manifest))


def _rename_pose_graph(name: str):
    def change(manifest):
        manifest["files"][name] = manifest["files"].pop("pose.onnx")
        manifest["pose"]["graph"] = name
    return change


def _flip_a_byte(folder: Path, name: str) -> None:
    path = folder / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the SHA-256 tells
    path.unlink()
    path.write_bytes(bytes(data))


def _link_outside(folder: Path) -> None:
    outside = folder.parent / "elsewhere.onnx"
    shutil.copyfile(folder / "pose.onnx", outside)  # the same bytes: only the link's target is wrong
    (folder / "pose.onnx").unlink()
    (folder / "pose.onnx").symlink_to(outside)


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).unlink()
    (folder / name).write_text(text)


BAD_BUNDLES = {  # case: (how to break the bundle, what the one-line error must name)
    "unfinished export (no manifest)": (lambda b: (b / "bundle.json").unlink(), "bundle.json"),
    "pose graph changed after export": (lambda b: _flip_a_byte(b, "pose.onnx"), "pose.onnx"),
    "SPOT graph changed after export": (lambda b: _flip_a_byte(b, "spot.infrared.onnx"), "spot.infrared.onnx"),
    "a listed file is missing": (lambda b: (b / "spot.visible.onnx").unlink(), "spot.visible.onnx"),
    "a name leading out with ..": (lambda b: _edit_manifest(b, _rename_pose_graph("../pose.onnx")), "../pose.onnx"),
    "an absolute name": (lambda b: _edit_manifest(b, _rename_pose_graph(str(b / "pose.onnx"))), "pose.onnx"),
    "a link leading out": (_link_outside, "pose.onnx"),
    "malformed JSON manifest": (lambda b: _write(b, "bundle.json", '{"format": "spot-edge-bundle/1",'),
                                "bundle.json"),
    "wrong format string": (lambda b: _edit_manifest(b, lambda m: m.update(format="spot-edge-bundle/9")),
                            "spot-edge-bundle/9"),
    "a manifest without its pose section": (lambda b: _edit_manifest(b, lambda m: m.pop("pose")), "'pose'"),
    "an engine the manifest does not list": (
        lambda b: _edit_manifest(b, lambda m: m["pose"].update(engine="engines/pose.engine")), "engines/pose.engine"),
    "manifest disagrees with the graph": (lambda b: _edit_manifest(b, lambda m: m["pose"].update(precision="fp16")),
                                          "pose.onnx"),
}
COMMANDS = {
    "run": ["run", "--visible", "vis", "-m", "broken", "-o", "out-broken", "-q", "--no-video"],
    "embed": ["embed", "broken", "crops", "-o", "broken.npy", "--missing-heatmaps", "zeros"],
}


def _assert_one_error_line(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output


@pytest.fixture
def broken_copy(workdir):
    """``broken/``: the bundle's files hard-linked (cheap); edits replace files, never write through."""
    shutil.copytree(workdir / "bundle", workdir / "broken", copy_function=os.link)
    yield workdir / "broken"
    shutil.rmtree(workdir / "broken")
    (workdir / "elsewhere.onnx").unlink(missing_ok=True)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_bad_bundles_are_refused_in_one_line(broken_copy, case, command):
    breaks, fragment = BAD_BUNDLES[case]
    breaks(broken_copy)
    _assert_one_error_line(runner.invoke(app, COMMANDS[command]), fragment)


def test_parity_and_bench_refuse_a_changed_bundle(broken_copy):
    _flip_a_byte(broken_copy, "pose.onnx")
    for args in (["parity", "broken", "-r", "ck.safetensors", "--images", "crops", "--missing-heatmaps", "zeros"],
                 ["bench", "--source", "broken", "--backend", "onnxruntime", "-b", "1", "--iters", "1",
                  "--warmup", "0", "--frame", "64x64", "-o", "bench-broken"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "pose.onnx" in errors[0] and "Traceback" not in result.output


# ----------------------------------------------------------------------------- bad exports
NEW = "new-bundle"  # the export's --out in the bad-export table


def _leftovers(work: Path) -> None:
    """What an export cut short after its pose graph leaves: a bundle's file, no manifest."""
    (work / NEW).mkdir()
    (work / NEW / "pose.onnx").write_bytes(b"partial")


def _other_folder(work: Path) -> None:
    (work / NEW).mkdir()
    (work / NEW / "notes.txt").write_text("mine")


def _a_bundle(work: Path) -> None:
    shutil.copytree(work / "bundle", work / NEW, copy_function=os.link)


BAD_EXPORTS = {  # case: (setup, options replaced, options added, what the one-line error must name)
    "into a bundle without --force": (_a_bundle, {}, [], "--force"),
    "into an unfinished export without --force": (_leftovers, {}, [], "--force"),
    "into a folder that is not a bundle": (_other_folder, {}, ["--force"], "not empty"),
    "--engines without TensorRT": (None, {}, ["--engines"], "TensorRT"),
    "--target without --engines": (None, {}, ["--target", "orin-nano"], "--engines"),
    "missing pose weights": (None, {"--pose-weights": "nowhere.pth"}, [], "nowhere.pth"),
    "pose weights of another network": (None, {"--pose-weights": "ck.safetensors"}, [], "ck.safetensors"),
    "--pose-stages out of range": (None, {"--pose-stages": "7"}, [], "--pose-stages"),
    "int8 without calibration": (None, {}, ["--precision", "int8"], "--calibration"),
    "--out is a file": (lambda w: (w / NEW).write_text("x"), {}, [], "is a file"),
}


def _export_args(replaced: dict[str, str], added: list[str]) -> list[str]:
    options = {"-c": "ck.safetensors", "--pose-weights": "pose.safetensors", "-o": NEW, "--pose-stages": "1",
               **replaced}
    return ["export", *(part for item in options.items() for part in item), *added]


@pytest.mark.parametrize("case", sorted(BAD_EXPORTS))
def test_bad_exports_are_refused_in_one_line_and_change_nothing(workdir, case):
    setup, replaced, added, fragment = BAD_EXPORTS[case]
    if setup is not None:
        setup(workdir)
    out = workdir / NEW
    before = sorted(p.relative_to(workdir).as_posix() for p in workdir.rglob("*"))
    contents = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} if out.is_dir() else {}
    try:
        _assert_one_error_line(runner.invoke(app, _export_args(replaced, added)), fragment)
        assert sorted(p.relative_to(workdir).as_posix() for p in workdir.rglob("*")) == before
        assert all(p.read_bytes() == data for p, data in contents.items())
    finally:
        shutil.rmtree(out) if out.is_dir() else out.unlink(missing_ok=True)
