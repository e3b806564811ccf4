"""SYSU-MM01 / RegDB readers against the protocol on a small generated tree."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from spot_edge.training.datasets import (
    DatasetLayoutError,
    regdb_list,
    regdb_test,
    regdb_train,
    sysu_gallery,
    sysu_query,
    sysu_train,
)


def _make_sysu_tree(root, seed=0):
    """Random tree: ids with variable image counts, some camera folders missing."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(1, 200), size=14, replace=False)
    train, val, test = sorted(ids[:6]), sorted(ids[6:8]), list(ids[8:])  # test ids unsorted on purpose
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(parents=True)
        for pid in ids:
            if pid in train or pid in val:
                needed = cam in (1, 3)  # every training id has both modalities
            else:
                needed = cam == 3
            if not needed and rng.random() < 0.3:
                continue
            d = root / f"cam{cam}" / f"{pid:04d}"
            d.mkdir()
            for n in rng.choice(np.arange(1, 30), size=rng.integers(1, 6), replace=False):
                (d / f"{n:04d}.jpg").write_bytes(b"x")
    (root / "cam1" / f"{ids[0]:04d}" / "notes.txt").write_text("not an image")
    (root / "exp").mkdir()
    (root / "exp" / "train_id.txt").write_text(",".join(str(i) for i in train) + "\n")
    (root / "exp" / "val_id.txt").write_text(",".join(str(i) for i in val))
    (root / "exp" / "test_id.txt").write_text(",".join(str(i) for i in test) + "\n")
    return train, val, test


def _reference_gallery(data_path, mode, trial):
    """Straight transcription of the protocol text (string paths, listdir, global random)."""
    random.seed(trial)
    cams = ["cam1", "cam2", "cam4", "cam5"] if mode == "all" else ["cam1", "cam2"]
    with open(os.path.join(data_path, "exp/test_id.txt")) as f:
        ids = ["%04d" % int(y) for y in f.read().splitlines()[0].split(",")]
    files = []
    for pid in sorted(ids):
        for cam in cams:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                new_files = sorted(img_dir + "/" + i for i in os.listdir(img_dir) if i.endswith(".jpg"))
                files.append(random.choice(new_files))
    return files


def _reference_query(data_path):
    with open(os.path.join(data_path, "exp/test_id.txt")) as f:
        ids = ["%04d" % int(y) for y in f.read().splitlines()[0].split(",")]
    files = []
    for pid in sorted(ids):
        for cam in ["cam3", "cam6"]:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                files.extend(sorted(img_dir + "/" + i for i in os.listdir(img_dir)))
    return files


@pytest.fixture()
def sysu_root(tmp_path):
    root = tmp_path / "SYSU-MM01"
    _make_sysu_tree(root)
    return root


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_gallery_reproduces_protocol_draws(sysu_root, mode):
    for trial in range(10):
        g = sysu_gallery(sysu_root, mode, trial)
        ref = _reference_gallery(str(sysu_root), mode, trial)
        assert [os.path.normpath(p) for p in g.paths] == [os.path.normpath(p) for p in ref]
        for p, pid, cam in zip(g.paths, g.pids, g.cams):
            parts = os.path.normpath(p).split(os.sep)
            assert parts[-3] == f"cam{cam}" and parts[-2] == f"{pid:04d}"
        assert set(g.cams.tolist()) <= ({1, 2, 4, 5} if mode == "all" else {1, 2})


def test_gallery_is_seeded_and_leaves_global_random_alone(sysu_root):
    random.seed(123)
    expected_next = random.random()
    random.seed(123)
    a = sysu_gallery(sysu_root, "all", 3)
    assert random.random() == expected_next
    assert sysu_gallery(sysu_root, "all", 3).paths == a.paths
    assert any(sysu_gallery(sysu_root, "all", t).paths != a.paths for t in range(10) if t != 3)


def test_query_order(sysu_root):
    q = sysu_query(sysu_root, "all")
    assert [os.path.normpath(p) for p in q.paths] == [os.path.normpath(p) for p in _reference_query(str(sysu_root))]
    assert q.paths == sysu_query(sysu_root, "indoor").paths
    assert set(q.cams.tolist()) <= {3, 6}
    assert list(q.pids) == sorted(q.pids)


