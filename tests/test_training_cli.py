"""The training commands: make-synthetic, build-heatmaps, evaluate (errors are one line, exit 1)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from spot_edge.cli.train import app

runner = CliRunner()


def test_make_synthetic_and_build_heatmaps(tmp_path):
    out = tmp_path / "synth"
    r = runner.invoke(app, ["make-synthetic", str(out), "--train-ids", "3", "--val-ids", "0", "--test-ids", "2",
                            "--images", "1-2", "--size", "64x32", "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert (out / "exp" / "test_id.txt").is_file() and (out / "synthetic.json").is_file()
    cache = tmp_path / "cache"
    r = runner.invoke(app, ["build-heatmaps", "--root", str(out), "--out", str(cache), "--size", "16x8"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output.strip().splitlines()[-1])
    assert info["map_size"] == [16, 8] and info["entries"] > 0


def test_evaluate_fails_loudly_without_checkpoint(tmp_path):
    out = tmp_path / "synth"
    runner.invoke(app, ["make-synthetic", str(out), "--train-ids", "2", "--val-ids", "0", "--test-ids", "2",
                        "--images", "1-1", "--size", "64x32", "--workers", "1"])
    r = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "missing.safetensors"), "--root", str(out)])
    assert r.exit_code == 1 and "does not exist" in r.output
    r = runner.invoke(app, ["evaluate", "--dataset", "regdb", "--checkpoint", "x.safetensors", "--root", str(out)])
    assert r.exit_code == 1 and "{split}" in r.output


def test_train_reports_config_errors(tmp_path):
    r = runner.invoke(app, ["train", "--set", "optim.learning_rate=0.1", "--quiet"])
    assert r.exit_code == 1 and "unknown keys" in r.output
    r = runner.invoke(app, ["train", "--set", f"data.root={tmp_path / 'nowhere'}", "--quiet"])
    assert r.exit_code == 1 and "does not exist" in r.output


def test_help_has_examples():
    for command in ("train", "evaluate", "make-synthetic", "build-heatmaps"):
        r = runner.invoke(app, [command, "--help"])
        assert r.exit_code == 0 and "xample" in r.output
