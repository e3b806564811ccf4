"""The systemd unit of a spot-edge camera service (``spot-edge service install``).

The unit template ships beside this module (``spot-edge.service``): ``Restart=on-failure`` (a run
that ends with errors, exit code 1, is started again after 10 s; bad usage, exit code 2, is not),
a clean stop on SIGTERM (the gallery is flushed), the working directory fixed at install time
(so relative paths in the run's arguments keep their meaning) and the account it runs as, with
the ``video`` / ``render`` groups cameras and the GPU need on a Jetson when they exist.

:func:`render_unit` fills the template; :func:`install_unit` writes it atomically where systemd
reads system units (``/etc/systemd/system``), which needs root.
"""

from __future__ import annotations

import getpass
import grp
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from spot_edge.atomic import atomic_write_text
from spot_edge.errors import InputError

TEMPLATE_PATH = Path(__file__).with_name("spot-edge.service")
#: Where systemd reads the units an administrator installs.
DEFAULT_TARGET_DIR = Path("/etc/systemd/system")
#: Supplementary groups the service joins when they exist here (cameras, GPU on a Jetson).
DEVICE_GROUPS = ("video", "render")
_UNIT_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
_USER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*\$?$")
_PLAIN = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


@dataclass(frozen=True)
class UnitSpec:
    """What the unit runs.

    Attributes:
        name: the unit's name without ``.service`` (``spot-edge``).
        user: the account the service runs as.
        working_dir: absolute working directory of the service.
        command: the full command line (``[/path/to/spot-edge, "run", ...]``).
        groups: supplementary groups.
    """

    name: str
    user: str
    working_dir: Path
    command: list[str]
    groups: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not _UNIT_NAME.match(self.name) or self.name.endswith(".service"):
            raise InputError(f"unit name {self.name!r}: use letters, digits and _ . : - only, without "
                             "'.service'")
        if not _USER_NAME.match(self.user):
            raise InputError(f"user {self.user!r} is not a valid account name")
        if not Path(self.working_dir).is_absolute():
            raise InputError(f"working directory {self.working_dir} must be absolute")
        if not self.command:
            raise InputError("the unit needs a command")


def systemd_quote(arg: str) -> str:
    """One argument of ``ExecStart=`` as systemd reads it: ``%`` and ``$`` escaped, quoted when
    it has anything but plain characters."""
    text = str(arg).replace("%", "%%").replace("$", "$$")
    if text and _PLAIN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(spec: UnitSpec) -> str:
    """The unit file's text."""
    groups = " ".join(spec.groups)
    return Template(TEMPLATE_PATH.read_text()).substitute(
        name=spec.name, user=spec.user, working_dir=str(spec.working_dir).replace("%", "%%"),
        groups_line=f"SupplementaryGroups={groups}\n" if groups else "",
        exec_start=" ".join(systemd_quote(a) for a in spec.command))


def install_unit(text: str, name: str, target_dir: Path = DEFAULT_TARGET_DIR, force: bool = False) -> Path:
    """Write ``<target_dir>/<name>.service`` atomically; returns its path.

    Raises:
        InputError: the unit exists (without ``force``) or ``target_dir`` is not a folder.
        PermissionError: ``target_dir`` is not writable (the message says to use sudo or
            ``--dry-run``).
    """
    target_dir = Path(target_dir)
    if not target_dir.is_dir():
        raise InputError(f"{target_dir} is not a folder; systemd reads system units from {DEFAULT_TARGET_DIR}")
    path = target_dir / f"{name}.service"
    if path.exists() and not force:
        raise InputError(f"{path} exists; add --force to replace it")
    try:
        atomic_write_text(path, text)
    except PermissionError:
        raise PermissionError(f"cannot write {path}: permission denied. System units need root: run "
                              f"`sudo {Path(sys.argv[0]).name} service install ...`, or print the unit with "
                              f"--dry-run and install it yourself (sudo tee {path})") from None
    return path


def default_user() -> str:
    """The account to run as: the user behind ``sudo`` when there is one, else the current user."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def present_groups(candidates=DEVICE_GROUPS) -> tuple[str, ...]:
    """The groups of ``candidates`` that exist on this machine."""
    found = []
    for name in candidates:
        try:
            grp.getgrnam(name)
        except KeyError:
            continue
        found.append(name)
    return tuple(found)


def spot_edge_executable() -> str:
    """The ``spot-edge`` command of this environment (beside this Python, e.g. in ``.venv/bin``)."""
    beside = Path(sys.executable).parent / "spot-edge"
    if beside.is_file():
        return str(beside)
    found = shutil.which("spot-edge")
    if found:
        return str(Path(found).absolute())
    raise InputError("cannot find the spot-edge command of this environment; install the package "
                     "(pip install -e .) and run this from its environment")


__all__ = ["UnitSpec", "render_unit", "install_unit", "systemd_quote", "default_user", "present_groups",
           "spot_edge_executable", "DEFAULT_TARGET_DIR", "TEMPLATE_PATH", "DEVICE_GROUPS"]
