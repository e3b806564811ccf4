"""The package's error base classes: what the command line reports as one line and exit code 2.

Every error a user can cause (bad input, a missing or mismatched file, a configuration mistake)
derives from :class:`SpotEdgeError`; the area-specific errors (``ConfigError``, ``GalleryError``,
``HeatmapCacheError``...) subclass it beside the built-in class callers may already catch
(``ValueError``, ``FileNotFoundError``, ``RuntimeError``).
"""

from __future__ import annotations

__all__ = ["SpotEdgeError", "InputError"]


class SpotEdgeError(Exception):
    """Something the user can act on; ``str(exc)`` is the whole message (one line)."""


class InputError(SpotEdgeError, ValueError):
    """An input (tensor, array, image, option value) is of the wrong form or not finite."""
