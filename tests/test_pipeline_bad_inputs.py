"""Bad input to ``spot-edge run`` and to the pipeline API: each case a clear refusal (one
``error:`` line and exit code 2 on the command line, a clear exception from the API) or a
documented handling, never a traceback. One parametrised test per family of inputs."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_fakes import FakeCamera, FakeEmbedder, OnePersonPose, random_frames, write_test_video  # noqa: E402

from spot_edge.cli import run as run_cli  # noqa: E402
from spot_edge.cli.app import app as root_app  # noqa: E402
from spot_edge.errors import InputError  # noqa: E402
from spot_edge.gallery import Gallery  # noqa: E402
from spot_edge.pipeline import (  # noqa: E402
    CameraInput,
    FrameError,
    ImageFolderSource,
    KeypointFileSource,
    Pipeline,
    PipelineConfig,
    open_source,
)
from spot_edge.pipeline.events import read_events  # noqa: E402
from spot_edge.pipeline.sources import as_bgr_frame  # noqa: E402
from spot_edge.pose.synthetic_skeletons import standing_people  # noqa: E402

runner = CliRunner()
KP = standing_people([60], [10], [90])[0].round(2).tolist()  # one person in a 120x160 frame


def _line(frame: int, **person) -> str:
    return json.dumps({"frame": frame, "people": [{"keypoints": KP, **person}]})


def _write(cwd: Path, name: str, text: str) -> str:
    (cwd / name).write_text(text + "\n")
    return name


def _folder(cwd: Path, name: str, images: list[np.ndarray]) -> str:
    (cwd / name).mkdir()
    for i, image in enumerate(images):
        assert cv2.imwrite(str(cwd / name / f"{i:03d}.png"), image)
    return name


def _video(cwd: Path) -> list[str]:
    """A 2-frame 120x160 video ``v.avi`` with its keypoints; the options that give both."""
    write_test_video(cwd / "v.avi", "visible", frames=2)
    return ["--visible", "v.avi", "--visible-keypoints", "v.avi.keypoints.jsonl"]


def _keypoints(text: str):
    return lambda cwd: ["--visible", _video(cwd)[1], "--visible-keypoints", _write(cwd, "k.jsonl", text)]


def _options(*extra: str):
    return lambda cwd: _video(cwd) + list(extra)


SIXTEEN_BIT = [np.full((120, 160), 40000, np.uint16)] * 2

# (id, options from the working directory's files, what the one error line says: a regex)
RUN_REFUSALS = [
    ("no-source", lambda cwd: [], "at least one source"),
    ("unknown-scheme", lambda cwd: ["--visible", "foo://cam/1", "--visible-keypoints", _video(cwd)[3]],
     "unknown source 'foo://cam/1'"),
    ("missing-video", lambda cwd: ["--visible", "missing.avi", "--visible-keypoints", _video(cwd)[3]],
     "not found: .*missing.avi"),
    ("csi-unknown-option", lambda cwd: ["--visible", "csi://0?zoom=2", "--visible-keypoints", _video(cwd)[3]],
     "unknown options"),
    ("csi-bad-sensor", lambda cwd: ["--visible", "csi://left", "--visible-keypoints", _video(cwd)[3]],
     "bad CSI camera spec"),
    ("empty-source", lambda cwd: ["--visible", " ", "--visible-keypoints", _video(cwd)[3]], "empty source"),
    ("missing-keypoints", lambda cwd: ["--visible", _video(cwd)[1], "--visible-keypoints", "none.jsonl"],
     "keypoint file not found"),
    ("keypoints-folder", lambda cwd: ["--visible", _video(cwd)[1], "--visible-keypoints", "."],
     "is a folder"),
    ("keypoints-not-json", _keypoints("{oops"), r"k.jsonl:1: not valid JSON"),
    ("keypoints-not-an-object", _keypoints("[1, 2]"), r"k.jsonl:1: expected"),
    ("keypoints-no-keypoints", _keypoints('{"people": [{"foo": 1}]}'), "needs 'keypoints'"),
    ("keypoints-wrong-count", _keypoints('{"people": [{"keypoints": [[1, 2, 3]]}]}'), "18 keypoints"),
    ("keypoints-strings", _keypoints(json.dumps({"people": [{"keypoints": [["a", "b", "c"]] * 18}]})),
     "keypoints must be numbers"),
    ("keypoints-negative-frame", _keypoints(_line(-1)), "'frame' must be a frame number"),
    ("keypoints-frame-not-a-number", _keypoints(_line("one")), "'frame' must be a frame number"),
    ("keypoints-duplicate-frame", _keypoints(_line(0) + "\n" + _line(0)), "second line for frame 0"),
    ("keypoints-nan-box", _keypoints(_line(0, box=[0, 0, math.nan, 50])), "'box' must be"),
    ("keypoints-bad-score", _keypoints(_line(0, score="high")), "'score' must be a finite number"),
    ("keypoints-of-a-longer-video", _keypoints(_line(0) + "\n" + _line(40)), "frame 40.* 2 frames.*another video"),
    ("keypoints-of-another-resolution",
     _keypoints(json.dumps({"frame": 0, "people": [{"keypoints": (np.asarray(KP) * [10, 10, 1]).tolist()}]})),
     "outside the 160x120 frames"),
    ("no-pose-source", lambda cwd: ["--visible", _video(cwd)[1]], "--pose-weights"),
    ("missing-pose-weights", lambda cwd: ["--infrared", _video(cwd)[1], "--pose-weights", "no.pth"],
     "weights not found"),
    ("unknown-pose-device", lambda cwd: ["--infrared", _video(cwd)[1], "--pose-weights", "no.pth",
                                         "--device", "tpu"], "unknown device 'tpu'"),
    ("16-bit-image-folder", lambda cwd: ["--infrared", _folder(cwd, "thermal", SIXTEEN_BIT),
                                         "--infrared-keypoints", _write(cwd, "k.jsonl", _line(0))],
     "uint16 pixels; only 8-bit"),
    ("empty-image-folder", lambda cwd: ["--infrared", _folder(cwd, "nothing", []),
                                        "--infrared-keypoints", _write(cwd, "k.jsonl", "")], "no images"),
    ("batch-0", _options("--batch", "0"), "--batch must be at least 1, got 0"),
    ("top-k-0", _options("--top-k", "0"), "--top-k must be at least 1"),
    ("threshold-above-1", _options("--threshold", "1.5"), "--threshold must be at most 1"),
    ("threshold-nan", _options("--threshold", "nan"), "threshold"),
    ("reconnect-timeout-0", _options("--reconnect-timeout", "0"), "--reconnect-timeout must be at least"),
    ("reconnect-timeout-negative", _options("--reconnect-timeout", "-5"), "--reconnect-timeout must be at least"),
    ("reconnect-timeout-nan", _options("--reconnect-timeout", "nan"), "reconnect.timeout"),
    ("max-frames-0", _options("--max-frames", "0"), "--max-frames must be at least 1"),
    ("max-seconds-0", _options("--max-seconds", "0"), "--max-seconds must be at least"),
    ("frames-every-negative", _options("--frames-every", "-1"), "--frames-every must be at least 0"),
    ("pose-height-0", _options("--pose-height", "0"), "--pose-height must be at least"),
]


@pytest.mark.parametrize("make_args,message", [c[1:] for c in RUN_REFUSALS], ids=[c[0] for c in RUN_REFUSALS])
def test_run_refuses_bad_input(tmp_path, monkeypatch, make_args, message):
    monkeypatch.chdir(tmp_path)
    loaded = []
    monkeypatch.setattr(run_cli, "load_embedder", lambda *a, **k: loaded.append(1) or FakeEmbedder())
    r = runner.invoke(root_app, ["run", *make_args(tmp_path), "-m", "fake.onnx", "-o", "out", "-q"])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(message, errors[0]), r.stderr
    assert not (tmp_path / "out" / "stats.json").exists()  # refused before running


# ----------------------------------------------------------------------------- the API

CONFIG_REFUSALS = [
    ("top_k", 0), ("max_batch", 0), ("frame_queue_size", 0), ("work_queue_size", 0), ("max_people", 0),
    ("frames_every", -1), ("max_frames", 0), ("max_reconnect_attempts", -1), ("crop_expand", -0.5),
    ("threshold", 1.5), ("threshold", math.nan), ("observe_novelty", math.inf), ("default_fps", 0.0),
    ("flush_interval", 0.0), ("backoff_initial", 0.0), ("reconnect_timeout", 0.0), ("reconnect_timeout", -1.0),
    ("reconnect_timeout", math.nan), ("max_seconds", math.inf), ("max_seconds", 0), ("max_batch", True),
    ("events_max_bytes", 100), ("events_max_bytes", math.nan), ("events_rotate_seconds", 0.0),
    ("events_rotate_seconds", math.inf), ("events_keep", -1),
]


@pytest.mark.parametrize("field,value", CONFIG_REFUSALS, ids=[f"{f}={v}" for f, v in CONFIG_REFUSALS])
def test_pipeline_config_refuses(field, value):
    with pytest.raises(InputError, match=f"PipelineConfig.{field}"):
        PipelineConfig(**{field: value})


def test_pipeline_config_accepts_the_edges():
    PipelineConfig(reconnect_timeout=None, max_reconnect_attempts=0, threshold=-1.0, frames_every=0)
    PipelineConfig(reconnect_timeout=math.inf, observe_novelty=1.01)
    with pytest.raises(InputError, match="backoff_max"):
        PipelineConfig(backoff_initial=2.0, backoff_max=1.0)


def _gallery_16d():
    g = Gallery()
    g.add(np.ones((1, 16), np.float32), identities="x", modality="visible")
    return g


class VisibleOnly(FakeEmbedder):
    modalities = ("visible",)


def _cam(name="a", modality="visible"):
    return CameraInput(name, modality, FakeCamera(random_frames(1)), OnePersonPose())


PIPELINE_REFUSALS = [
    ("no-inputs", lambda: Pipeline([], FakeEmbedder()), "at least one source"),
    ("same-names", lambda: Pipeline([_cam(), _cam()], FakeEmbedder()), "names must differ"),
    ("unknown-modality", lambda: Pipeline([_cam(modality="thermal")], FakeEmbedder()), "unknown modality 'thermal'"),
    ("modality-not-exported", lambda: Pipeline([_cam(), _cam("b", "infrared")], VisibleOnly()),
     "embeds only.*infrared graph"),
    ("gallery-of-another-model", lambda: Pipeline([_cam()], FakeEmbedder(), _gallery_16d()), "16-d"),
]


@pytest.mark.parametrize("make,message", [c[1:] for c in PIPELINE_REFUSALS], ids=[c[0] for c in PIPELINE_REFUSALS])
def test_pipeline_refuses(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _sixteen_bit_folder(tmp_path):
    return _folder(tmp_path, "f", SIXTEEN_BIT) and tmp_path / "f"


def _corrupt_first(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "000.png").write_bytes(b"not a png")
    return tmp_path / "f"


SOURCE_REFUSALS = [
    ("empty", lambda tmp: "", InputError, "empty source"),
    ("unknown-scheme", lambda tmp: "gopher://cam", InputError, "unknown source"),
    ("csi-options", lambda tmp: "csi://0?zoom=2", InputError, "unknown options"),
    ("missing-file", lambda tmp: str(tmp / "no.mp4"), FileNotFoundError, "not found"),
    ("16-bit-folder", _sixteen_bit_folder, InputError, "uint16"),
    ("corrupt-first-image", _corrupt_first, InputError, "cannot decode"),
]


@pytest.mark.parametrize("make,error,message", [c[1:] for c in SOURCE_REFUSALS], ids=[c[0] for c in SOURCE_REFUSALS])
def test_open_source_refuses(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        open_source(make(tmp_path))


FRAME_CONVERSIONS = [
    ("float-frame", np.full((8, 8, 3), 0.5, np.float32), "float32 pixels"),
    ("two-channels", np.zeros((8, 8, 2), np.uint8), "2 channels"),
    ("empty", np.zeros((0, 8, 3), np.uint8), "shape"),
    ("4-d", np.zeros((1, 8, 8, 3), np.uint8), "shape"),
]


@pytest.mark.parametrize("frame,message", [c[1:] for c in FRAME_CONVERSIONS], ids=[c[0] for c in FRAME_CONVERSIONS])
def test_unusable_frames_are_refused_not_clipped(frame, message):
    with pytest.raises(FrameError, match=message):
        as_bgr_frame(frame)


def test_camera_frames_grey_and_16bit_are_converted():
    """Documented handling: grey frames replicated; a live thermal camera's 16-bit frames scaled by
    the frame's range (not clipped at 255)."""
    grey = as_bgr_frame(np.arange(64, dtype=np.uint8).reshape(8, 8))
    assert grey.shape == (8, 8, 3) and (grey[..., 0] == grey[..., 2]).all()
    raw = np.linspace(30000, 40000, 64).reshape(8, 8).astype(np.uint16)
    scaled = as_bgr_frame(raw)
    assert scaled.dtype == np.uint8 and scaled.min() == 0 and scaled.max() == 255


