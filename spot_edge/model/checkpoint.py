"""SPOT checkpoints: weights as safetensors with the configuration stored beside them.

A checkpoint is one ``.safetensors`` file whose metadata carries the :class:`SpotConfig`
(JSON), the spot-edge version and optional extra JSON. Loading into a model of another
configuration fails with a message naming the fields that differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from spot_edge import __version__
from spot_edge.atomic import atomic_path
from spot_edge.model.config import SpotConfig
from spot_edge.model.spot import SPOT

FORMAT = "spot-edge/checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not match the model."""


def save_checkpoint(model: SPOT, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and config to ``path`` atomically (``spot_edge.atomic``)."""
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "spot_edge_version": __version__, "config": model.config.to_json(),
                "extra": json.dumps(extra or {})}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return path


def read_checkpoint(path: str | Path) -> tuple[SpotConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """``(config, state_dict, extra)`` of a checkpoint file; clear errors for bad files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint: {exc}") from exc
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise CheckpointError(f"{path} is a safetensors file but not a spot-edge checkpoint (no stored config)")
    try:
        config = SpotConfig.from_dict(json.loads(metadata["config"]))
        extra = json.loads(metadata.get("extra", "{}"))
    except (ValueError, TypeError) as exc:  # JSONDecodeError and ConfigError are ValueErrors
        raise CheckpointError(f"{path}: the stored configuration is unreadable: {exc}") from None
    return config, state, extra


def load_checkpoint(path: str | Path, model: SPOT | None = None, map_location: str | torch.device = "cpu") -> SPOT:
    """Load a checkpoint, building the model from its stored config when ``model`` is None.

    Raises :class:`CheckpointError` naming every differing config field when ``model``'s
    configuration is not the checkpoint's.
    """
    config, state, _ = read_checkpoint(path)
    if model is None:
        model = SPOT(config)
    else:
        diffs = model.config.differences(config)
        if diffs:
            lines = ", ".join(f"{k} (model {a!r}, checkpoint {b!r})" for k, (a, b) in sorted(diffs.items()))
            raise CheckpointError(f"checkpoint {path} was saved from another configuration; differing fields: {lines}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.to(map_location)
