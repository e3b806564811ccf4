"""SPOT network: shapes per preset, gradients, determinism, modality paths, bad input."""

import pytest
import torch

from spot_edge.model import SPOT, InputError, preset

TABLE1 = ["baseline", "structure", "asr", "tpi", "asr-tpi", "spot"]


def tiny(name="spot", **overrides):
    """A fast variant of a preset: ResNet-18, small heads."""
    return preset(f"{name}-small", num_classes=6, **overrides)


def inputs(batch=4, size=(128, 64), maps=(16, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, *size, generator=g)
    heatmaps = torch.rand(batch, 56, *maps, generator=g) * 2 - 1
    modality = torch.tensor([i % 2 for i in range(batch)])
    return images, heatmaps, modality


@pytest.mark.parametrize("name", TABLE1)
@pytest.mark.parametrize("size", [(128, 64), (96, 48)])
def test_shapes_per_preset_and_size(name, size):
    model = SPOT(tiny(name))
    images, heatmaps, modality = inputs(size=size, maps=(size[0] // 8, size[1] // 8))
    out = model.train()(images, heatmaps, modality)
    assert set(out["logits"]) == set(model.config.branches)
    for branch in model.config.branches:
        assert out["features"][branch].shape == (4, 512)
        assert out["logits"][branch].shape == (4, 6)
    with torch.no_grad():
        emb = model.eval()(images, heatmaps, "infrared")
    assert emb.shape == (4, model.config.embedding_dim)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))


@pytest.mark.parametrize("name", TABLE1 + ["b+k2"])
def test_gradients_reach_every_used_parameter(name):
    config = tiny("structure", structure_source="keypoints") if name == "b+k2" else tiny(name)
    model = SPOT(config).train()
    images, heatmaps, modality = inputs()
    out = model(images, heatmaps, modality)
    loss = sum(l.logsumexp(1).mean() for l in out["logits"].values()) + sum(f.pow(2).mean() for f in out["features"].values())
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not dead, f"parameters without gradient: {dead[:10]}"


def test_inject_layers_and_fusions_build_and_run():
    images, heatmaps, modality = inputs(batch=2, size=(64, 32), maps=(8, 4))
    for layer in (1, 2, 3, 4):
        for mode in ("add", "concat"):
            model = SPOT(tiny("structure", inject_layer=layer, injection_mode=mode)).eval()
            with torch.no_grad():
                assert model(images, heatmaps, "visible").shape == (2, 512)
    for fusion in ("max", "mean", "weighted", "concat"):
        model = SPOT(tiny("spot", fusion=fusion)).eval()
        with torch.no_grad():
            assert model(images, heatmaps, "visible").shape == (2, 512)
    for p in (2, 9):
        assert SPOT(tiny("tpi", num_parts=p)).eval()(images, heatmaps, "visible").shape == (2, 512)


def test_eval_is_deterministic_and_unit_norm():
    model = SPOT(tiny("spot")).eval()
    images, heatmaps, _ = inputs()
    with torch.no_grad():
        a = model(images, heatmaps, "visible")
        b = model(images, heatmaps, "visible")
    assert torch.equal(a, b)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(4))


def test_batch_modality_tensor_equals_per_modality_calls():
    model = SPOT(tiny("spot")).eval()
    images, heatmaps, modality = inputs()
    with torch.no_grad():
        mixed = model(images, heatmaps, modality)
        vis = model(images[0::2], heatmaps[0::2], "visible")
        ir = model(images[1::2], heatmaps[1::2], "infrared")
    torch.testing.assert_close(mixed[0::2], vis, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mixed[1::2], ir, atol=1e-5, rtol=1e-4)


def test_modality_paths_differ_and_trunk_is_shared():
    model = SPOT(tiny("spot")).eval()
    vis, ir = model.backbone.specific["visible"], model.backbone.specific["infrared"]
    vis_params = {id(p) for p in vis.parameters()}
    assert not vis_params & {id(p) for p in ir.parameters()}, "modality-specific weights must not be shared"
    # Separate initialisation: the two stems hold different values.
    assert not torch.equal(vis.stem[0].weight, ir.stem[0].weight)
    images, heatmaps, _ = inputs(batch=2)
    with torch.no_grad():
        assert not torch.allclose(model(images, heatmaps, "visible"), model(images, heatmaps, "infrared"))
    # One shared trunk: each layer3/layer4 parameter exists once and is used by both modalities.
    calls = []
    handle = model.backbone.layer3.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model(images, heatmaps, "visible"), model(images, heatmaps, "infrared")
    handle.remove()
    assert len(calls) == 2
    names = [n for n, _ in model.named_parameters() if ".layer3." in n or n.startswith("backbone.layer3")]
    assert names and all(n.startswith("backbone.layer3") for n in names)
    all_ids = [id(p) for p in model.parameters()]
    assert len(all_ids) == len(set(all_ids))


