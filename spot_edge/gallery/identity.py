"""Which model made a set of embeddings, so that a gallery never mixes two models' embedding spaces.

Embeddings of two SPOT models (another configuration, other preprocessing, another embedding
size) are not comparable: a match between them is a silently wrong result. A gallery therefore
records the :class:`ModelIdentity` of the model it was enrolled with, in its manifest, and refuses
embeddings of another model, on enrolment and on search (:class:`ModelMismatchError`, saying what
differs and what to do).

What is compared, each only when both sides know it:

- ``config_fingerprint``: :attr:`Embedder.config_fingerprint`, the hash of the model's SpotConfig
  (recorded in checkpoints, ONNX metadata and engine sidecars);
- ``embedding_dim``: D;
- ``preprocessing``: :meth:`PreprocessSpec.to_dict` (input size, mean/std, channel order,
  interpolation, heatmap stride), field by field.

Partial identities are allowed (a ``spot-edge embed`` sidecar knows the fingerprint and the input
size only; a bare ``.npy`` knows only D). A gallery without a recorded identity (written before
spot-edge recorded it, or enrolled from bare files) *adopts* the first identity used with it, and
fields it does not know yet are filled in by later, fuller identities of the same model.

Not covered: two trainings of the same configuration share a config fingerprint. Telling them
apart needs a fingerprint of the weights, which the Embedder interface does not expose yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from spot_edge.gallery.entries import GalleryError

__all__ = ["ModelIdentity", "ModelMismatchError", "check_same_model"]

_PREPROCESSING_FIELDS = ("height", "width", "mean", "std", "channel_order", "interpolation", "heatmap_stride")


class ModelMismatchError(GalleryError):
    """Embeddings of another model than the gallery's were enrolled or searched."""


@dataclass(frozen=True)
class ModelIdentity:
    """The facts about a model that decide whether two embeddings are comparable.

    Build one with :meth:`of` from an Embedder (``spot_edge.backends``) or anything exposing
    ``embedding_dim``, ``preprocessing`` (a PreprocessSpec) and, optionally, ``config_fingerprint``.
    """

    config_fingerprint: str | None = None
    embedding_dim: int | None = None
    preprocessing: Mapping[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction
    @classmethod
    def of(cls, model: Any) -> "ModelIdentity":
        """The identity of ``model``: a ModelIdentity (returned as is), a dict from :meth:`to_dict`,
        or an Embedder (its ``config_fingerprint``, ``embedding_dim`` and ``preprocessing``)."""
        if isinstance(model, ModelIdentity):
            return model
        if isinstance(model, Mapping):
            return cls.from_dict(model)
        dim = getattr(model, "embedding_dim", None)
        spec = getattr(model, "preprocessing", None)
        if dim is None or spec is None or not hasattr(spec, "to_dict"):
            raise TypeError(f"cannot tell which model {type(model).__name__} is: pass a ModelIdentity or an "
                            "Embedder (embedding_dim, preprocessing, config_fingerprint)")
        # config_fingerprint is optional in the Embedder interface (None: unknown)
        fingerprint = getattr(model, "config_fingerprint", None)
        return cls(str(fingerprint) if fingerprint else None, int(dim), dict(spec.to_dict()))

    @classmethod
    def from_dict(cls, data: Any, where: str = "model identity") -> "ModelIdentity":
        """Inverse of :meth:`to_dict`; :class:`GalleryError` naming ``where`` for malformed data."""
        if not isinstance(data, Mapping):
            raise GalleryError(f"{where} must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"config_fingerprint", "embedding_dim", "preprocessing"})
        if unknown:
            raise GalleryError(f"{where} has unknown fields {unknown}")
        fingerprint = data.get("config_fingerprint")
        if fingerprint is not None and (not isinstance(fingerprint, str) or not fingerprint):
            raise GalleryError(f"{where}: config_fingerprint must be a non-empty string, got {fingerprint!r}")
        dim = data.get("embedding_dim")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise GalleryError(f"{where}: embedding_dim must be a positive integer, got {dim!r}")
        pre = data.get("preprocessing") or {}
        if not isinstance(pre, Mapping) or set(pre) - set(_PREPROCESSING_FIELDS):
            raise GalleryError(f"{where}: preprocessing must be an object with fields among "
                               f"{list(_PREPROCESSING_FIELDS)}, got {pre!r}")
        return cls(fingerprint, dim, {k: _plain(v) for k, v in pre.items()})

    @classmethod
    def from_json(cls, text: str, where: str = "model identity") -> "ModelIdentity":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GalleryError(f"{where} is not valid JSON: {exc}") from None
        return cls.from_dict(data, where)

    def to_dict(self) -> dict[str, Any]:
        return {"config_fingerprint": self.config_fingerprint, "embedding_dim": self.embedding_dim,
                "preprocessing": {k: _plain(v) for k, v in self.preprocessing.items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # ------------------------------------------------------------------ comparison
    @property
    def known(self) -> bool:
        """Whether anything is known about the model."""
        return bool(self.config_fingerprint or self.embedding_dim or self.preprocessing)

    def differences(self, other: "ModelIdentity") -> list[str]:
        """``"what: mine vs other"`` for every fact both know and that differs."""
        diffs = []
        if self.config_fingerprint and other.config_fingerprint and self.config_fingerprint != other.config_fingerprint:
            diffs.append(f"config fingerprint {self.config_fingerprint} vs {other.config_fingerprint}")
        if self.embedding_dim and other.embedding_dim and self.embedding_dim != other.embedding_dim:
            diffs.append(f"embedding size {self.embedding_dim} vs {other.embedding_dim}")
        for key in _PREPROCESSING_FIELDS:
            if key in self.preprocessing and key in other.preprocessing:
                mine, theirs = _plain(self.preprocessing[key]), _plain(other.preprocessing[key])
                if mine != theirs:
                    diffs.append(f"preprocessing {key} {mine} vs {theirs}")
        return diffs

    def merged(self, other: "ModelIdentity") -> "ModelIdentity":
        """This identity with the facts it does not know taken from ``other`` (same model)."""
        return ModelIdentity(self.config_fingerprint or other.config_fingerprint,
                             self.embedding_dim or other.embedding_dim,
                             {**dict(other.preprocessing), **dict(self.preprocessing)})

    def describe(self) -> str:
        parts = []
        if self.config_fingerprint:
            parts.append(f"config {self.config_fingerprint}")
        if self.embedding_dim:
            parts.append(f"{self.embedding_dim}-d")
        if "height" in self.preprocessing and "width" in self.preprocessing:
            parts.append(f"{self.preprocessing['height']}x{self.preprocessing['width']} input")
        return ", ".join(parts) or "unknown model"


def check_same_model(recorded: ModelIdentity | None, given: ModelIdentity | None, gallery: str,
                     what: str = "these embeddings") -> None:
    """:class:`ModelMismatchError` when ``given`` is known to be another model than ``recorded``."""
    if recorded is None or given is None:
        return
    diffs = recorded.differences(given)
    if diffs:
        raise ModelMismatchError(
            f"{what} come from another model than gallery {gallery} ({'; '.join(diffs)}; gallery vs given): "
            "embeddings of two models cannot be compared. Use the model the gallery was enrolled with "
            f"({recorded.describe()}), or enroll everyone again with this model into a new gallery")


def _plain(value: Any) -> Any:
    """JSON-shaped value (tuples as lists, ints and floats as they are) for exact comparison."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
