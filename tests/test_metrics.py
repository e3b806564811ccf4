"""spot_edge.metrics.evaluate against an independent plain-Python implementation and hand cases."""

from __future__ import annotations

import numpy as np
import pytest

from spot_edge.metrics import cosine_distance, evaluate


def _reference(distmat, q_pids, g_pids, q_cams, g_cams, protocol, max_rank):
    """Plain-Python loops straight from docs/evaluation-protocol.md (no numpy tricks)."""
    num_q, num_g = len(distmat), len(distmat[0])
    cmc_sum = [0.0] * max_rank
    aps, inps = [], []
    for q in range(num_q):
        row = [float(x) for x in distmat[q]]
        order = sorted(range(num_g), key=lambda j: row[j])  # Python sort is stable
        if protocol == "sysu":
            order = [j for j in order if not (q_cams[q] == 3 and g_cams[j] == 2)]
        ranked = [g_pids[j] for j in order]
        match_ranks = [i + 1 for i, pid in enumerate(ranked) if pid == q_pids[q]]
        if not match_ranks:
            continue
        if protocol == "sysu":
            unique = []
            for pid in ranked:
                if pid not in unique:
                    unique.append(pid)
            hit_at = unique.index(q_pids[q]) + 1
        else:
            hit_at = match_ranks[0]
        for k in range(1, max_rank + 1):
            if hit_at <= k:
                cmc_sum[k - 1] += 1
        aps.append(sum((j + 1) / r for j, r in enumerate(match_ranks)) / len(match_ranks))
        inps.append(len(match_ranks) / match_ranks[-1])
    n = len(aps)
    return [c / n for c in cmc_sum], sum(aps) / n, sum(inps) / n


def _random_case(seed, num_q, num_g, num_ids, quantise):
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(0, num_ids, num_q)
    g_pids = rng.integers(0, num_ids, num_g)
    q_cams = rng.choice([3, 6], num_q)
    g_cams = rng.choice([1, 2, 4, 5], num_g)
    dist = rng.random((num_q, num_g))
    if quantise:  # many exact ties: the stable order matters
        dist = np.round(dist * 4) / 4
    return dist, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("protocol", ["sysu", "regdb"])
@pytest.mark.parametrize("seed,quantise", [(0, False), (1, True), (2, True), (3, False)])
def test_matches_reference_on_random_distances(protocol, seed, quantise):
    dist, qp, gp, qc, gc = _random_case(seed, 60, 45, 12, quantise)
    got = evaluate(dist, qp, gp, qc, gc, protocol=protocol, max_rank=20)
    cmc, m_ap, m_inp = _reference(dist.tolist(), qp.tolist(), gp.tolist(), qc.tolist(), gc.tolist(), protocol, 20)
    np.testing.assert_allclose(got["cmc"], cmc, rtol=0, atol=1e-12)
    assert got["mAP"] == pytest.approx(m_ap, abs=1e-12)
    assert got["mINP"] == pytest.approx(m_inp, abs=1e-12)
    assert got["cmc"].shape == (20,)


def test_block_processing_matches_reference(monkeypatch):
    import spot_edge.metrics as metrics

    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 100)  # several query blocks
    dist, qp, gp, qc, gc = _random_case(7, 33, 40, 9, True)
    got = metrics.evaluate(dist, qp, gp, qc, gc, protocol="sysu", max_rank=5)
    cmc, m_ap, m_inp = _reference(dist.tolist(), qp.tolist(), gp.tolist(), qc.tolist(), gc.tolist(), "sysu", 5)
    np.testing.assert_allclose(got["cmc"], cmc, atol=1e-12)
    assert got["mAP"] == pytest.approx(m_ap, abs=1e-12)
    assert got["mINP"] == pytest.approx(m_inp, abs=1e-12)


