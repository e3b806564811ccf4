"""``spot-edge model``: presets, parameter counts and a forward pass, from a preset, a config file or
a checkpoint given as a relative path."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from spot_edge.cli.model import app
from spot_edge.model import SPOT, preset, save_checkpoint


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_presets_lists_every_preset():
    from spot_edge.model import preset_names

    result = CliRunner().invoke(app, ["presets"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in preset_names():
        assert name in result.output


def _info(*args):
    result = CliRunner().invoke(app, ["info", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_info_counts_match_the_model_and_the_forward_pass_runs():
    report = _info("--preset", "baseline-small", "--batch", "2")
    model = SPOT(preset("baseline-small"))
    assert report["parameters"] == model.num_parameters() == sum(report["components"].values())
    assert report["output_shape"] == [2, model.config.embedding_dim]
    assert all(abs(n - 1.0) < 1e-4 for n in report["output_norms"])      # L2-normalised embeddings


def test_info_from_a_relative_config_file_and_checkpoint(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tiny.yaml").write_text("preset: baseline-small\nnum_classes: 7\n")
    from_config = _info("--config", "configs/tiny.yaml", "--no-forward")
    model = SPOT(preset("baseline-small", num_classes=7))
    assert from_config["config_fingerprint"] == model.config.fingerprint()
    save_checkpoint(model, tmp_path / "runs" / "tiny.safetensors")
    from_checkpoint = _info("--checkpoint", "runs/tiny.safetensors", "--no-forward")
    assert from_checkpoint["parameters"] == model.num_parameters()
    assert from_checkpoint["config_fingerprint"] == from_config["config_fingerprint"]
