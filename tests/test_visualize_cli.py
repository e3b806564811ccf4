"""``spot-edge visualize`` sub-commands on synthetic people and random-weight presets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from spot_edge.cli.visualize import app


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
    out = tmp_path / "picture.png"
    result = CliRunner().invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    _png(out)


def test_tsne_from_embeddings_file(tmp_path, rng):
    ids = np.repeat(np.arange(8), 5)
    emb = rng.normal(size=(8, 16))[ids] + 0.05 * rng.normal(size=(40, 16))
    np.savez(tmp_path / "emb.npz", embeddings=emb, ids=ids, modalities=np.array(["visible", "infrared"] * 20))
    result = CliRunner().invoke(app, ["tsne", "--embeddings", str(tmp_path / "emb.npz"), "--iterations", "250",
                                      "-o", str(tmp_path / "t.png")])
    assert result.exit_code == 0, result.output
    assert _png(tmp_path / "t.png").shape == (600, 600, 3)
    np.savez(tmp_path / "bad.npz", embeddings=emb)
    bad = CliRunner().invoke(app, ["tsne", "--embeddings", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "b.png")])
    assert bad.exit_code == 2 and "lacks arrays" in bad.output


def test_image_files_with_keypoints_root(tmp_path):
    from spot_edge.training.synthetic_dataset import SyntheticConfig, generate_sysu_like

    root = tmp_path / "synth"
    generate_sysu_like(root, SyntheticConfig(num_train=1, num_val=0, num_test=2, images_per_camera=(1, 1), seed=1))
    out = tmp_path / "parts.png"
    result = CliRunner().invoke(app, ["parts", "-i", str(root / "cam3"), "--keypoints-root", str(root), "-o", str(out)])
    assert result.exit_code == 0, result.output
    _png(out)
    result = CliRunner().invoke(app, ["retrieval", "--dataset-root", str(root), "-k", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output


def test_clear_errors(tmp_path):
    missing = CliRunner().invoke(app, ["cam", "-i", str(tmp_path / "nope"), "-o", str(tmp_path / "x.png")])
    assert missing.exit_code == 2 and "not found" in missing.output
    cv2.imwrite(str(tmp_path / "crop.png"), np.full((64, 32, 3), 90, np.uint8))
    no_maps = CliRunner().invoke(app, ["parts", "-i", str(tmp_path / "crop.png"), "-o", str(tmp_path / "x.png")])
    assert no_maps.exit_code == 2 and "pose maps" in no_maps.output
    (tmp_path / "corrupt.jpg").write_bytes(b"not an image")
    corrupt = CliRunner().invoke(app, ["cam", "--preset", "baseline-small", "-i", str(tmp_path / "corrupt.jpg"),
                                       "-o", str(tmp_path / "x.png")])
    assert corrupt.exit_code == 2 and "cannot decode" in corrupt.output
    wrong_suffix = CliRunner().invoke(app, ["cam", "--synthetic", "1", "-o", str(tmp_path / "x.jpg")])
    assert wrong_suffix.exit_code == 2 and ".png" in wrong_suffix.output