def test_hand_checked_sysu_case():
    # One query from cam3, identity 7. Gallery by ascending distance:
    #   g0 id5 cam1 (0.1), g1 id7 cam2 (0.2, dropped), g2 id5 cam4 (0.3),
    #   g3 id9 cam5 (0.4), g4 id7 cam1 (0.5), g5 id7 cam4 (0.6)
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    g_pids = [5, 7, 5, 9, 7, 7]
    g_cams = [1, 2, 4, 5, 1, 4]
    r = evaluate(dist, [7], g_pids, [3], g_cams, protocol="sysu", max_rank=4)
    # After the drop: 5, 5, 9, 7, 7 -> matches at ranks 4 and 5; unique ids 5, 9, 7 -> CMC rank 3.
    np.testing.assert_allclose(r["cmc"], [0, 0, 1, 1])
    assert r["mAP"] == pytest.approx((1 / 4 + 2 / 5) / 2)
    assert r["mINP"] == pytest.approx(2 / 5)
    # The same query from cam6 keeps cam2: match at rank 2 (and 5, 6); unique ids 5, 7.
    r6 = evaluate(dist, [7], g_pids, [6], g_cams, protocol="sysu", max_rank=4)
    np.testing.assert_allclose(r6["cmc"], [0, 1, 1, 1])
    assert r6["mAP"] == pytest.approx((1 / 2 + 2 / 5 + 3 / 6) / 3)
    assert r6["mINP"] == pytest.approx(3 / 6)


def test_hand_checked_regdb_plain_cmc_and_ties():
    # Exact ties keep gallery order (stable sort): g0 (id1) before g1 (id2).
    dist = np.array([[0.5, 0.5, 0.2], [0.3, 0.3, 0.3]])
    r = evaluate(dist, [2, 1], [1, 2, 3], protocol="regdb", max_rank=3)
    # query 0 (id2): order g2(3), g0(1), g1(2) -> match at rank 3. query 1 (id1): order g0 -> rank 1.
    np.testing.assert_allclose(r["cmc"], [0.5, 0.5, 1.0])
    assert r["mAP"] == pytest.approx((1 / 3 + 1) / 2)
    assert r["mINP"] == pytest.approx((1 / 3 + 1) / 2)


def test_queries_without_match_are_left_out_of_all_averages():
    dist = np.array([[0.1, 0.2], [0.1, 0.2]])
    r = evaluate(dist, [1, 99], [1, 2], protocol="regdb", max_rank=2)
    assert r["num_valid_queries"] == 1 and r["num_queries"] == 2
    np.testing.assert_allclose(r["cmc"], [1, 1])
    assert r["mAP"] == 1.0 and r["mINP"] == 1.0
    # A cam3 query whose only match sits in cam2 has no match left.
    r = evaluate(dist, [2, 1], [1, 2], [3, 6], [1, 2], protocol="sysu", max_rank=2)
    assert r["num_valid_queries"] == 1


def test_max_rank_longer_than_gallery_saturates():
    dist = np.array([[0.3, 0.1]])
    r = evaluate(dist, [1], [1, 2], protocol="regdb", max_rank=5)
    np.testing.assert_allclose(r["cmc"], [0, 1, 1, 1, 1])


def test_errors_are_clear():
    with pytest.raises(ValueError, match="q_cams"):
        evaluate(np.ones((1, 2)), [1], [1, 2], protocol="sysu")
    with pytest.raises(ValueError, match="protocol"):
        evaluate(np.ones((1, 2)), [1], [1, 2], protocol="market")
    with pytest.raises(ValueError, match="g_pids"):
        evaluate(np.ones((1, 2)), [1], [1, 2, 3], protocol="regdb")
    with pytest.raises(ValueError, match="no query"):
        evaluate(np.ones((1, 2)), [5], [1, 2], protocol="regdb")
    with pytest.raises(ValueError, match="NaN"):
        evaluate(np.array([[np.nan, 1.0]]), [1], [1, 2], protocol="regdb")


def test_cosine_distance_equals_one_minus_dot():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(4, 8)), rng.normal(size=(5, 8))
    d = cosine_distance(q, g)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    np.testing.assert_allclose(d, 1 - qn @ gn.T, atol=1e-6)


def test_full_sysu_size_is_fast():
    import time

    rng = np.random.default_rng(0)
    q_pids, g_pids = rng.integers(0, 96, 3803), np.repeat(np.arange(96), 4)[:301]
    q_cams, g_cams = rng.choice([3, 6], 3803), rng.choice([1, 2, 4, 5], 301)
    dist = rng.random((3803, 301)).astype(np.float32)
    t0 = time.perf_counter()
    for _ in range(3):
        evaluate(dist, q_pids, g_pids, q_cams, g_cams, protocol="sysu")
    assert time.perf_counter() - t0 < 10.0
