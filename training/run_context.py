"""Where a training process runs (rank, world size, device) and its random-number state.

Multi-GPU / multi-node: launched by ``torchrun``, each process reads ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; the process group uses NCCL on CUDA and gloo on the CPU. Every epoch reseeds the
Python, NumPy and torch generators from ``(seed, epoch, rank)``, which is what makes a resumed
run continue exactly as an uninterrupted one.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spot_edge.device import DeviceError, cuda_available, resolve_device

__all__ = ["RunContext", "setup_context", "barrier", "seed_everything", "rng_state", "set_rng_state"]


@dataclass(frozen=True)
class RunContext:
    """Where this process runs: ``rank`` of ``world_size``, its ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_context(device: str = "auto") -> RunContext:
    """Read the torchrun environment, resolve ``device`` (the one device rule,
    :func:`spot_edge.device.resolve_device`; a bare ``cuda`` means this process's local GPU) and
    initialise the process group when ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    try:
        dev = resolve_device(device)
    except DeviceError as exc:
        raise DeviceError(f"run.device: {exc}") from None
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", local if world > 1 else 0)
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return RunContext(rank, world, local, dev)


def barrier(ctx: RunContext) -> None:
    """Wait for every rank (nothing to do in a single process)."""
    if ctx.distributed:
        torch.distributed.barrier()


def seed_everything(seed: int, epoch: int, rank: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch from ``(seed, epoch, rank)``."""
    s = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def rng_state() -> dict[str, Any]:
    """The process's generator states (Python, NumPy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if cuda_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (also after a JSON round trip: lists for tuples)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and cuda_available():
        torch.cuda.set_rng_state_all(state["cuda"])
