"""SpotConfig: presets, paper table rows, (de)serialisation, validation."""

import pytest

from spot_edge.model import ConfigError, SpotConfig, paper_table_configs, preset, preset_names
from spot_edge.preprocessing import PreprocessSpec


def test_table1_presets_by_name_and_index():
    names = ["baseline", "structure", "asr", "tpi", "asr-tpi", "spot"]
    for index, name in enumerate(names, start=1):
        assert preset(name) == preset(str(index)) == preset(f"table1-{index}")
    assert preset("baseline").branches == ("base",)
    assert preset("structure").inject_structure and preset("structure").branches == ("base",)
    assert preset("asr").branches == ("base", "is")
    assert preset("tpi").branches == ("base", "ip")
    assert preset("asr-tpi").branches == ("base", "is", "ip")
    assert preset("spot").branches == ("base", "is", "ip", "if")
    assert preset("spot").loss_weights == {"base": 1.0, "is": 0.6, "ip": 0.5, "if": 1.0}


def test_paper_defaults():
    c = preset("spot")
    assert (c.backbone, c.last_stride, c.preprocessing.size) == ("resnet50", 1, (288, 144))
    assert (c.num_pose_maps, c.num_parts, c.transformer_layers, c.transformer_heads) == (56, 7, 1, 8)
    assert (c.pe_base, c.lambda_is, c.lambda_ip, c.fusion, c.inject_layer) == (10000.0, 0.6, 0.5, "concat", 2)
    assert c.feature_dim == 2048 and c.embedding_dim == 2048


def test_every_paper_row_is_a_config():
    rows = paper_table_configs()
    assert len([k for k in rows if k.startswith("Table I #")]) == 6
    for layer in (1, 2, 3, 4):
        assert rows[f"Table II: B+S_{layer}"].inject_layer == layer
    assert rows["Table II: B+K_2"].structure_source == "keypoints"
    for fusion in ("max", "mean", "weighted", "concat"):
        assert rows[f"Table III: Fusion_{fusion}"].fusion == fusion
    assert rows["Table III: No fusion"].resolved_embedding == "concat"
    assert [rows[f"Fig. 6: p={p}"].num_parts for p in range(2, 10)] == list(range(2, 10))
    sweep_1 = [rows[k] for k in rows if k.startswith("Fig. 7(a)")]
    sweep_2 = [rows[k] for k in rows if k.startswith("Fig. 7(c)")]
    assert [c.lambda_is for c in sweep_1] == [c.lambda_ip for c in sweep_2] == [i / 10 for i in range(11)]
    assert {c.lambda_ip for c in sweep_1} == {0.5} and {c.lambda_is for c in sweep_2} == {0.6}
    assert all(c.replace(lambda_is=0.6, lambda_ip=0.5) == preset("spot") for c in sweep_1 + sweep_2)
    small = paper_table_configs(backbone="resnet18", lambda_is=0.3)   # the sweep's lambdas win over overrides
    assert small["Fig. 7(c): lambda_2=0.2"].lambda_is == 0.6 and small["Fig. 7(c): lambda_2=0.2"].backbone == "resnet18"


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_save_load_roundtrip(tmp_path, suffix):
    c = preset("spot-small", num_classes=12, fusion="weighted")
    c.save(tmp_path / f"c{suffix}")
    assert SpotConfig.load(tmp_path / f"c{suffix}") == c
    assert SpotConfig.from_dict(c.to_dict()).fingerprint() == c.fingerprint()


def test_load_preset_with_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("preset: spot-small\nnum_parts: 4\n")
    c = SpotConfig.load(tmp_path / "c.yaml")
    assert c.num_parts == 4 and c.backbone == "resnet18"


def test_fingerprints_of_existing_configurations_do_not_change():
    # Values computed before injection_bn_init / transformer_norm / asr_pooling existed: exported
    # models, engines and galleries record them, so the new fields at their defaults must not move them.
    assert preset("spot").fingerprint() == "92bf2189106eb972"
    assert preset("tpi-small", num_classes=12).fingerprint() == "0e49a01bac9d1e56"
    changed = {preset("spot", injection_bn_init="zero").fingerprint(), preset("spot", transformer_norm="pre").fingerprint(),
               preset("spot", asr_pooling="gem").fingerprint()}
    assert len(changed) == 3 and "92bf2189106eb972" not in changed


