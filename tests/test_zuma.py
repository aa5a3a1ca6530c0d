"""ZUMA's training-free maths (core.detectors.clip.zuma) on small tensors, against direct loops."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis

from core.detectors.clip import zuma


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_sinkhorn_step_normalises_rows_then_columns():
    rng = np.random.default_rng(0)
    k = rng.uniform(0.1, 2.0, (5, 7))
    one = zuma.sinkhorn(k, iters=1, eps=0.0)
    rows = k / k.sum(1, keepdims=True)
    assert np.allclose(one, rows / rows.sum(0, keepdims=True))
    assert np.allclose(one.sum(0), 1.0)                       # last step: columns sum to one
    many = zuma.sinkhorn(k, iters=200, eps=0.0)               # converges to a doubly scaled matrix
    assert np.allclose(many.sum(0), 1.0)
    assert np.allclose(many.sum(1), 7 / 5, atol=1e-6)         # rows share the total mass M/N


def test_calibrate_matches_a_per_head_loop():
    rng = np.random.default_rng(1)
    v, n, m, dim, heads = 2, 6, 5, 8, 4
    tag = _unit(rng.normal(size=(v, n, dim))).astype(np.float32)
    sor = _unit(rng.normal(size=(m, dim))).astype(np.float32)
    out = zuma.calibrate(tag, sor, heads=heads)
    d = dim // heads
    g = 1 / (1 + np.exp(-sor.mean(0)))
    for vi in range(v):
        fused = np.zeros((n, dim))
        for h in range(heads):
            t, s = tag[vi, :, h * d:(h + 1) * d], sor[:, h * d:(h + 1) * d]
            k = np.array([[np.exp(-0.05 * np.sum((ti - sj) ** 2)) for sj in s] for ti in t])
            for _ in range(3):
                k = k / (k.sum(1, keepdims=True) + 1e-8)
                k = k / (k.sum(0, keepdims=True) + 1e-8)
            a = np.exp(k / np.sqrt(d))
            a /= a.sum(1, keepdims=True)
            fused[:, h * d:(h + 1) * d] = a @ s
        ref = 0.7 * tag[vi] + 0.3 * (tag[vi] + g * fused)
        assert np.allclose(out[vi], ref, atol=1e-5)


def test_hybrid_mix_weights():
    rng = np.random.default_rng(2)
    tag = _unit(rng.normal(size=(1, 4, 8))).astype(np.float32)
    sor = _unit(rng.normal(size=(3, 8))).astype(np.float32)
    h0 = zuma.calibrate(tag, sor, mix=1.0)          # all Tag: no calibration
    assert np.allclose(h0, tag)
    h1 = zuma.calibrate(tag, sor, mix=0.0)          # all "out" = Tag + g * fused
    h = zuma.calibrate(tag, sor)
    assert np.allclose(h, 0.7 * tag + 0.3 * h1, atol=1e-6)
    assert not np.allclose(h, tag)
    with pytest.raises(ValueError):
        zuma.calibrate(tag, sor, heads=3)


def test_mahalanobis_matches_scipy_on_full_rank_data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5)) @ rng.normal(size=(5, 5)) + rng.normal(size=5)
    vi = np.linalg.inv(np.cov(x, rowvar=False))
    ref = np.array([scipy_mahalanobis(r, x.mean(0), vi) for r in x])
    assert np.allclose(zuma.mahalanobis(x), ref, rtol=1e-4)


def test_mahalanobis_with_fewer_tokens_than_channels_uses_the_pseudo_inverse():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 10))
    xc = x - x.mean(0)
    p = np.linalg.pinv(xc.T @ xc / 5, rcond=1e-6)
    ref = np.sqrt([r @ p @ r for r in xc])
    got = zuma.mahalanobis(x)
    assert np.all(np.isfinite(got))
    assert np.allclose(got, ref, rtol=1e-4)


def test_text_sparsity_and_dsi_maps():
    rng = np.random.default_rng(5)
    f = rng.normal(size=(2, 9, 6)).astype(np.float32)
    text = _unit(rng.normal(size=(2, 6))).astype(np.float32)
    s = zuma.text_sparsity(f[0], text, 0.07)
    l1 = np.abs(f[0]).sum(1) / 6
    z = (l1 - l1.mean()) / l1.std()
    txt = (f[0] @ text[1] - f[0] @ text[0]) / 0.07
    txt = (txt - txt.min()) / (txt.max() - txt.min())
    assert np.allclose(s, 0.3 * z + 0.7 * txt, atol=1e-5)
    maps, b = zuma.dsi_maps(f, text, 0.07, (3, 3))
    assert maps.shape == b.shape == (2, 3, 3)
    e = np.exp(np.stack([s, -s], -1))
    assert np.allclose(b[0].ravel(), e[:, 0] / e.sum(-1), atol=1e-6)      # softmax([s, -s])[0]
    a = zuma.minmax(zuma.mahalanobis(f[0]))
    assert np.allclose(maps[0].ravel(), 0.7 * b[0].ravel() + 0.3 * a, atol=1e-6)


def test_image_score_weights_and_missing_modality():
    assert zuma.image_score({"hybrid_global": 1.0, "view_global": 0.0, "rgb_global": 0.0}) == pytest.approx(0.4)
    assert zuma.image_score({"hybrid_global": 0.5, "view_global": 0.2, "rgb_global": 0.1}) == pytest.approx(
        0.4 * 0.5 + 0.3 * 0.2 + 0.3 * 0.1)
    assert zuma.image_score({"rgb_global": 0.3}) == pytest.approx(0.3)                # RGB only
    assert zuma.image_score({"hybrid_global": 1.0, "view_global": 0.3, "rgb_global": None}) == pytest.approx(
        (0.4 + 0.09) / 0.7)                                                          # 3D only
