"""Launch planning shared by the Triton and CUDA backends (pure Python, no GPU)."""

from __future__ import annotations

import pytest
import torch

from spot_edge.kernels.planning import key_blocks, output_like_values, output_strides, wave_splits


@pytest.mark.parametrize("nodes, expected", [
    (162, (128, 64)), (7, (16, 0)), (16, (16, 0)), (17, (16, 16)), (33, (32, 16)),
    (256, (256, 0)), (257, (256, 16)), (513, (512, 16)), (1024, (1024, 0)),
])
def test_key_blocks_cover_the_keys_with_little_padding(nodes, expected):
    first, second = key_blocks(nodes)
    assert (first, second) == expected
    assert first + second >= nodes and first + second <= max(16, 2 * nodes)


def test_wave_splits_avoid_a_partial_second_wave():
    """B = 32, N = 162 on 132 SMs x 2 blocks: 3 query tiles x 32 items = 96 work items over 32
    value tiles with 4 tiles of repeated logit work; 2 splits (192 blocks, one wave) beat 3 (288
    blocks: 264 in the first wave, 24 in a second)."""
    assert wave_splits(96, 32, 264, 4.0) == 2
    assert wave_splits(3, 32, 264, 4.0) == 32          # B = 1: fill the GPU
    assert wave_splits(192, 32, 264, 4.0) == 1         # B = 64: already a full wave


@pytest.mark.parametrize("work, tiles, slots, fixed", [(96, 32, 264, 4.0), (5, 7, 16, 0.5), (1, 1, 1, 0.0),
                                                        (1000, 40, 132, 8.0), (7, 33, 100, 1.0)])
def test_wave_splits_is_the_cheapest_split(work, tiles, slots, fixed):
    def cost(s):
        per = -(-tiles // s)
        return -(-(work * s) // slots) * (per + fixed)
    chosen = wave_splits(work, tiles, slots, fixed)
    assert 1 <= chosen <= tiles
    assert cost(chosen) <= min(cost(s) for s in range(1, tiles + 1)) + 1e-9


@pytest.mark.parametrize("layout", ["nchw", "contiguous", "batch1"])
def test_output_follows_the_values(layout):
    if layout == "nchw":
        v = torch.empty(3, 48, 10).transpose(1, 2)       # (B, N, C) view of (B, C, N) memory
    elif layout == "contiguous":
        v = torch.empty(3, 10, 48)
    else:
        v = torch.empty(1, 48, 10).transpose(1, 2)
    out = output_like_values(v, 10)
    assert out.shape == (v.shape[0], 10, 48)
    assert out.stride() == output_strides(v.shape[0], 10, 48, v.stride())
    assert out.transpose(1, 2).is_contiguous() == (layout != "contiguous")
