"""Pure fusion helpers: exactness against OpenCV / brute force, NaN semantics."""
import cv2
import numpy as np
import pytest

from core.fusion import (gaussian_blur, image_score, nan_gaussian, nominal_normalize, weighted_mean,
                         weighted_product)


@pytest.mark.parametrize("sigma", [2.0, 7.0, 12.5, 25.0])
def test_gaussian_blur_matches_exact_blur(sigma):
    rng = np.random.default_rng(1)
    m = cv2.GaussianBlur(rng.random((400, 520)).astype(np.float32), (0, 0), 2)
    m[100:130, 200:220] += 3.0   # a defect-like blob
    m[:15, :15] += 3.0           # at the border too
    exact = cv2.GaussianBlur(m, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    fast = gaussian_blur(m, sigma)
    assert fast.shape == m.shape and fast.dtype == np.float32
    assert np.abs(fast - exact).max() <= 0.01 * (exact.max() - exact.min())
    # the blob's peak stays where it was
    assert np.unravel_index(np.argmax(fast), fast.shape) == pytest.approx(
        np.unravel_index(np.argmax(exact), exact.shape), abs=2)


def test_nan_gaussian_ignores_nan_and_keeps_it():
    m = np.full((64, 64), 1.0, np.float32)
    m[:, 32:] = np.nan
    out = nan_gaussian(m, 12.0)
    assert np.isnan(out[:, 32:]).all()
    np.testing.assert_allclose(out[:, :32], 1.0, atol=1e-3)  # NaN neighbours do not pull it to 0


def test_weighted_mean_renormalizes_where_a_modality_is_missing():
    a = np.array([[1.0, 2.0]], np.float32)
    b = np.array([[3.0, np.nan]], np.float32)
    out = weighted_mean({"a": a, "b": b}, {"a": 1.0, "b": 3.0})
    np.testing.assert_allclose(out, [[(1 * 1 + 3 * 3) / 4, 2.0]])
    assert weighted_mean({"a": a}, {"a": 0.0}) is None
    np.testing.assert_allclose(weighted_product({"a": a, "b": b}, {"a": 1.0, "b": 1.0}), [[3.0, 2.0]])


def test_nominal_normalize_and_image_score():
    nominal = np.arange(101, dtype=np.float64)  # median 50, q99 = 99
    np.testing.assert_allclose(nominal_normalize(np.array([50.0, 99.0]), nominal), [0.0, 1.0], atol=1e-6)
    v = np.array([[0.0, 1.0], [np.nan, 5.0]], np.float32)
    assert image_score(v) == 5.0
    assert image_score(v, top_fraction=0.67) == pytest.approx(3.0)  # mean of the top 2 of 3
