"""The training state of a run (what an exact resume needs), stored without pickle.

``<out_dir>/checkpoints/train-state.safetensors`` is one safetensors file: every tensor of the
state (model weights, optimizer buffers, torch RNG states) as a named tensor, and everything else
(epoch, schedule, sampler, Python and NumPy RNG states, history, configurations, the optimizer's
parameter groups) as JSON in the file's metadata, with references to the tensors by name. Reading
it runs no code from the file: safetensors parses a header and raw tensor bytes, ``json`` the
rest. JSON keeps Python floats exactly (shortest repr round trip), so a resumed run continues
bit for bit.

Runs of spot-edge before this format stored ``checkpoints/last.pt``, a pickle, which
``torch.load`` would execute: such a file is refused, never opened (:func:`refuse_legacy_state`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spot_edge.atomic import atomic_path
from spot_edge.errors import SpotEdgeError

__all__ = ["TRAIN_STATE", "LEGACY_TRAIN_STATE", "STATE_FORMAT", "TrainStateError", "save_train_state",
           "load_train_state", "train_state_epoch", "refuse_legacy_state", "encode_state", "decode_state"]

TRAIN_STATE = "checkpoints/train-state.safetensors"
LEGACY_TRAIN_STATE = "checkpoints/last.pt"
STATE_FORMAT = "spot-edge/train-state-v2"

# JSON forms of the values plain JSON cannot hold (keys starting with "$" are reserved).
_TENSOR, _TUPLE, _DICT, _ARRAY = "$tensor", "$tuple", "$dict", "$ndarray"


class TrainStateError(SpotEdgeError, ValueError):
    """A training state file is unreadable, of another format, or refused (pickle)."""


# --------------------------------------------------------------------------- codec


def encode_state(obj: Any, tensors: dict[str, torch.Tensor], name: str = "state") -> Any:
    """``obj`` as JSON-able data; its tensors are moved into ``tensors`` under ``name``-derived
    keys and replaced by ``{"$tensor": key}``. Handles dicts (any hashable JSON keys), lists,
    tuples, numpy arrays, tensors and JSON scalars; anything else is a ``TypeError``."""
    if isinstance(obj, torch.Tensor):
        key = name
        while key in tensors:
            key += "_"
        tensors[key] = obj.detach().to("cpu").contiguous()
        return {_TENSOR: key}
    if isinstance(obj, np.ndarray):
        return {_ARRAY: {"dtype": obj.dtype.str, "shape": list(obj.shape), "data": obj.ravel().tolist()}}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: encode_state(v, tensors, f"{name}/{k}") for k, v in obj.items()}
        return {_DICT: [[encode_state(k, tensors, f"{name}/key"), encode_state(v, tensors, f"{name}/{k}")]
                        for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {_TUPLE: [encode_state(v, tensors, f"{name}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, tensors, f"{name}/{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a training state ({name})")


def decode_state(data: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_state`."""
    if isinstance(data, list):
        return [decode_state(v, tensors) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) == 1:
        (tag, value), = data.items()
        if tag == _TENSOR:
            if value not in tensors:
                raise TrainStateError(f"the training state refers to a tensor {value!r} it does not hold")
            return tensors[value]
        if tag == _TUPLE:
            return tuple(decode_state(v, tensors) for v in value)
        if tag == _DICT:
            return {_hashable(decode_state(k, tensors)): decode_state(v, tensors) for k, v in value}
        if tag == _ARRAY:
            return np.asarray(value["data"], dtype=np.dtype(value["dtype"])).reshape(value["shape"])
    return {k: decode_state(v, tensors) for k, v in data.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


# --------------------------------------------------------------------------- files


def save_train_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (a dict with at least ``epoch``) to ``path`` atomically."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    body = encode_state(state, tensors)
    metadata = {"format": STATE_FORMAT, "epoch": json.dumps(state.get("epoch")), "state": json.dumps(body)}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise TrainStateError(f"{path} is not a readable spot-edge training state ({_first_line(exc)}); it was "
                              "not loaded. Delete it, or train with --no-resume or another run.out_dir") from None
    if metadata.get("format") != STATE_FORMAT:
        raise TrainStateError(f"{path} is a safetensors file but not a spot-edge training state "
                              f"(format {metadata.get('format')!r}, expected {STATE_FORMAT!r})")
    return metadata


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_train_state(path: str | os.PathLike) -> dict[str, Any]:
    """The state saved by :func:`save_train_state`; :class:`TrainStateError` for anything else
    (a pickle included: it is never unpickled)."""
    from safetensors.torch import load_file

    path = Path(path)
    metadata = _metadata(path)
    try:
        tensors = load_file(str(path))
        state = decode_state(json.loads(metadata["state"]), tensors)
    except TrainStateError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to parse the file is "unreadable"
        raise TrainStateError(f"{path} is a damaged spot-edge training state ({_first_line(exc)}); "
                              "delete it, or train with --no-resume") from None
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
        raise TrainStateError(f"{path} is a damaged spot-edge training state (no epoch)")
    return state


def train_state_epoch(path: str | os.PathLike) -> int | None:
    """Epochs done according to the state file at ``path`` (None when absent or unreadable)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        epoch = json.loads(_metadata(path).get("epoch", "null"))
    except (TrainStateError, ValueError):
        return None
    return epoch if isinstance(epoch, int) else None


def refuse_legacy_state(out_dir: str | os.PathLike) -> None:
    """Raise :class:`TrainStateError` when ``out_dir`` holds only a pickled state of an older
    spot-edge (``checkpoints/last.pt``): resuming from it would run whatever code it holds."""
    legacy = Path(out_dir) / LEGACY_TRAIN_STATE
    if legacy.exists() and not (Path(out_dir) / TRAIN_STATE).exists():
        raise TrainStateError(
            f"{legacy} is a pickled training state (older spot-edge); it is not loaded because "
            "unpickling a file can run code. Train again with --no-resume (or another run.out_dir)")
