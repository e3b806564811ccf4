"""The one device rule: ``"auto"`` is the first CUDA GPU when PyTorch sees one, else the CPU."""

from __future__ import annotations

from spot_edge.errors import SpotEdgeError

__all__ = ["DeviceError", "cuda_available", "resolve_device"]


class DeviceError(SpotEdgeError, RuntimeError):
    """A device was asked for that is unknown or absent here."""


def cuda_available() -> bool:
    """True when PyTorch sees a CUDA GPU."""
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(device: "str | object" = "auto"):
    """``torch.device`` for ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises :class:`DeviceError` (one line, with the fix) for an unknown device string, a CUDA
    device when PyTorch sees no GPU, or a GPU index that does not exist.
    """
    import torch

    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    else:
        try:
            dev = torch.device(str(device))
        except RuntimeError:
            raise DeviceError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"unsupported device {str(device)!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if dev.type == "cuda":
        if not cuda_available():
            raise DeviceError(f"device {str(device)!r} asked for, but PyTorch sees no CUDA GPU here; use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {str(device)!r} asked for, but only {torch.cuda.device_count()} "
                              "CUDA GPU(s) are visible")
    return dev
