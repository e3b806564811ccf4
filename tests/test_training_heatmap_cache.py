"""Heatmap cache: encoding, build from keypoints, manifest checks."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from spot_edge.pose.render import render_pose_maps
from spot_edge.training.heatmap_cache import (
    HeatmapCache,
    HeatmapCacheError,
    build_heatmap_cache,
    decode_maps,
    encode_maps,
    keypoint_source,
    network_source,
)
from spot_edge.training.synthetic_dataset import SyntheticConfig, generate_sysu_like, load_keypoints


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("hm") / "sysu"
    generate_sysu_like(root, SyntheticConfig(num_train=3, num_val=0, num_test=2, images_per_camera=(1, 2),
                                             height=64, width=32, seed=5))
    return root


def test_encoding_round_trip():
    rng = np.random.default_rng(0)
    maps = np.concatenate([rng.random((18, 8, 4)), rng.uniform(-1, 1, (38, 8, 4))]).astype(np.float32)
    maps[20] = 0.0
    u8 = decode_maps(encode_maps(maps, "uint8"))
    assert np.abs(u8 - maps).max() <= 0.5 / 127 + 1e-6
    assert np.all(u8[20] == 0.0)  # a zero PAF decodes exactly
    f16 = decode_maps(encode_maps(maps, "float16"))
    assert np.abs(f16 - maps).max() < 1e-3
    with pytest.raises(ValueError, match="dtype"):
        encode_maps(maps, "int8")


@pytest.mark.parametrize("dtype", ["uint8", "float16"])
def test_build_from_keypoints_and_read(tree, tmp_path, dtype):
    kps = load_keypoints(tree)
    paths = sorted(kps)
    cache = build_heatmap_cache(tmp_path / "c", tree, paths, keypoint_source(kps), (16, 8), dtype=dtype,
                                source_name="synthetic-keypoints")
    assert len(cache) == len(paths) and cache.map_size == (16, 8)
    reopened = HeatmapCache(tmp_path / "c", tree)
    rel = paths[0]
    expected = render_pose_maps(kps[rel], (64, 32), (16, 8), sigma=7 * 64 / 288, paf_width=8 * 64 / 288)
    got = reopened.get(os.path.join(str(tree), rel))  # absolute path works too
    assert np.abs(got - expected).max() < 0.01
    assert got[:18].max() > 0.5  # keypoints present
    batch = reopened.get_batch(paths[:3])
    assert batch.shape == (3, 56, 16, 8)
    assert reopened.verify(paths) == []
    assert np.load(tmp_path / "c" / "heatmaps.npy", mmap_mode="r").dtype == np.dtype(dtype)


def test_stale_missing_and_unknown_entries_are_reported(tree, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tree, root)
    kps = load_keypoints(root)
    paths = sorted(kps)
    cache = build_heatmap_cache(tmp_path / "c", root, paths[1:], keypoint_source(kps), (8, 4))
    with pytest.raises(HeatmapCacheError, match="no entry"):
        cache.get(paths[0])
    problems = cache.verify(paths)
    assert [(p.path, p.kind) for p in problems] == [(paths[0], "no-entry")]
    # A touched but identical file is not stale; a changed one is; a deleted one is missing.
    t = time.time() + 5
    os.utime(root / paths[1], (t, t))
    with open(root / paths[2], "ab") as f:
        f.write(b"\0")
    os.remove(root / paths[3])
    kinds = {p.path: p.kind for p in cache.verify()}
    assert kinds == {paths[2]: "stale", paths[3]: "missing-image"}
    with pytest.raises(HeatmapCacheError, match="Rebuild"):
        cache.require_fresh()


def test_network_source_and_errors(tree, tmp_path):
    rng = np.random.default_rng(1)
    fake = rng.random((56, 8, 4)).astype(np.float32) * 0.5

    kps = load_keypoints(tree)
    cache = build_heatmap_cache(tmp_path / "n", tree, sorted(kps)[:2], network_source(lambda img: fake[None]),
                                (8, 4), dtype="float16")
    np.testing.assert_allclose(cache.get(sorted(kps)[0]), fake, atol=1e-3)
    with pytest.raises(HeatmapCacheError, match="expected"):
        build_heatmap_cache(tmp_path / "bad", tree, sorted(kps)[:1], lambda r, p, s: np.ones((5, 8, 4)), (8, 4))
    with pytest.raises(HeatmapCacheError, match="no heatmap cache"):
        HeatmapCache(tmp_path / "nothing", tree)


def test_openpose_png_source(tree, tmp_path):
    from spot_edge.pose.openpose_png import write_pose_heatmaps_png
    from spot_edge.training.heatmap_cache import openpose_png_source

    kps = load_keypoints(tree)
    paths = sorted(kps)[:3]
    png_root = tmp_path / "openpose"
    expected = {}
    for rel in paths:
        maps = render_pose_maps(kps[rel], (64, 32), (8, 4), sigma=3.0, paf_width=3.0)
        expected[rel] = maps
        write_pose_heatmaps_png(png_root / (os.path.splitext(rel)[0] + "_pose_heatmaps.png"), maps)
    cache = build_heatmap_cache(tmp_path / "c", tree, paths, openpose_png_source(png_root), (8, 4))
    for rel in paths:
        assert np.abs(cache.get(rel) - expected[rel]).max() < 0.03
    with pytest.raises(HeatmapCacheError, match="does not exist"):
        build_heatmap_cache(tmp_path / "c2", tree, sorted(kps)[3:4], openpose_png_source(png_root), (8, 4))


def test_a_root_relative_to_the_working_directory_works(tree, tmp_path, monkeypatch):
    """The dataset readers' paths and the cache agree whatever form the root was typed in."""
    import shutil

    from spot_edge.training.datasets import sysu_train

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tree, "data/s")
    kps = load_keypoints("data/s")
    build_heatmap_cache("data/s/cache", "data/s", sorted(kps), keypoint_source(kps), (8, 4))
    train = sysu_train("data/s")
    for root in ("data/s", "./data/s", str(tmp_path / "data" / "s"), "data/../data/s"):
        cache = HeatmapCache("data/s/cache", root)
        assert cache.verify(train.visible.paths + train.infrared.paths) == []
        assert cache.get_batch(train.visible.paths[:2]).shape == (2, 56, 8, 4)
    with pytest.raises(HeatmapCacheError, match="outside the dataset root"):
        cache.get(str(tmp_path / "elsewhere.jpg"))


def test_an_interrupted_build_keeps_the_previous_cache(tree, tmp_path):
    kps = load_keypoints(tree)
    paths = sorted(kps)
    build_heatmap_cache(tmp_path / "c", tree, paths[:2], keypoint_source(kps), (8, 4))

    def failing_source(rel, path, size):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        build_heatmap_cache(tmp_path / "c", tree, paths, failing_source, (8, 4))
    assert len(HeatmapCache(tmp_path / "c", tree)) == 2
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["heatmaps.npy", "manifest.json"]
