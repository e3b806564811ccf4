"""Training pieces: sampler, augmentation (image and maps alike), losses, schedule, config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spot_edge.pose.render import render_pose_maps
from spot_edge.pose.skeleton import flip_keypoints
from spot_edge.training.augment import flip_pair, pad_crop_pair, random_erase, translate_image, translate_maps
from spot_edge.training.config import TrainConfig, apply_overrides, load_train_config
from spot_edge.training.loop import WarmupStepSchedule
from spot_edge.training.losses import SpotLoss, batch_hard_triplet
from spot_edge.training.sampler import IdentitySampler


def _keypoints(rng, h=64, w=32):
    kp = np.zeros((1, 18, 3), np.float32)
    kp[0, :, 0] = rng.uniform(6, w - 7, 18)
    kp[0, :, 1] = rng.uniform(6, h - 7, 18)
    kp[0, :, 2] = 1
    return kp


# ----------------------------------------------------------------- sampler

def test_sampler_batches_follow_the_recipe():
    rng = np.random.default_rng(0)
    vis = rng.integers(0, 12, 300)
    ir = rng.integers(0, 12, 150)
    s = IdentitySampler(vis, ir, num_ids=8, num_instances=4, seed=3)
    assert s.batches_per_epoch == 300 // 32 + 1 and s.batch_size == 64
    plan = s.epoch_plan(0)
    for b in plan:
        ids = b.labels.reshape(8, 4)
        assert len(set(ids[:, 0])) == 8 and np.all(ids == ids[:, :1])
        assert np.array_equal(vis[b.visible], b.labels) and np.array_equal(ir[b.infrared], b.labels)
    again = IdentitySampler(vis, ir, 8, 4, seed=3).epoch_plan(0)
    assert all(np.array_equal(a.visible, b.visible) for a, b in zip(plan, again))
    other = s.epoch_plan(1)
    assert not all(np.array_equal(a.visible, b.visible) for a, b in zip(plan, other))
    with pytest.raises(ValueError, match="same identities"):
        IdentitySampler([0, 1, 2], [0, 1], 2, 1)
    with pytest.raises(ValueError, match="fewer"):
        IdentitySampler([0, 1], [0, 1], 8, 1)


# ----------------------------------------------------------------- augmentation

def test_flip_pair_matches_rendering_the_mirrored_keypoints():
    rng = np.random.default_rng(1)
    kp = _keypoints(rng)
    image = rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)
    maps = render_pose_maps(kp, (64, 32), (32, 16), sigma=2.0, paf_width=2.0)
    img_f, maps_f = flip_pair(image, maps)
    assert np.array_equal(img_f, image[:, ::-1])
    expected = render_pose_maps(flip_keypoints(kp, 32), (64, 32), (32, 16), sigma=2.0, paf_width=2.0)
    np.testing.assert_allclose(maps_f, expected, atol=1e-5)


@pytest.mark.parametrize("tx,ty", [(4, -8), (-2, 3), (0, 0)])
def test_translation_moves_maps_with_the_image(tx, ty):
    rng = np.random.default_rng(2)
    kp = _keypoints(rng)
    maps = render_pose_maps(kp, (64, 32), (32, 16), sigma=2.0, paf_width=2.0)
    moved = kp.copy()
    moved[..., 0] += tx
    moved[..., 1] += ty
    expected = render_pose_maps(moved, (64, 32), (32, 16), sigma=2.0, paf_width=2.0)
    got = translate_maps(maps, tx, ty, (64, 32))
    # Compare away from the borders (content shifted in from outside is zero in the translation).
    inner = (slice(None), slice(6, -6), slice(4, -4))
    err = np.abs(got[inner] - expected[inner])
    if tx % 2 == 0 and ty % 2 == 0:  # whole map pixels: exact
        assert err.max() < 1e-5
    else:  # half a map pixel: bilinear Gaussians close, binary PAF bands blur at their edges
        assert err[:18].max() < 0.2 and err[18:].mean() < 0.05
    img = rng.integers(1, 255, (64, 32, 3), dtype=np.uint8)
    out = translate_image(img, tx, ty)
    assert np.array_equal(out[max(ty, 0):64 + min(ty, 0), max(tx, 0):32 + min(tx, 0)],
                          img[max(-ty, 0):64 - max(ty, 0), max(-tx, 0):32 - max(tx, 0)])


def test_pad_crop_and_erasing_are_seeded():
    rng = np.random.default_rng(3)
    img = rng.integers(1, 255, (64, 32, 3), dtype=np.uint8)
    maps = rng.random((56, 16, 8)).astype(np.float32)
    a = pad_crop_pair(img, maps, 5, np.random.default_rng(9))
    b = pad_crop_pair(img, maps, 5, np.random.default_rng(9))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    x = rng.standard_normal((3, 64, 32)).astype(np.float32) + 10
    erased = random_erase(x.copy(), np.random.default_rng(0))
    changed = (erased != x).any(axis=0)
    assert 0 < changed.mean() < 0.5


# ----------------------------------------------------------------- losses

def test_batch_hard_triplet_against_a_loop():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(12, 5, generator=g)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    loss, _ = batch_hard_triplet(feats, labels, 0.3)
    ref = []
    for i in range(12):
        d = [(feats[i] - feats[j]).norm().item() for j in range(12)]
        ap = max(d[j] for j in range(12) if labels[j] == labels[i])
        an = min(d[j] for j in range(12) if labels[j] != labels[i])
        ref.append(max(0.0, ap - an + 0.3))
    assert loss.item() == pytest.approx(np.mean(ref), abs=1e-4)


def test_spot_loss_is_eq13():
    g = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    out = {"features": {"base": torch.randn(6, 4, generator=g)},
           "logits": {b: torch.randn(6, 3, generator=g) for b in ("base", "is", "ip", "if")}}
    weights = {"base": 1.0, "is": 0.6, "ip": 0.5, "if": 1.0}
    total, parts = SpotLoss(weights, 0.3)(out, labels)
    ce = {b: torch.nn.functional.cross_entropy(out["logits"][b], labels).item() for b in weights}
    tri = batch_hard_triplet(out["features"]["base"], labels, 0.3)[0].item()
    assert total.item() == pytest.approx(sum(weights[b] * ce[b] for b in weights) + tri, rel=1e-5)
    assert parts["id_is"] == pytest.approx(ce["is"], rel=1e-5)


# ----------------------------------------------------------------- schedule and config

def test_warmup_step_schedule_matches_the_recipe():
    p = torch.nn.Parameter(torch.ones(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 0.01}, {"params": [torch.nn.Parameter(torch.ones(1))], "lr": 0.1}])
    s = WarmupStepSchedule(opt, 10, [20, 50], 0.1)
    lrs = []
    for e in range(60):
        s.set_epoch(e)
        lrs.append((opt.param_groups[0]["lr"], opt.param_groups[1]["lr"]))
    assert lrs[0][1] == pytest.approx(0.01) and lrs[9][1] == pytest.approx(0.1)
    assert lrs[15][1] == pytest.approx(0.1) and lrs[20][1] == pytest.approx(0.01) and lrs[55][1] == pytest.approx(0.001)
    assert all(a == pytest.approx(0.1 * b) for a, b in lrs)


def test_config_rejects_typos_and_applies_overrides(tmp_path):
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_dict({"optim": {"learning_rate": 0.1}})
    with pytest.raises(ValueError, match="unknown training config sections"):
        TrainConfig.from_dict({"optimizer": {}})
    data = apply_overrides({}, ["optim.epochs=3", "model.preset=baseline-small", "augment.erasing_area=[0.1, 0.2]"])
    cfg = TrainConfig.from_dict(data)
    assert cfg.optim.epochs == 3 and cfg.model["preset"] == "baseline-small" and cfg.augment.erasing_area == [0.1, 0.2]
    with pytest.raises(ValueError, match="section.key=value"):
        apply_overrides({}, ["epochs=3"])
    path = tmp_path / "c.yaml"
    cfg.save(path)
    assert load_train_config(path).to_dict() == cfg.to_dict()
    with pytest.raises(FileNotFoundError):
        load_train_config(tmp_path / "missing.yaml")
