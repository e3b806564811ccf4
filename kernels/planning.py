"""Launch planning shared by the Triton and CUDA backends (no Triton, no GPU needed).

- :func:`key_blocks`: the two power-of-two key blocks of the Triton attention.
- :func:`wave_splits`: how far to split the value width so a grid ends on whole waves (the
  CUDA library implements the same rule in C++; ``tests/test_kernels_planning.py`` checks
  that they agree).
- :func:`output_strides` / :func:`output_like_values`: the attention output in the memory
  layout of ``v``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def next_power_of_2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def key_blocks(nodes: int, smallest: int = 16) -> tuple[int, int]:
    """Split ``nodes`` keys into two power-of-two blocks ``(first, second)`` (``second`` may be 0).

    The first block is the largest power of two not above ``nodes`` (at least ``smallest``, the
    smallest ``tl.dot`` size); the second covers the rest. N = 162 gives (128, 64): 192 key
    slots instead of the 256 of padding to one power of two (58% more MMA work).
    """
    if nodes <= smallest:
        return smallest, 0
    first = 1 << (int(nodes).bit_length() - 1)
    rest = nodes - first
    return first, (0 if rest <= 0 else max(smallest, next_power_of_2(rest)))


def wave_splits(work_items: int, tiles: int, slots: int, fixed_cost: float) -> int:
    """How many programs share ``tiles`` units of work of each of ``work_items`` items.

    Each split costs its share of the tiles plus ``fixed_cost`` (work every split repeats, e.g.
    the attention logits); programs run in waves of ``slots`` (SMs x programs per SM). Picks the
    split count with the least ``waves x per-program cost`` (ties: fewer splits), so a grid
    never ends on a small partial wave (B = 32, N = 162 on an H100 with 2 blocks per SM:
    2 splits = 192 blocks in one wave rather than 3 splits = 288 blocks in two).
    """
    work_items, tiles, slots = max(1, work_items), max(1, tiles), max(1, slots)
    best, best_cost = 1, float("inf")
    for splits in range(1, tiles + 1):
        per_split = -(-tiles // splits)
        if splits > 1 and -(-tiles // per_split) < splits:
            continue                      # same work per program as a smaller split count
        waves = -(-(work_items * splits) // slots)
        cost = waves * (per_split + fixed_cost)
        if cost < best_cost - 1e-9:
            best, best_cost = splits, cost
    return best


def output_strides(batch: int, nodes: int, value_dim: int, v_strides: tuple[int, ...]) -> tuple[int, int, int]:
    """Element strides ``(batch, node, channel)`` of the attention output for values with
    ``v_strides``: ``(B, Dv, N)`` memory for node-contiguous values (SPOT's
    ``conv(x).flatten(2).transpose(1, 2)`` views of NCHW features), so the caller's
    ``transpose(1, 2).reshape(B, C, H, W)`` is a free view of an NCHW tensor; otherwise a
    contiguous ``(B, N, Dv)`` tensor (channels-last memory after the same reshape)."""
    if nodes > 1 and v_strides[1] == 1 and v_strides[2] != 1:
        return (value_dim * nodes, 1, nodes)
    return (nodes * value_dim, value_dim, 1)


def output_like_values(v: Tensor, nodes: int) -> Tensor:
    """Empty ``(B, N, Dv)`` attention output with :func:`output_strides` (the layout of ``v``)."""
    batch, value_dim = v.shape[0], v.shape[-1]
    if output_strides(batch, nodes, value_dim, v.stride())[1] == 1:
        return torch.empty((batch, value_dim, nodes), device=v.device, dtype=v.dtype).transpose(1, 2)
    return torch.empty((batch, nodes, value_dim), device=v.device, dtype=v.dtype)