def test_train_merges_train_and_val_with_sorted_labels(sysu_root):
    train_ids = sorted(
        int(x) for f in ("train_id.txt", "val_id.txt") for x in (sysu_root / "exp" / f).read_text().strip().split(",")
    )
    t = sysu_train(sysu_root)
    assert t.label_to_id == tuple(train_ids)
    assert t.num_classes == 8
    for side, cams in ((t.visible, {1, 2, 4, 5}), (t.infrared, {3, 6})):
        assert set(side.cams.tolist()) <= cams
        assert set(side.pids.tolist()) == set(range(8))
        for p, label in zip(side.paths, side.pids):
            assert os.path.normpath(p).split(os.sep)[-2] == f"{train_ids[label]:04d}"
        assert all(p.endswith(".jpg") for p in side.paths)


def test_missing_and_partial_trees_fail_clearly(tmp_path, sysu_root):
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        sysu_query(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="mode"):
        sysu_gallery(sysu_root, "outdoor", 0)
    (sysu_root / "exp" / "test_id.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="test_id.txt"):
        sysu_query(sysu_root)
    partial = tmp_path / "partial"
    _make_sysu_tree(partial, seed=1)
    os.rename(partial / "cam6", partial / "cam6_old")
    with pytest.raises(DatasetLayoutError, match="cam6"):
        sysu_train(partial)
    os.rename(partial / "cam6_old", partial / "cam6")
    ids = [int(x) for x in (partial / "exp" / "train_id.txt").read_text().strip().split(",")]
    for cam in (3, 6):
        d = partial / f"cam{cam}" / f"{ids[0]:04d}"
        if d.is_dir():
            for f in d.iterdir():
                f.unlink()
    with pytest.raises(DatasetLayoutError, match="infrared"):
        sysu_train(partial)


def _make_regdb(root):
    (root / "idx").mkdir(parents=True)
    for split in range(1, 11):
        for part, labels in (("train", range(0, 3)), ("test", range(3, 6))):
            for mod, folder in (("visible", "Visible"), ("thermal", "Thermal")):
                lines = [f"{folder}/{pid}/{mod[0]}_{pid}_{n}.bmp {pid}" for pid in labels for n in range(2)]
                (root / "idx" / f"{part}_{mod}_{split}.txt").write_text("\n".join(lines) + "\n")


def test_regdb_reader(tmp_path):
    root = tmp_path / "RegDB"
    _make_regdb(root)
    vis = regdb_list(root, 1, "test", "visible")
    assert vis.paths[0] == os.path.join(str(root), "Visible/3/v_3_0.bmp")
    assert vis.pids.tolist() == [3, 3, 4, 4, 5, 5]
    q, g = regdb_test(root, 2, "thermal-to-visible")
    assert all("Thermal" in p for p in q.paths) and all("Visible" in p for p in g.paths)
    t = regdb_train(root, 1)
    assert t.num_classes == 3 and t.visible.pids.tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="1..10"):
        regdb_list(root, 0, "test", "visible")
    (root / "idx" / "test_thermal_4.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="test_thermal_4"):
        regdb_test(root, 4)
    (root / "idx" / "test_visible_5.txt").write_text("Visible/1/a.bmp\n")
    with pytest.raises(ValueError, match="test_visible_5.txt:1"):
        regdb_list(root, 5, "test", "visible")


def test_a_relative_root_gives_absolute_paths(tmp_path, monkeypatch, sysu_root):
    monkeypatch.chdir(sysu_root.parent)
    q = sysu_query(sysu_root.name)
    assert q.paths == sysu_query(sysu_root).paths and all(os.path.isabs(p) for p in q.paths)
    assert sysu_train(sysu_root.name).visible.paths == sysu_train(sysu_root).visible.paths


def test_incomplete_test_sets_are_named(tmp_path):
    from spot_edge.training.datasets import check_sysu_test_set

    root = tmp_path / "sysu"
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(parents=True)
    (root / "exp").mkdir()
    (root / "exp" / "test_id.txt").write_text("1,2,3\n")
    for pid, cams in ((1, (1, 3)), (2, (6,)), (3, (4,))):  # 2 has no visible, 3 no infrared image
        for cam in cams:
            (root / f"cam{cam}" / f"{pid:04d}").mkdir()
            (root / f"cam{cam}" / f"{pid:04d}" / "0001.jpg").write_bytes(b"x")
    with pytest.raises(DatasetLayoutError, match=r"2 test identities .*0002 \(visible\), 0003 \(infrared\)"):
        check_sysu_test_set(root)
    (root / "cam2" / "0002").mkdir()
    (root / "cam2" / "0002" / "0001.jpg").write_bytes(b"x")
    (root / "cam3" / "0003").mkdir()
    (root / "cam3" / "0003" / "0001.jpg").write_bytes(b"x")
    check_sysu_test_set(root)  # complete: no error (indoor-only gaps are the protocol's own)
