"""Equation-level checks: ASR (eqs. 3-6), part pooling (eq. 9), PE (eq. 7), TPI (eq. 10),
each against a plain loop-over-nodes computation in float64 on random inputs."""

import math

import pytest
import torch

from spot_edge.kernels import part_pool
from spot_edge.model.asr import AttendedStructureRepresentation
from spot_edge.model.tpi import TransformerPartInteraction, sinusoidal_encoding


def conv1x1(conv, x_c):
    """A 1x1 conv applied to one node's channel vector."""
    y = conv.weight[:, :, 0, 0] @ x_c
    return y + conv.bias if conv.bias is not None else y


def loop_part_pool(maps, feats, eps):
    """Eq. 9 node by node: M_bar keeps a map's value only where it is the max over parts."""
    b_, p_, h_, w_ = maps.shape
    c_ = feats.shape[1]
    out = torch.zeros(b_, p_, c_, dtype=torch.float64)
    for b in range(b_):
        for i in range(p_):
            weighted, k = torch.zeros(c_, dtype=torch.float64), 0.0
            for h in range(h_):
                for w in range(w_):
                    node = maps[b, :, h, w]
                    m_bar = float(node[i]) if node[i] == node.max() else 0.0
                    weighted += m_bar * feats[b, :, h, w]
                    k += m_bar
            n = h_ * w_
            out[b, i] = (weighted / n) / (k / n + eps)
    return out


@pytest.mark.parametrize("shape", [(2, 7, 6, 3, 5), (1, 3, 4, 4, 9), (3, 9, 5, 2, 4)])
def test_part_pool_equals_loop_over_nodes(shape):
    b, p, h, w, c = shape
    maps = torch.rand(b, p, h, w, dtype=torch.float64)
    maps[0, 1, 0, 0] = 0.0  # a node some part does not own
    feats = torch.randn(b, c, h, w, dtype=torch.float64)
    torch.testing.assert_close(part_pool(maps, feats, eps=1e-6), loop_part_pool(maps, feats, 1e-6))


def test_part_pool_part_with_no_nodes_is_finite():
    maps = torch.rand(1, 3, 4, 4)
    maps[0, 2] = 0.0  # never the maximum
    out = part_pool(maps, torch.randn(1, 5, 4, 4))
    assert torch.isfinite(out).all() and torch.all(out[0, 2] == 0)


@pytest.mark.parametrize("scale", [1.0, 0.125])
def test_asr_equals_loop_over_nodes(scale):
    torch.manual_seed(1)
    c_i, c_s, dk, h, w = 12, 5, 4, 3, 2
    asr = AttendedStructureRepresentation(c_i, c_s, dk, attention_scale=scale).double().eval()
    for bn in (asr.embed[1], asr.residual_bn):  # non-trivial BN statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    f_i = torch.randn(2, c_i, h, w, dtype=torch.float64)
    f_s = torch.randn(2, c_s, h, w, dtype=torch.float64)
    with torch.no_grad():
        got = asr(f_i, f_s)
        expected = torch.zeros_like(got)
        conv_a, bn, _, conv_b = asr.embed
        for b in range(2):
            nodes = [(y, x) for y in range(h) for x in range(w)]
            fused = []
            for (y, x) in nodes:  # eq. 3
                z = conv1x1(conv_a, torch.cat([f_i[b, :, y, x], f_s[b, :, y, x]]))
                z = (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
                fused.append(conv1x1(conv_b, torch.relu(z)))
            keys = [conv1x1(asr.key, f) for f in fused]
            queries = [conv1x1(asr.query, f) for f in fused]
            values = [conv1x1(asr.value, f_i[b, :, y, x]) for (y, x) in nodes]
            for t, (y, x) in enumerate(nodes):
                logits = torch.stack([scale * keys[t] @ queries[j] for j in range(len(nodes))])  # eq. 4
                m = torch.exp(logits) / torch.exp(logits).sum()
                attended = sum(m[j] * values[j] for j in range(len(nodes)))                       # eq. 5
                rbn = asr.residual_bn
                residual = (f_i[b, :, y, x] - rbn.running_mean) / torch.sqrt(rbn.running_var + rbn.eps) * rbn.weight + rbn.bias
                expected[b, :, y, x] = attended + residual                                          # eq. 6
    torch.testing.assert_close(got, expected)


def test_positional_encoding_eq7():
    pe = sinusoidal_encoding(7, 16, 10000.0)
    for pos in range(7):
        for i in range(16):
            k = i // 2
            angle = pos / 10000.0 ** (2 * k / 16)
            assert pe[pos, i].item() == pytest.approx(math.sin(angle) if i % 2 == 0 else math.cos(angle), abs=1e-6)


def test_tpi_equals_manual_composition():
    torch.manual_seed(2)
    tpi = TransformerPartInteraction(16, 6, num_parts=5, heads=8, ffn_dim=32, dropout=0.0).double().eval()
    f_i = torch.randn(2, 16, 4, 3, dtype=torch.float64)
    f_s = torch.randn(2, 6, 4, 3, dtype=torch.float64)
    with torch.no_grad():
        maps = torch.sigmoid(tpi.part_maps(f_s))                                   # eq. 8
        parts = loop_part_pool(maps, f_i, tpi.eps)                                 # eq. 9
        x = parts + sinusoidal_encoding(5, 16).double()                            # eq. 7
        layer = tpi.encoder[0]
        heads, d = 8, 2
        q, k, v = layer.attn.qkv(x).split(16, dim=-1)
        out = torch.zeros_like(x)
        for hd in range(heads):                                                    # plain MHSA, head by head
            sl = slice(hd * d, (hd + 1) * d)
            a = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(d), dim=-1)
            out[..., sl] = a @ v[..., sl]
        x = layer.norm1(x + layer.attn.proj(out))
        x = layer.norm2(x + layer.ffn(x))                                           # eq. 10
        expected = x.max(dim=1).values
        torch.testing.assert_close(tpi(f_i, f_s), expected)


def test_gem_pooling_is_generalised_mean_and_fp16_safe():
    from spot_edge.model.heads import GlobalPool

    x = torch.rand(2, 5, 4, 3, dtype=torch.float64) * 3
    expected = x.clamp(min=1e-6).pow(3).mean(dim=(-2, -1)).pow(1 / 3)
    torch.testing.assert_close(GlobalPool("gem", 3.0)(x), expected)
    big = torch.rand(1, 4, 6, 3) * 200 + 50          # 250^3 overflows fp16 (max 65504)
    ref = GlobalPool("gem", 3.0)(big.double())
    half = GlobalPool("gem", 3.0)(big.half())
    assert torch.isfinite(half).all()
    torch.testing.assert_close(half.double(), ref, rtol=1e-2, atol=0.5)
