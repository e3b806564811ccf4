"""``spot-edge service install``: the systemd unit it prints (--dry-run) and writes (a temporary
target folder), checked by reading it back as systemd would (and by systemd-analyze where it is
installed), run from a temporary working directory with relative paths."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from spot_edge.cli import service as service_cli
from spot_edge.cli.common import CliApp
from spot_edge.service import systemd

runner = CliRunner()


def _app() -> CliApp:
    """``spot-edge`` with the service group (as cli/app.py attaches it)."""
    root = CliApp()
    root.add_typer(service_cli.app, name="service")
    return root


def _unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read_string(text)
    return parser


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_dry_run_prints_a_unit_that_restarts_on_failure(cwd):
    (cwd / "site").mkdir()
    r = runner.invoke(_app(), ["service", "install", "--dry-run", "--name", "cams", "--user", "edge",
                               "--working-dir", "site", "--", "--visible", "0", "-m", "models/spot model",
                               "-g", "gallery", "--metrics-port", "9400", "--out", "runs/%h"])
    assert r.exit_code == 0, r.output
    unit = _unit(r.stdout)
    service = unit["Service"]
    assert service["Restart"] == "on-failure" and service["RestartPreventExitStatus"] == "2"
    assert service["User"] == "edge" and service["WorkingDirectory"] == str(cwd / "site")
    assert service["KillSignal"] == "SIGTERM"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    exec_start = service["ExecStart"]
    assert exec_start.startswith(systemd.spot_edge_executable() + " run ")
    assert '"models/spot model"' in exec_start and "runs/%%h" in exec_start  # quoted, specifier escaped
    assert exec_start.endswith("--quiet")  # no live table in the journal
    assert not list(cwd.glob("*.service")) and not (cwd / "site" / "cams.service").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_accepts_the_unit(cwd):
    r = runner.invoke(_app(), ["service", "install", "--dry-run", "--", "--visible", "0", "-m", "m.onnx",
                               "--publish", "mqtt://broker/spot?qos=1"])
    assert r.exit_code == 0, r.output
    path = cwd / "spot-edge-check.service"
    path.write_text(r.stdout)
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if path.name in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_install_writes_the_unit_and_keeps_an_existing_one(cwd):
    (cwd / "units").mkdir()
    args = ["service", "install", "--target-dir", "units", "--", "--infrared", "1", "-m", "m.onnx", "-q"]
    r = runner.invoke(_app(), args)
    assert r.exit_code == 0, r.output
    written = (cwd / "units" / "spot-edge.service").read_text()
    assert _unit(written)["Service"]["ExecStart"].count("--quiet") == 0  # -q given: not added twice
    assert "systemctl" in r.stderr  # how to start it
    (cwd / "units" / "spot-edge.service").write_text("# edited by hand\n")
    r = runner.invoke(_app(), args)
    assert r.exit_code == 2 and "--force" in r.stderr
    assert (cwd / "units" / "spot-edge.service").read_text() == "# edited by hand\n"
    r = runner.invoke(_app(), args[:2] + ["--force"] + args[2:])
    assert r.exit_code == 0 and (cwd / "units" / "spot-edge.service").read_text() == written


def test_no_permission_is_one_clear_line(cwd, monkeypatch):
    def refuse(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(systemd, "atomic_write_text", refuse)
    r = runner.invoke(_app(), ["service", "install", "--target-dir", ".", "--", "--visible", "0"])
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.exit_code == 2 and len(errors) == 1
    assert "permission denied" in errors[0] and "sudo" in errors[0] and "--dry-run" in errors[0]


# (id, arguments after `service install`, what the one error line says: a regex)
REFUSALS = [
    ("no-run-arguments", ["--dry-run"], "give the spot-edge run options after --"),
    ("run-option-typo", ["--dry-run", "--", "--visibel", "0"], "do not parse: No such option: --visibel"),
    ("run-option-bad-value", ["--dry-run", "--", "--batch", "many"], "do not parse"),
    ("run-help", ["--dry-run", "--", "--help"], "ask for help"),
    ("name-with-slash", ["--dry-run", "--name", "a/b", "--", "--visible", "0"], "unit name 'a/b'"),
    ("name-with-suffix", ["--dry-run", "--name", "cams.service", "--", "--visible", "0"], "without '.service'"),
    ("bad-user", ["--dry-run", "--user", "root;reboot", "--", "--visible", "0"], "not a valid account name"),
    ("missing-working-dir", ["--dry-run", "--working-dir", "nowhere", "--", "--visible", "0"], "not a folder"),
    ("target-dir-missing", ["--target-dir", "nowhere", "--", "--visible", "0"], "nowhere is not a folder"),
    ("target-dir-is-a-file", ["--target-dir", "file.txt", "--", "--visible", "0"], "file.txt is not a folder"),
]


@pytest.mark.parametrize("args,message", [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_install_refuses(cwd, args, message):
    (cwd / "file.txt").write_text("x")
    r = runner.invoke(_app(), ["service", "install", *args])
    assert r.exit_code == 2, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(message, errors[0]), r.stderr
    assert "Traceback" not in r.output and not list(cwd.rglob("*.service"))


@pytest.mark.parametrize("arg,quoted", [("plain-1.onnx", "plain-1.onnx"), ("a b", '"a b"'), ("50%", "50%%"),
                                        ("$HOME", '"$$HOME"'), ('say "hi"', '"say \\"hi\\""'),
                                        ("rtsp://h/s?x=1&y=2", '"rtsp://h/s?x=1&y=2"')])
def test_systemd_quoting(arg, quoted):
    assert systemd.systemd_quote(arg) == quoted


def test_help_fits_80_columns_with_whole_examples():
    r = runner.invoke(_app(), ["service", "install", "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert r.exit_code == 0
    assert all(len(line) <= 80 for line in r.output.splitlines())
    examples = [line.strip() for line in (service_cli.install.__doc__ or "").splitlines()
                if line.strip().startswith(("spot-edge ", "sudo "))]
    assert examples and all(len(e) <= 74 and e in {x.strip() for x in r.output.splitlines()} for e in examples)
