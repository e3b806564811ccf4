"""Training options the paper leaves open: parameter groups of the new modules, gradient
clipping, random-erasing fill, the validation split and best-on-validation model selection,
and the checks of their configuration values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spot_edge.training.augment import random_erase
from spot_edge.training.config import TrainConfigError, apply_overrides, load_train_config
from spot_edge.training.datasets import hold_out_identities, sysu_train
from spot_edge.training.optimizer import clip_gradients, make_optimizer, parameter_groups
from training_helpers import TINY_MODEL, tiny_config


@pytest.fixture(scope="module")
def spot_model():
    from spot_edge.model import SPOT
    from spot_edge.training.loop import build_spot_config

    torch.manual_seed(0)
    return SPOT(build_spot_config({**TINY_MODEL, "preset": "spot-small"}, 4))


def _ids(params) -> set[int]:
    return {id(p) for p in params}


# ----------------------------------------------------------------- parameter groups

def test_new_module_group_holds_exactly_the_named_modules(spot_model):
    cfg = load_train_config(None, ["optim.lr=0.1", "optim.backbone_lr_factor=0.1", "optim.new_module_lr_factor=0.1",
                                   "optim.new_modules=[asr, tpi, fusion]"]).optim
    groups = {g["name"]: g for g in make_optimizer(spot_model, cfg).param_groups}
    m = spot_model
    assert _ids(groups["added"]["params"]) == _ids([*m.asr.parameters(), *m.tpi.parameters(), *m.fusion.parameters()])
    assert _ids(groups["backbone"]["params"]) == _ids(m.backbone.parameters())
    assert groups["added"]["lr"] == pytest.approx(0.01) and groups["backbone"]["lr"] == pytest.approx(0.01)
    assert groups["new"]["lr"] == pytest.approx(0.1)
    rest = _ids([*m.relation.parameters(), *m.injection.parameters(), *m.heads.parameters()])
    assert _ids(groups["new"]["params"]) == {i for i in rest if i in _ids(p for p in m.parameters() if p.requires_grad)}
    every = [id(p) for g in groups.values() for p in g["params"]]
    assert len(every) == len(set(every)) == sum(1 for p in m.parameters() if p.requires_grad)


def test_new_module_group_defaults(spot_model):
    everything_added = load_train_config(None, ["optim.new_module_lr_factor=0.5"]).optim  # default list: all five
    groups = {g["name"]: g for g in parameter_groups(spot_model, everything_added)}
    m = spot_model
    assert _ids(groups["added"]["params"]) == _ids(p for name in ("relation", "injection", "asr", "tpi", "fusion")
                                                   for p in getattr(m, name).parameters())
    assert _ids(groups["new"]["params"]) == _ids(p for p in m.heads.parameters() if p.requires_grad)
    # factor 1 (the default): the two groups of earlier versions, so older runs resume
    assert [g["name"] for g in parameter_groups(m, load_train_config(None, []).optim)] == ["backbone", "new"]


def test_new_module_group_skips_modules_a_configuration_lacks():
    from spot_edge.model import SPOT
    from spot_edge.training.loop import build_spot_config

    baseline = SPOT(build_spot_config({**TINY_MODEL, "preset": "baseline-small"}, 4))
    cfg = load_train_config(None, ["optim.new_module_lr_factor=0.1"]).optim
    assert [g["name"] for g in parameter_groups(baseline, cfg)] == ["backbone", "new"]


# ----------------------------------------------------------------- clipping

def test_clipping_bounds_the_gradient_norm():
    torch.manual_seed(1)
    params = [torch.nn.Parameter(torch.randn(5, 4)), torch.nn.Parameter(torch.randn(7))]
    for p in params:
        p.grad = torch.randn_like(p) * 100
    before = float(torch.sqrt(sum(p.grad.pow(2).sum() for p in params)))
    grads = [p.grad.clone() for p in params]
    assert clip_gradients(params, None) == pytest.approx(before, rel=1e-5)   # measured, nothing changed
    assert all(torch.equal(p.grad, g) for p, g in zip(params, grads))
    assert clip_gradients(params, 2.0) == pytest.approx(before, rel=1e-5)    # the norm before clipping
    after = float(torch.sqrt(sum(p.grad.pow(2).sum() for p in params)))
    assert after <= 2.0 + 1e-4 and after == pytest.approx(2.0, rel=1e-3)
    torch.testing.assert_close(params[0].grad / after, grads[0] / before)   # same direction
    small = [torch.nn.Parameter(torch.ones(3))]
    small[0].grad = torch.full((3,), 0.1)
    clip_gradients(small, 2.0)
    assert torch.equal(small[0].grad, torch.full((3,), 0.1))                 # below the limit: untouched


# ----------------------------------------------------------------- random erasing

def test_erasing_fills_mean_or_noise_in_the_same_rectangle():
    image = np.full((3, 32, 16), 5.0, np.float32)
    noise = random_erase(image.copy(), np.random.default_rng(3), (0.2, 0.3), fill="noise")
    mean = random_erase(image.copy(), np.random.default_rng(3), (0.2, 0.3), fill="mean")
    erased = noise != 5.0
    assert erased.any() and np.array_equal(erased, mean != 5.0)          # one rectangle, same place
    assert np.all(mean[erased] == 0.0)                                   # the mean colour (normalised)
    assert noise[erased].std() > 0.5 and abs(noise[erased].mean()) < 0.5  # N(0, 1) values
    with pytest.raises(ValueError, match="erasing fill"):
        random_erase(image.copy(), np.random.default_rng(3), fill="grey")


# ----------------------------------------------------------------- configuration values

@pytest.mark.parametrize("overrides, fragment", [
    (["augment.erasing_fill=grey"], "augment.erasing_fill must be one of noise, mean, got 'grey'"),
    (["augment.erasing_fill=0"], "augment.erasing_fill must be a string, got 0"),
    (["optim.new_module_lr_factor=fast"], "optim.new_module_lr_factor must be a number, got 'fast'"),
    (["optim.new_module_lr_factor=-0.1"], "optim.new_module_lr_factor must be at least 0"),
    (["optim.new_modules=asr"], "optim.new_modules must be a list of strings, got 'asr'"),
    (["optim.new_modules=[asr, heads]"], "optim.new_modules must name distinct modules among relation"),
    (["optim.new_modules=[asr, asr]"], "optim.new_modules must name distinct modules"),
    (["optim.grad_clip=0"], "optim.grad_clip must be positive"),
    (["optim.grad_clip=big"], "optim.grad_clip must be a number or null"),
    (["run.select=best"], "run.select must be one of final, best-val, got 'best'"),
    (["run.select=best-val", "run.eval_every=1"], "run.select 'best-val' needs a validation split: data.val_ids >= 2"),
    (["run.select=best-val", "data.val_ids=4"], "run.select 'best-val' needs run.eval_every >= 1"),
    (["run.select_metric=top1"], "run.select_metric must be one of mAP, R-1, mINP"),
    (["data.val_ids=-1"], "data.val_ids must be at least 0"),
    (["data.val_ids=some"], "data.val_ids must be an integer, got 'some'"),
    (["model.injection_bn_init=half"], "injection_bn_init must be 'one' or 'zero', got 'half'"),
    (["model.injection_bn_init=0"], "model.injection_bn_init must be a string, got 0"),
    (["model.transformer_norm=middle"], "transformer_norm must be 'post' or 'pre', got 'middle'"),
    (["model.asr_pooling=max"], "asr_pooling must be 'gem' or 'avg', got 'max'"),
    (["model.preset=asr", "model.embedding=base+ip"], "embedding 'base+ip' needs the branch(es) ip"),
])
def test_option_values_are_checked_by_name(overrides, fragment):
    with pytest.raises(TrainConfigError) as info:
        load_train_config(None, overrides)
    assert fragment in str(info.value)


# ----------------------------------------------------------------- validation split and model selection

@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from spot_edge.training.synthetic_dataset import SyntheticConfig, generate_sysu_like

    root = tmp_path_factory.mktemp("options") / "sysu"
    generate_sysu_like(root, SyntheticConfig(num_train=8, num_val=0, num_test=3, images_per_camera=(1, 2),
                                             height=64, width=32, seed=13))
    return root


def test_held_out_identities_are_disjoint_and_relabelled(tiny_root):
    full = sysu_train(tiny_root)
    trained, held = hold_out_identities(full, 3, seed=4)
    assert set(trained.label_to_id).isdisjoint(held.label_to_id)
    assert sorted(trained.label_to_id + held.label_to_id) == list(full.label_to_id) and held.num_classes == 3
    identity_of = {p: full.label_to_id[label] for side in (full.visible, full.infrared)
                   for p, label in zip(side.paths, side.pids.tolist())}
    for part in (trained, held):
        for side in (part.visible, part.infrared):
            assert set(side.pids.tolist()) == set(range(part.num_classes))
            # every image keeps its identity: label -> original id through the part's own table
            assert all(identity_of[p] == part.label_to_id[label] for p, label in zip(side.paths, side.pids.tolist()))
    assert len(trained.visible.paths) + len(held.visible.paths) == len(full.visible.paths)
    assert hold_out_identities(full, 3, seed=4)[1].label_to_id == held.label_to_id     # seeded
    for count in (0, full.num_classes - 1):
        with pytest.raises(ValueError, match="validation split"):
            hold_out_identities(full, count)


def _selection_config(root, out_dir, **extra):
    from spot_edge.training.config import TrainConfig

    cfg = tiny_config(root=str(root), out_dir=str(out_dir), preset="baseline-small", epochs=2,
                      sampler={"num_ids": 3, "num_instances": 1, "batches_per_epoch": 1},
                      data={"val_ids": 3, "val_seed": 1}, run={"eval_every": 1, "select": "best-val", "eval_trials": 2,
                                                               "log_every": 0})
    return TrainConfig.from_dict(apply_overrides(cfg, [f"{k}={v}" for k, v in extra.items()]))


def test_best_on_validation_never_reads_the_test_split_before_the_end(tiny_root, tmp_path, monkeypatch):
    import spot_edge.training.evaluation as evaluation
    from spot_edge.model import read_checkpoint
    from spot_edge.training.loop import train

    test_reads = []
    original = evaluation.check_sysu_test_set   # runs exactly when the test split is evaluated
    monkeypatch.setattr(evaluation, "check_sysu_test_set", lambda root: (test_reads.append(1), original(root))[1])
    split = tmp_path / "split"
    first = train(_selection_config(tiny_root, split), max_epochs=1, show_progress=False)
    assert "results" not in first and test_reads == []
    summary = train(_selection_config(tiny_root, split), show_progress=False)        # resumes, then tests once
    assert len(test_reads) == 2                    # all-search and indoor-search, once each, at the end
    records = [json.loads(line) for line in (split / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "val"] == [0, 1]
    assert [r["kind"] for r in records if r["kind"] in ("eval", "selection")] == ["selection", "eval"]
    selection = json.loads((split / "selection.json").read_text())
    assert selection == summary["selection"] and selection["epoch"] in (0, 1) and selection["metric"] == "mAP"
    chosen = [r for r in records if r["kind"] == "val" and r["epoch"] == selection["epoch"]][0]
    assert selection["value"] == pytest.approx(chosen["mAP"])
    assert max(r["mAP"] for r in records if r["kind"] == "val") == pytest.approx(selection["value"])
    config, _, extra = read_checkpoint(split / "best.safetensors")
    assert extra["epoch"] == selection["epoch"] + 1 and config.num_classes == 5     # 8 ids, 3 held out
    assert (split / "results.json").is_file() and "SYSU-MM01 all-search" in summary["results"]
    straight = train(_selection_config(tiny_root, tmp_path / "straight"), show_progress=False)
    assert straight["selection"] == summary["selection"]                            # exact resume, same choice


def test_a_validation_split_too_large_is_refused(tiny_root, tmp_path):
    from spot_edge.training.loop import train

    with pytest.raises(ValueError, match="cannot hold out 7 of 8 training identities"):
        train(_selection_config(tiny_root, tmp_path / "r", **{"data.val_ids": 7}), show_progress=False)


def test_regdb_validation_searches_thermal_among_visible_of_the_held_out_ids():
    from spot_edge.training.datasets import ImageList, TrainSet
    from spot_edge.training.evaluation import evaluate_held_out

    labels = np.repeat(np.arange(3), 2)
    held = TrainSet(ImageList([f"v{i}" for i in range(6)], labels, np.ones(6, np.int64)),
                    ImageList([f"t{i}" for i in range(6)], labels, np.full(6, 2, np.int64)), (7, 8, 9))
    calls = []

    def embed(paths, modality):                      # identity i -> basis vector i (t0 and t1 swapped)
        calls.append((paths[0][0], modality))
        ids = [int(p[1:]) // 2 for p in paths]
        if modality == "infrared":
            ids = [{0: 1, 1: 0}.get(i, i) for i in ids]
        return np.eye(3, dtype=np.float32)[ids]

    result = evaluate_held_out(embed, held, "regdb", root="unused")
    assert calls == [("t", "infrared"), ("v", "visible")]
    assert result["R-1"] == pytest.approx(1 / 3) and result["split"] == "validation"
