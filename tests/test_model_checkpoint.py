"""Checkpoints (safetensors + stored config) and local ImageNet weights."""

import pytest
import torch
import torchvision

from spot_edge.model import SPOT, CheckpointError, load_checkpoint, preset, read_checkpoint, save_checkpoint


def small(**kw):
    return preset("spot-small", num_classes=5, **kw)


def test_roundtrip_gives_identical_outputs(tmp_path):
    model = SPOT(small()).eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors", extra={"epoch": 3})
    loaded = load_checkpoint(path).eval()
    x, h = torch.randn(2, 3, 128, 64), torch.rand(2, 56, 16, 8)
    with torch.no_grad():
        assert torch.equal(model(x, h, "visible"), loaded(x, h, "visible"))
    config, _, extra = read_checkpoint(path)
    assert config == model.config and extra == {"epoch": 3}
    assert not (tmp_path / "m.safetensors.tmp").exists()


def test_mismatched_config_names_fields(tmp_path):
    path = save_checkpoint(SPOT(small()), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match=r"num_parts.*num_classes|num_classes.*num_parts"):
        load_checkpoint(path, SPOT(small(num_parts=4).replace(num_classes=9)))


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(bad)
    from safetensors.torch import save_file
    save_file({"w": torch.randn(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a spot-edge checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors")


def test_imagenet_weights_fill_both_paths_and_trunk(tmp_path):
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = SPOT(small(), imagenet_weights=path)
    for m in ("visible", "infrared"):
        path_m = model.backbone.specific[m]
        assert torch.equal(path_m.stem[0].weight, reference.conv1.weight)
        assert torch.equal(path_m.stem[1].running_var, reference.bn1.running_var)
        assert torch.equal(path_m.layer2[1].conv2.weight, reference.layer2[1].conv2.weight)
    assert torch.equal(model.backbone.layer4[0].conv1.weight, reference.layer4[0].conv1.weight)
    # last stride 1 is kept after loading
    assert model.backbone.layer4[0].conv1.stride == (1, 1)


def test_imagenet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        SPOT(small(), imagenet_weights=tmp_path / "missing.pth")
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ValueError, match="not a torchvision resnet18"):
        SPOT(small(), imagenet_weights=tmp_path / "r34.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable"):
        SPOT(small(), imagenet_weights=tmp_path / "junk.pth")