def test_new_fields_round_trip_and_old_dicts_load():
    c = preset("spot-small", num_classes=5, injection_bn_init="zero", transformer_norm="pre", asr_pooling="gem")
    assert SpotConfig.from_dict(c.to_dict()) == c
    old = preset("spot").to_dict()
    for name in ("injection_bn_init", "transformer_norm", "asr_pooling"):
        del old[name]                                   # a checkpoint saved before the fields existed
    assert SpotConfig.from_dict(old) == preset("spot")


def test_embedding_dimensions():
    assert preset("asr", embedding="base+is").embedding_dim == 4096
    assert preset("tpi", embedding="base+ip").embedding_branches == ("base", "ip")
    assert preset("asr-tpi").embedding_branches == ("is", "ip") and preset("spot").embedding_branches == ("if",)
    assert preset("asr").embedding_branches == ("is",) and preset("baseline").embedding_dim == 2048


def test_small_presets_exist():
    for name in preset_names():
        preset(name)
    assert preset("spot-small").preprocessing == PreprocessSpec(height=128, width=64, heatmap_stride=4)
    assert preset("spot-small").preprocessing.heatmap_size == (32, 16)


@pytest.mark.parametrize("changes, message", [
    (dict(backbone="vgg"), "backbone"),
    (dict(inject_layer=5), "inject_layer"),
    (dict(fusion="sum"), "fusion"),
    (dict(use_asr=False), "needs use_asr"),
    (dict(transformer_heads=7), "transformer_heads"),
    (dict(embedding="xyz"), "embedding"),
    (dict(injection_bn_init="half"), "injection_bn_init"),
    (dict(transformer_norm="sandwich"), "transformer_norm"),
    (dict(asr_pooling="max"), "asr_pooling"),
    (dict(use_tpi=False, fusion="none", embedding="base+ip"), "base\\+ip. needs the branch"),
])
def test_invalid_values_are_named(changes, message):
    with pytest.raises(ConfigError, match=message):
        preset("spot").replace(**changes)


def test_unknown_fields_and_presets(tmp_path):
    with pytest.raises(ConfigError, match="unknown SpotConfig fields"):
        SpotConfig.from_dict({"num_part": 3})
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("spot-huge")
    with pytest.raises(FileNotFoundError):
        SpotConfig.load(tmp_path / "missing.yaml")


def test_differences_name_fields():
    diffs = preset("spot").differences(preset("spot", num_parts=5, fusion="max"))
    assert set(diffs) == {"num_parts", "fusion"}


@pytest.mark.parametrize("fields, message", [
    ({"num_parts": "seven"}, "num_parts must be an integer, got 'seven'"),
    ({"num_parts": 2.5}, "num_parts must be an integer"),
    ({"use_asr": "yes"}, "use_asr must be true or false"),
    ({"gem_p": None}, "gem_p must be a number"),
    ({"backbone": 50}, "backbone must be a string"),
    ({"relation_channels": [8, 8]}, "relation_channels must be a list of 4 integers"),
    ({"preprocessing": {"height": "tall"}}, "preprocessing.height must be an integer"),
    ({"preprocessing": {"heigth": 64}}, "unknown preprocessing field(s) heigth"),
    ({"preprocessing": {"height": 8}}, "preprocessing: input size"),
    ({"transformer_heads": 0}, "transformer_heads must be >= 1"),
    ({"transformer_dropout": 1.5}, "transformer_dropout"),
])
def test_wrong_types_and_values_name_the_field(fields, message):
    for make in (lambda: SpotConfig.from_dict(fields), lambda: preset("spot-small", **fields)):
        with pytest.raises(ConfigError) as info:
            make()
        assert message in str(info.value)


def test_preset_overrides_and_files_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="unknown SpotConfig fields.*num_part"):
        preset("spot", num_part=3)
    with pytest.raises(ConfigError, match="preset must be a string"):
        preset(6)
    (tmp_path / "c.yaml").write_text("preset: spot-small\nnum_parts: [4\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3:1: YAML syntax error"):
        SpotConfig.load(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("preset: spot-small\nnum_part: 4\n")
    with pytest.raises(ConfigError, match="num_part"):
        SpotConfig.load(tmp_path / "d.yaml")
