"""Paths as users type them: resolved once, at the boundary, against the current working directory.

Every path a user gives (command-line arguments and options, YAML fields, ``--set`` overrides) goes
through :func:`user_path` where it enters the program; the rest of the code then works with absolute
paths and never joins a user's relative path to another folder. Names read from inside a file that
must stay inside a folder (a gallery manifest, a bundle manifest) go through :func:`path_inside`.
"""

from __future__ import annotations

import os
from pathlib import Path

from spot_edge.errors import InputError

__all__ = ["user_path", "optional_user_path", "path_inside", "relative_to_root"]


def user_path(path: str | os.PathLike) -> Path:
    """``path`` as the user meant it: ``~`` expanded, relative to the current working directory,
    made absolute (symbolic links kept, ``..`` folded)."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise InputError("an empty path was given")
    return Path(os.path.abspath(os.path.expanduser(text)))


def optional_user_path(path: str | os.PathLike | None) -> Path | None:
    """:func:`user_path`, passing ``None`` (and the empty string) through as ``None``."""
    if path is None or os.fspath(path) == "":
        return None
    return user_path(path)


def path_inside(folder: str | os.PathLike, name: str, what: str = "file") -> Path:
    """``folder / name`` for a ``name`` read from a file (a manifest), refusing names that leave
    ``folder`` (absolute paths, ``..``, symbolic links pointing outside)."""
    root = Path(os.path.realpath(folder))
    if not isinstance(name, str) or not name or os.path.isabs(name) or "\0" in name:
        raise InputError(f"{what} name {name!r} in {folder} must be a relative path inside that folder")
    candidate = Path(os.path.realpath(root / name))
    if candidate != root and root not in candidate.parents:
        raise InputError(f"{what} name {name!r} in {folder} points outside that folder; refusing to use it")
    return candidate


def relative_to_root(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` relative to ``root`` with forward slashes (both resolved the same way first), for
    keys stored in manifests; a path outside ``root`` is an :class:`InputError`."""
    p = Path(os.path.abspath(os.fspath(path)))
    r = Path(os.path.abspath(os.fspath(root)))
    try:
        return p.relative_to(r).as_posix()
    except ValueError:
        raise InputError(f"{p} is not inside {r}") from None
