"""``spot-edge visualize`` sub-commands on synthetic people and random-weight presets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from spot_edge.cli.visualize import app


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)       # every command gets relative paths, as users type them


def _png(path):
    image = cv2.imread(str(path))
    assert image is not None and image.size > 0 and image.std() > 0
    return image


@pytest.mark.parametrize("args", [
    ["cam", "--synthetic", "2", "--method", "gradcam"],
    ["parts", "--synthetic", "1"],
    ["retrieval", "--synthetic", "3", "--queries", "2", "-k", "3"],
])
def test_commands_write_pictures(tmp_path, args):
    result = CliRunner().invoke(app, [*args, "-o", "pictures/picture.png"])
    assert result.exit_code == 0, result.output
    _png(tmp_path / "pictures" / "picture.png")
    assert [p.name for p in (tmp_path / "pictures").iterdir()] == ["picture.png"]   # no temporary files left


def test_tsne_from_embeddings_file(tmp_path, rng):
    ids = np.repeat(np.arange(8), 5)
    emb = rng.normal(size=(8, 16))[ids] + 0.05 * rng.normal(size=(40, 16))
    np.savez(tmp_path / "emb.npz", embeddings=emb, ids=ids, modalities=np.array(["visible", "infrared"] * 20))
    result = CliRunner().invoke(app, ["tsne", "--embeddings", "emb.npz", "--iterations", "250", "-o", "t.png"])
    assert result.exit_code == 0, result.output
    assert _png(tmp_path / "t.png").shape == (600, 600, 3)


def test_image_files_with_keypoints_root(tmp_path):
    from spot_edge.training.synthetic_dataset import SyntheticConfig, generate_sysu_like

    generate_sysu_like(tmp_path / "synth", SyntheticConfig(num_train=1, num_val=0, num_test=2,
                                                           images_per_camera=(1, 1), seed=1))
    result = CliRunner().invoke(app, ["parts", "-i", "synth/cam3", "--keypoints-root", "synth", "-o", "parts.png"])
    assert result.exit_code == 0, result.output
    _png(tmp_path / "parts.png")
    result = CliRunner().invoke(app, ["retrieval", "--dataset-root", "synth", "-k", "2", "-o", "r.png"])
    assert result.exit_code == 0, result.output
    _png(tmp_path / "r.png")


def test_clear_errors_on_image_inputs(tmp_path):
    cv2.imwrite(str(tmp_path / "crop.png"), np.full((64, 32, 3), 90, np.uint8))
    no_maps = CliRunner().invoke(app, ["parts", "-i", "crop.png", "-o", "x.png"])
    assert no_maps.exit_code == 2 and "pose maps" in no_maps.stderr
    (tmp_path / "corrupt.jpg").write_bytes(b"not an image")
    corrupt = CliRunner().invoke(app, ["cam", "--preset", "baseline-small", "-i", "corrupt.jpg", "-o", "x.png"])
    assert corrupt.exit_code == 2 and "cannot decode" in corrupt.stderr
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((64, 32, 3), 9000, np.uint16))
    deep = CliRunner().invoke(app, ["cam", "--preset", "baseline-small", "-i", "deep.png", "-o", "x.png"])
    assert deep.exit_code == 2 and "8-bit" in deep.stderr
    baseline = CliRunner().invoke(app, ["parts", "--preset", "baseline-small", "-o", "x.png"])
    assert baseline.exit_code == 2 and "no TPI" in baseline.stderr
    assert not (tmp_path / "x.png").exists()