def test_paper_configuration_forward():
    model = SPOT(preset("spot")).eval()
    assert 70e6 < model.num_parameters() < 90e6
    with torch.no_grad():
        emb = model(torch.randn(2, 3, 288, 144), torch.rand(2, 56, 36, 18), "infrared")
    assert emb.shape == (2, 2048)
    fmap, structure = model.feature_maps(torch.randn(1, 3, 288, 144), torch.rand(1, 56, 36, 18), "visible")
    assert fmap.shape == (1, 2048, 18, 9) and structure.shape == (1, 256, 18, 9)


@pytest.mark.parametrize("images, heatmaps, modality, message", [
    (torch.randn(2, 1, 128, 64), torch.rand(2, 56, 16, 8), "visible", r"\(B, 3, H, W\)"),
    (torch.randn(2, 3, 128, 64), torch.rand(2, 19, 16, 8), "visible", "56"),
    (torch.randn(2, 3, 128, 64), torch.rand(3, 56, 16, 8), "visible", "batch sizes differ"),
    (torch.randn(2, 3, 128, 64), torch.rand(2, 56, 16, 8), "thermal", "unknown modality"),
    (torch.randn(2, 3, 128, 64), torch.rand(2, 56, 16, 8), torch.tensor([0, 2]), "0 .visible. or 1"),
    (torch.randn(2, 3, 128, 64), torch.rand(2, 56, 16, 8), torch.tensor([0, 1, 0]), "shape"),
    (torch.randn(2, 3, 128, 64), None, "visible", "needs pose heatmaps"),
    (torch.randint(0, 255, (2, 3, 128, 64), dtype=torch.uint8), torch.rand(2, 56, 16, 8), "visible", "floating"),
    (torch.randn(0, 3, 128, 64), torch.rand(0, 56, 16, 8), "visible", "empty batch"),
    (torch.randn(2, 3, 8, 8), torch.rand(2, 56, 16, 8), "visible", "too small"),
])
def test_bad_input_gives_clear_error(images, heatmaps, modality, message):
    model = SPOT(tiny("spot")).eval()
    with pytest.raises(InputError, match=message):
        model(images, heatmaps, modality)


def test_an_fp16_tensor_into_an_fp32_model_is_refused():
    model = SPOT(tiny("spot")).eval()
    images, heatmaps, _ = inputs(batch=2)
    with pytest.raises(InputError, match="float16 but the model's weights are torch.float32"):
        model(images.half(), heatmaps.half(), "visible")
    with pytest.raises(InputError, match="heatmaps are torch.float16 but images are torch.float32"):
        model(images, heatmaps.half(), "visible")


def test_non_finite_input_is_refused_at_the_boundary():
    """NaN/Inf are refused by check_inputs (what the Embedder and the CLI run), not inside forward:
    forward stays free of host synchronisations."""
    model = SPOT(tiny("spot")).eval()
    images, heatmaps, _ = inputs(batch=2)
    images[1, 0, 3, 3] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        model.check_inputs(images, heatmaps, "visible")
    images, heatmaps, _ = inputs(batch=2)
    heatmaps[0, 5, 1, 1] = float("inf")
    with pytest.raises(InputError, match="NaN or Inf"):
        model.check_inputs(images, heatmaps, "visible")


def test_forward_does_not_synchronise_on_values(monkeypatch):
    """The string-modality forward never reads a tensor value on the host (no isfinite().all(),
    no .item()): a sync would break CUDA-graph capture and torch.compile."""
    model = SPOT(tiny("spot")).eval()
    images, heatmaps, _ = inputs(batch=2)
    reads = []
    for name in ("__bool__", "item"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _original=original, _name=name):
            reads.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, spy)
    with torch.no_grad():
        model(images, heatmaps, "visible")
    assert reads == []


def test_model_input_error_is_the_package_one():
    from spot_edge.errors import InputError as PackageInputError

    assert InputError is PackageInputError


def test_baseline_runs_without_heatmaps():
    model = SPOT(tiny("baseline")).eval()
    images, _, _ = inputs(batch=2)
    with torch.no_grad():
        assert model(images, None, "visible").shape == (2, 512)
