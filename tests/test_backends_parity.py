"""parity: cosine agreement and retrieval change between a candidate backend and the reference."""

from __future__ import annotations

import numpy as np
import pytest

from spot_edge.backends.base import Embedder
from spot_edge.parity import embedding_agreement, folder_parity, retrieval_metrics
from spot_edge.preprocessing import PreprocessSpec

SPEC = PreprocessSpec(height=32, width=16, heatmap_stride=8)


class Projection(Embedder):
    """A fixed random projection of the image pixels (+ optional noise): a stand-in network."""

    name = "projection"
    preprocessing = SPEC
    embedding_dim = 8
    modalities = ("visible", "infrared")
    config_fingerprint = "abc"

    def __init__(self, noise: float = 0.0) -> None:
        self.weights = np.random.default_rng(0).standard_normal((3 * 32 * 16, 8)).astype(np.float32)
        self.noise = noise

    def _embed_batch(self, images, heatmaps, modality):
        out = images.reshape(len(images), -1) @ self.weights
        out += self.noise * np.random.default_rng(1).standard_normal(out.shape).astype(np.float32) * np.abs(out).mean()
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def _data(n=8):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((n // 2, 3, 32, 16)).astype(np.float32)
    images = np.concatenate([base, base + 0.05 * rng.standard_normal(base.shape).astype(np.float32)])
    heatmaps = rng.random((n, 56, 4, 2)).astype(np.float32)
    files = [f"{i}.png" for i in range(n)]
    labels = {f: {"pid": str(i % (n // 2)), "camid": "1" if i < n // 2 else "2",
                  "modality": "visible" if i < n // 2 else "infrared", "split": "gallery" if i < n // 2 else "query"}
              for i, f in enumerate(files)}
    return images, heatmaps, files, labels


def test_identical_backends_agree_exactly():
    images, heatmaps, files, labels = _data()
    report = folder_parity(Projection(), {"same": Projection()}, images, heatmaps, "visible", files, labels)
    (row,) = report.candidates
    assert row.agreement["cosine_min"] > 0.99999 and row.agreement["max_abs_diff"] < 1e-6
    protocol = "labelled query/gallery"
    assert report.reference.metrics[protocol]["R-1"] == 100.0  # each query's near-duplicate is its match
    assert report.to_dict()["rows"][1]["change"][protocol] == {"R-1": 0.0, "mAP": 0.0, "mINP": 0.0}
    table = report.table().splitlines()
    assert len(table) == 4 and table[3].startswith("| same | 1.00000")


def test_a_noisy_backend_shows_lower_cosine_and_a_metric_change():
    images, heatmaps, files, labels = _data()
    report = folder_parity(Projection(), {"noisy": Projection(noise=2.0), "same": Projection()}, images, heatmaps,
                           "visible", files, labels)
    noisy, same = report.candidates
    assert noisy.agreement["cosine_mean"] < 0.99 and report.min_cosine() == noisy.agreement["cosine_min"]
    assert report.to_dict()["rows"][1]["change"]["labelled query/gallery"]["mAP"] <= 0.0


def test_mismatches_are_refused():
    images, heatmaps, _, _ = _data()
    other = Projection()
    other.config_fingerprint = "zzz"
    with pytest.raises(ValueError, match="another configuration"):
        folder_parity(Projection(), {"other": other}, images, heatmaps, "visible")
    with pytest.raises(ValueError, match="shape"):
        embedding_agreement(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="not in the folder"):
        retrieval_metrics(np.ones((1, 2), np.float32), ["a.png"], {"b.png": {"split": "query"}})


def test_protocol_parity_on_the_synthetic_test_split():
    """ONNX fp32 and int8 graphs against PyTorch on the synthetic set's SYSU protocol."""
    from engines_helpers import small_exports, small_model, tiny_synthetic

    from spot_edge.backends import create_embedder
    from spot_edge.parity import protocol_parity

    reference = create_embedder(small_model(), device="cpu")
    candidates = {"onnx fp32": create_embedder(small_exports()["visible"].parent / "spot", threads=1),
                  "onnx int8": create_embedder(small_exports("int8")["visible"].parent / "spot", threads=1)}
    report = protocol_parity(reference, candidates, tiny_synthetic(), trials=2, batch=16)
    protocol = "SYSU-MM01 all-search"
    assert list(report.reference.metrics) == [protocol] and "keypoints" in report.source
    fp32, int8 = report.candidates
    assert fp32.agreement["cosine_min"] > 0.9999 and fp32.agreement["num_images"] > 8
    assert fp32.metrics[protocol] == pytest.approx(report.reference.metrics[protocol])
    assert 0.9 < int8.agreement["cosine_mean"] <= 1.0
    data = report.to_dict()
    assert [r["name"] for r in data["rows"]] == ["pytorch fp32", "onnx fp32", "onnx int8"]
    assert set(data["rows"][2]["change"][protocol]) == {"R-1", "mAP", "mINP"}
