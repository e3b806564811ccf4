"""Synthetic SYSU-like dataset generator: layout, determinism, modalities, keypoints."""

from __future__ import annotations

import hashlib
import json
import os

import cv2
import numpy as np
import pytest

from spot_edge.training.datasets import sysu_gallery, sysu_query, sysu_train
from spot_edge.training.synthetic_dataset import (
    SyntheticConfig,
    generate_sysu_like,
    keypoints_for_image,
    load_keypoints,
    make_identity,
    render_person,
)

SMALL = SyntheticConfig(num_train=5, num_val=1, num_test=4, images_per_camera=(1, 3), height=64, width=32, seed=3)


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            h.update(os.path.relpath(p, root).encode())
            with open(p, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "sysu"
    summary = generate_sysu_like(root, SMALL)
    return root, summary


def test_layout_is_readable_by_the_sysu_protocol(small_tree):
    root, summary = small_tree
    assert summary["num_ids"] == 10
    assert sorted(summary["train_ids"] + summary["val_ids"] + summary["test_ids"]) == list(range(1, 11))
    train = sysu_train(root)
    assert train.num_classes == 6
    assert set(train.visible.pids.tolist()) == set(range(6)) == set(train.infrared.pids.tolist())
    q = sysu_query(root, "all")
    g = sysu_gallery(root, "all", 0)
    assert set(q.pids.tolist()) == set(summary["test_ids"])
    assert set(g.pids.tolist()) == set(summary["test_ids"])
    img = cv2.imread(q.paths[0])
    assert img.shape == (64, 32, 3)


def test_generation_is_deterministic_and_worker_independent(small_tree, tmp_path):
    root, _ = small_tree
    other = tmp_path / "again"
    generate_sysu_like(other, SMALL, workers=2)
    assert _digest(root) == _digest(other)


def test_keypoints_match_images(small_tree):
    root, _ = small_tree
    kps = load_keypoints(root)
    images = [os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
              for d, _, fs in os.walk(root) for f in fs if f.endswith(".jpg")]
    assert sorted(kps) == sorted(images)
    first = images[0]
    np.testing.assert_array_equal(keypoints_for_image(root, first), kps[first])
    for kp in kps.values():
        assert kp.shape == (1, 18, 3)
        vis = kp[0, :, 2] > 0
        assert vis.sum() >= 12
        assert np.all(kp[0, vis, 0] >= 0) and np.all(kp[0, vis, 0] <= 31)
        assert np.all(kp[0, vis, 1] >= 0) and np.all(kp[0, vis, 1] <= 63)
    doc = json.loads(next((root / "keypoints" / "cam1").iterdir()).read_text())
    assert doc["keypoint_names"][1] == "neck" and doc["image_size"] == [64, 32]


def test_infrared_has_no_colour_and_a_warm_body():
    warm = []
    for pid in range(1, 8):
        ident = make_identity(pid, seed=0)
        for n in range(3):
            img, kp = render_person(ident, 3, np.random.default_rng([0, 3, pid, n]), 128, 64)
            assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])
            gray = img[..., 0].astype(np.float32)
            pts = kp[0][kp[0, :, 2] > 0][:, :2].round().astype(int)
            warm.append(gray[pts[:, 1].clip(0, 127), pts[:, 0].clip(0, 63)].mean() - gray.mean())
            colour, _ = render_person(ident, 1, np.random.default_rng([0, 1, pid, n]), 128, 64)
            assert np.abs(colour[..., 0].astype(int) - colour[..., 2]).mean() > 3  # colour cues present
    assert np.mean(warm) > 10  # body (at the keypoints) brighter than the image on average


def test_identities_differ_and_images_vary():
    a, b = make_identity(1, 0), make_identity(2, 0)
    assert a != b and make_identity(1, 0) == a
    img1, kp1 = render_person(a, 1, np.random.default_rng(1))
    img2, kp2 = render_person(a, 1, np.random.default_rng(2))
    assert not np.array_equal(img1, img2) and not np.array_equal(kp1, kp2)


def test_bad_config_and_target(tmp_path):
    with pytest.raises(ValueError, match="images_per_camera"):
        SyntheticConfig(images_per_camera=(3, 1))
    (tmp_path / "precious.txt").write_text("data")
    for force in (False, True):
        with pytest.raises(FileExistsError, match="not empty"):
            generate_sysu_like(tmp_path, SMALL, force=force)
    assert (tmp_path / "precious.txt").read_text() == "data"
    with pytest.raises(FileNotFoundError, match="keypoints"):
        load_keypoints(tmp_path)


def test_generation_is_all_or_nothing(tmp_path, small_tree):
    root, _ = small_tree
    target = tmp_path / "sysu"

    def interrupt(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_sysu_like(target, SMALL, progress=interrupt)
    assert list(tmp_path.iterdir()) == []  # no partial tree, no temporary folder
    generate_sysu_like(target, SMALL)
    before = _digest(target)
    with pytest.raises(KeyboardInterrupt):
        generate_sysu_like(target, SMALL, progress=interrupt, force=True)
    assert _digest(target) == before and sorted(p.name for p in tmp_path.iterdir()) == ["sysu"]
