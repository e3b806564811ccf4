"""The two modalities of visible-infrared ReID: names, checks, indices.

``"visible"`` (RGB cameras, index 0) and ``"infrared"`` (near-infrared/thermal cameras, index 1);
the per-sample modality tensors of the model use these indices.
"""

from __future__ import annotations

from spot_edge.errors import InputError

__all__ = ["MODALITIES", "check_modality", "other_modality", "modality_index"]

MODALITIES: tuple[str, str] = ("visible", "infrared")


def check_modality(name: object) -> str:
    """``name`` if it is a modality, else :class:`InputError` naming the choices."""
    if name not in MODALITIES:
        raise InputError(f"unknown modality {name!r}; use 'visible' or 'infrared'")
    return name  # type: ignore[return-value]


def modality_index(name: object) -> int:
    """``"visible" -> 0``, ``"infrared" -> 1``."""
    return MODALITIES.index(check_modality(name))


def other_modality(name: object) -> str:
    """``"visible" <-> "infrared"`` (the gallery side a query is matched against)."""
    return MODALITIES[1 - modality_index(name)]
