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


# ---------------------------------------------------------------- options the paper leaves open

def _tiny(preset_name: str, **fields):
    from spot_edge.model import SPOT, preset

    torch.manual_seed(3)
    config = preset(preset_name, num_classes=4, preprocessing={"height": 64, "width": 32},
                    relation_channels=(8, 8, 16, 16), asr_key_dim=8, transformer_ffn_dim=32, **fields)
    return SPOT(config)


def _batch(n=4):
    torch.manual_seed(4)
    return torch.randn(n, 3, 64, 32), torch.rand(n, 56, 16, 8), torch.tensor([0, 1] * (n // 2))


def test_zero_initialised_injection_adds_nothing_at_first_and_still_learns():
    from spot_edge.model.structure import StructureInjection

    appearance, structure = torch.randn(4, 6, 5, 3), torch.randn(4, 3, 5, 3)
    zero = StructureInjection(6, 3, "add", bn_init="zero").train()
    assert torch.equal(zero(appearance, structure), appearance)          # exactly A at step 0
    one = StructureInjection(6, 3, "add", bn_init="one").train()
    injected = one(appearance, structure) - appearance
    assert injected.std().item() == pytest.approx(1.0, abs=0.05)          # the unit-variance term of "one"

    model = _tiny("structure-small", injection_bn_init="zero").train()
    images, maps, modality = _batch()
    out = model(images, maps, modality)
    loss = out["logits"]["base"].logsumexp(1).mean() + out["features"]["base"].pow(2).mean()
    loss.backward()
    gamma = model.injection.project[1].weight
    assert torch.count_nonzero(gamma) == 0 and gamma.grad.abs().sum() > 0  # the scale receives gradients
    with torch.no_grad():
        gamma -= 0.1 * gamma.grad
    x = model.backbone.specific["visible"].layer2(model.backbone.specific["visible"].layer1(
        model.backbone.specific["visible"].stem(images[:2])))
    s = model.relation(maps[:2], (16, 8))[1]
    assert not torch.equal(model.injection(x, s), x)                        # after one step it adds structure


def test_zero_injection_init_needs_add_mode():
    from spot_edge.model import ConfigError, preset

    with pytest.raises(ConfigError, match="injection_bn_init 'zero' needs injection_mode 'add'"):
        preset("structure", injection_bn_init="zero", injection_mode="concat")


def _encoder_layer_reference(layer, x, pre):
    """The two placements of the LayerNorms, written out (dropout off)."""
    if pre:
        x = x + layer.attn(layer.norm1(x))
        return x + layer.ffn(layer.norm2(x))
    x = layer.norm1(x + layer.attn(x))
    return layer.norm2(x + layer.ffn(x))


def test_pre_and_post_norm_transformers_compute_different_things_and_both_train():
    from spot_edge.model.tpi import TransformerEncoderLayer, TransformerPartInteraction

    torch.manual_seed(5)
    post = TransformerEncoderLayer(16, 4, 32, dropout=0.0, norm="post").double()
    pre = TransformerEncoderLayer(16, 4, 32, dropout=0.0, norm="pre").double()
    pre.load_state_dict(post.state_dict())                                 # same weights
    x = torch.randn(3, 5, 16, dtype=torch.float64) * 2 + 1
    with torch.no_grad():
        torch.testing.assert_close(post(x), _encoder_layer_reference(post, x, pre=False))
        torch.testing.assert_close(pre(x), _encoder_layer_reference(pre, x, pre=True))
        assert (post(x) - pre(x)).abs().max() > 0.1
    assert isinstance(TransformerPartInteraction(16, 6, 5, 4, ffn_dim=32, norm="pre").encoder[-1], torch.nn.LayerNorm)
    f_i, f_s = torch.randn(8, 16, 4, 3), torch.randn(8, 6, 4, 3)
    target = torch.randn(8, 16)
    for norm in ("post", "pre"):
        torch.manual_seed(6)
        tpi = TransformerPartInteraction(16, 6, 5, 4, ffn_dim=32, dropout=0.0, norm=norm)
        opt = torch.optim.SGD(tpi.parameters(), lr=0.05)
        losses = []
        for _ in range(15):
            loss = (tpi(f_i, f_s) - target).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.8 * losses[0], (norm, losses)


@pytest.mark.parametrize("pooling", ["avg", "gem"])
def test_asr_feature_pooling(pooling):
    from spot_edge.model.heads import GlobalPool

    model = _tiny("asr-small", asr_pooling=pooling).eval()
    images, maps, _ = _batch()
    with torch.no_grad():
        feature_map, structure = model.feature_maps(images, maps, "visible")
        asr_map = model.asr(feature_map, structure)
        got = model.extract_features(images, maps, "visible", training=False)["is"]
    expected = asr_map.mean(dim=(-2, -1)) if pooling == "avg" else GlobalPool("gem", 3.0)(asr_map)
    torch.testing.assert_close(got, expected)
    if pooling == "gem":  # F_IS is signed: GeM differs from the mean
        assert (got - asr_map.mean(dim=(-2, -1))).abs().max() > 1e-3


@pytest.mark.parametrize("preset_name, embedding, branch", [("asr-small", "base+is", "is"),
                                                            ("tpi-small", "base+ip", "ip")])
def test_branch_plus_base_embedding(preset_name, embedding, branch):
    from spot_edge.model import SPOT
    from spot_edge.model.heads import l2_normalize

    alone = _tiny(preset_name).eval()
    both = SPOT(alone.config.replace(embedding=embedding)).eval()
    both.load_state_dict(alone.state_dict())
    images, maps, _ = _batch()
    with torch.no_grad():
        e = both(images, maps, "infrared")
        features = both.extract_features(images, maps, "infrared", training=False)
        expected = l2_normalize(torch.cat([both.heads["base"].bn(features["base"]),
                                           both.heads[branch].bn(features[branch])], dim=1))
        single = alone(images, maps, "infrared")
    assert e.shape == (4, 2 * alone.config.feature_dim) == (4, both.embedding_dim)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(e, expected)
    assert single.shape == (4, alone.config.feature_dim)
