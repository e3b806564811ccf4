"""Byte sizes as users type them (``--events-max-bytes 50M``)."""

from __future__ import annotations

import re

from spot_edge.errors import InputError

#: Suffix -> multiplier; binary, as logrotate reads ``size 100M`` (K = 1024 bytes).
UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_byte_size(text: str | int, what: str = "size") -> int:
    """``"50M"`` -> 52428800; ``"1500"``, ``"64k"``, ``"1.5G"``, ``"10MiB"``, ``"2 GB"`` too.

    Raises:
        InputError: not a size (``"ten"``, ``"-5"``, ``"5T"``), naming ``what``.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise InputError(f"{what} must be a size such as 50M or 1048576, got {text}")
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise InputError(f"{what} must be a size such as 50M or 1048576 (suffixes K, M, G), got {text!r}")
    return int(float(match.group(1)) * UNITS[match.group(2).lower()])


__all__ = ["parse_byte_size", "UNITS"]