def test_unusable_folder_images_are_counted_and_keep_their_frame_numbers(tmp_path):
    """Documented handling: a later image of a folder that cannot be used (16-bit, corrupt) is one
    frame error; the other frames keep their numbers, so keypoint files stay aligned."""
    folder = tmp_path / "f"
    folder.mkdir()
    frames = random_frames(4)
    cv2.imwrite(str(folder / "000.png"), frames[0])
    cv2.imwrite(str(folder / "001.png"), np.full((120, 160), 40000, np.uint16))
    (folder / "002.png").write_bytes(b"not a png")
    cv2.imwrite(str(folder / "003.png"), frames[3])
    kp = _write(tmp_path, "k.jsonl", "\n".join(_line(i) for i in range(4)))
    src = ImageFolderSource(folder)
    summary = Pipeline([CameraInput("f", "infrared", src, KeypointFileSource(tmp_path / kp))], FakeEmbedder(),
                       None, PipelineConfig(write_video=False), output_dir=tmp_path / "out").run(handle_signals=False)
    c = summary.sources["f"]
    assert c["frames_read"] == 4 and c["errors"] == 2 and c["frames_processed"] == 2 and c["status"] == "finished"
    assert src.skipped_files == ["001.png", "002.png"] and "not a png" not in c["last_error"]
    assert sorted(e["frame_index"] for e in read_events(tmp_path / "out" / "events.jsonl")) == [0, 3]
    assert summary.errors == []


class FloatFile:
    """A file source (not live) whose frames are float images: none can be used."""

    live, fps, description = False, None, "file float.tiff"

    def open(self) -> None:
        self.n = 0

    def read(self):
        self.n += 1
        return np.full((96, 128, 3), 0.5, np.float32) if self.n <= 3 else None

    def close(self) -> None:
        pass


def test_a_source_none_of_whose_frames_can_be_used_is_an_error():
    summary = Pipeline([CameraInput("f", "visible", FloatFile(), OnePersonPose())], FakeEmbedder(), None,
                       PipelineConfig(write_video=False)).run(handle_signals=False)
    assert summary.sources["f"]["errors"] == 3 and summary.sources["f"]["frames_processed"] == 0
    assert len(summary.errors) == 1 and "none of its 3 frames" in summary.errors[0]
