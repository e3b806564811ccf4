"""PreprocessSpec: the one definition of input size, normalisation and channel order."""

import numpy as np
import pytest

from spot_edge.preprocessing import PreprocessMismatchError, PreprocessSpec


def test_gray_bgr_bgra_are_accepted(rng):
    spec = PreprocessSpec(height=64, width=32)
    gray = rng.integers(0, 256, (100, 50), dtype=np.uint8)
    out = spec(gray)
    assert out.shape == (3, 64, 32) and out.dtype == np.float32
    np.testing.assert_allclose(spec(np.dstack([gray] * 3)), out)
    np.testing.assert_allclose(spec(np.dstack([gray] * 3 + [gray])), out)


def test_channel_order_and_normalisation():
    spec = PreprocessSpec(height=16, width=16)
    bgr = np.zeros((16, 16, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR
    x = spec(bgr)
    assert x[0].mean() == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)      # R channel first
    assert x[2].mean() == pytest.approx((0 - 0.406) / 0.225, rel=1e-5)
    np.testing.assert_array_equal(spec.denormalize(x), bgr)


def test_batch_and_bad_input(rng):
    spec = PreprocessSpec(height=32, width=16)
    imgs = [rng.integers(0, 256, (40 + i, 20, 3), dtype=np.uint8) for i in range(3)]
    assert spec.batch(imgs).shape == (3, 3, 32, 16)
    assert spec.batch([]).shape == (0, 3, 32, 16)
    with pytest.raises(ValueError, match="empty image"):
        spec(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="expected an image"):
        spec(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(TypeError):
        spec("not an image")
    with pytest.raises(ValueError, match="outside"):
        PreprocessSpec(height=5)


def test_mismatch_names_fields():
    a, b = PreprocessSpec(), PreprocessSpec(channel_order="BGR", height=256)
    with pytest.raises(PreprocessMismatchError, match="height.*channel_order"):
        a.check_matches(b, "engine")
    a.check_matches(PreprocessSpec.from_dict(a.to_dict()))
    assert a.heatmap_size == (36, 18)
