"""ZUMA's training-free pipeline (github.com/yif-ma/ZUMA), the maths on numpy arrays.

* :func:`calibrate` - cross-domain calibration (CDC): rendered-view tokens attend to the RGB tokens
  through a Sinkhorn-normalised Gaussian kernel, gated by the RGB statistics, mixed into hybrid tokens;
* :func:`mahalanobis` / :func:`dsi_maps` - dynamic semantic interaction (DSI) per view: the Mahalanobis
  distance of each token to its own view's statistics, combined with the text-and-sparsity score;
* :func:`image_score` - the weighted global scores (0.4 hybrid, 0.3 view, 0.3 RGB), renormalised over
  the terms that exist when a modality is missing.

Deviations from the reference code, all documented: tokens are our patch tokens without CLS; the
Mahalanobis and text terms are min-max normalised on the patch grid (ZUMA does it after a bilinear
upsampling, which keeps the range up to the corner samples); the sign convention is anomalous-positive
(``txt = (f.t_anom - f.t_normal) / T``, ``b = softmax([s, -s])[0]``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

GAMMA = 0.05       # kernel K = exp(-gamma ||t - s||^2)
HEADS = 4
SINKHORN_ITERS = 3
HYBRID_MIX = 0.7   # hybrid = 0.7 Tag + 0.3 out
SPARSE_W = 0.3     # s = 0.3 sparse + 0.7 txt
MAP_W = 0.7        # map = 0.7 b + 0.3 a
IMAGE_WEIGHTS = {"hybrid_global": 0.4, "view_global": 0.3, "rgb_global": 0.3}


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - x.max(axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def minmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def sinkhorn(k: np.ndarray, iters: int = SINKHORN_ITERS, eps: float = 1e-8) -> np.ndarray:
    """``iters`` rounds of row-sum then column-sum normalisation of the kernel(s) ``k`` (..., N, M)."""
    k = np.asarray(k, np.float64)
    for _ in range(iters):
        k = k / (k.sum(-1, keepdims=True) + eps)
        k = k / (k.sum(-2, keepdims=True) + eps)
    return k


def calibrate(tag: np.ndarray, sor: np.ndarray, heads: int = HEADS, gamma: float = GAMMA,
              iters: int = SINKHORN_ITERS, mix: float = HYBRID_MIX) -> np.ndarray:
    """CDC: view tokens ``tag`` (V, N, D) and RGB tokens ``sor`` (M, D), both L2-normalised -> hybrid
    tokens (V, N, D).

    Per view and head (D/heads channels): K = exp(-gamma ||t_i - s_j||^2); Sinkhorn; A = softmax(K / sqrt(d))
    over the source tokens; fused = A sor_h.  Heads concatenated; g = sigmoid(mean over tokens of sor);
    out = tag + g * fused; hybrid = mix * tag + (1 - mix) * out."""
    tag = np.asarray(tag, np.float32)
    sor = np.asarray(sor, np.float32)
    v, n, dim = tag.shape
    if dim % heads:
        raise ValueError(f"{dim} channels do not split into {heads} heads")
    d = dim // heads
    th = tag.reshape(v, n, heads, d).transpose(0, 2, 1, 3)                 # V h N d
    sh = sor.reshape(-1, heads, d).transpose(1, 0, 2)                      # h M d
    d2 = ((th ** 2).sum(-1)[..., :, None] + (sh ** 2).sum(-1)[None, :, None, :]
          - 2 * th @ sh[None].transpose(0, 1, 3, 2))                       # V h N M
    kern = sinkhorn(np.exp(-gamma * np.maximum(d2, 0)), iters)
    att = _softmax(kern / np.sqrt(d), -1).astype(np.float32)
    fused = (att @ sh[None]).transpose(0, 2, 1, 3).reshape(v, n, dim)     # V N D
    g = _sigmoid(sor.mean(0))                                              # (D,)
    out = tag + g * fused
    return (mix * tag + (1 - mix) * out).astype(np.float32)


def mahalanobis(x: np.ndarray, rcond: float = 1e-6) -> np.ndarray:
    """Distance of each row of ``x`` (N, D) to the rows' mean under their covariance (pinv): (N,)."""
    x = np.asarray(x, np.float64)
    xc = x - x.mean(0)
    cov = xc.T @ xc / max(len(x) - 1, 1)
    p = np.linalg.pinv(cov, rcond=rcond, hermitian=True)
    return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", xc, p, xc), 0)).astype(np.float32)


def text_sparsity(tokens: np.ndarray, text: np.ndarray, temperature: float, w_sparse: float = SPARSE_W):
    """s = w * z-scored(||f||_1 / D) + (1 - w) * min-max((f.t_anom - f.t_normal) / T) over the tokens (N,)."""
    f = np.asarray(tokens, np.float32)
    sparse = np.abs(f).sum(-1) / f.shape[-1]
    sd = float(sparse.std())
    sparse = (sparse - sparse.mean()) / sd if sd > 0 else np.zeros_like(sparse)
    t = np.asarray(text, np.float32)
    txt = minmax((f @ t[1] - f @ t[0]) / float(temperature))
    return (w_sparse * sparse + (1 - w_sparse) * txt).astype(np.float32)


def dsi_maps(hybrid: np.ndarray, text: np.ndarray, temperature: float, grid: tuple[int, int],
             maha: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Per view (V, N, D) -> (maps (V, gh, gw) = 0.7 b + 0.3 a, b (V, gh, gw)) where b = softmax([s, -s])[0]
    and a = min-max Mahalanobis (``maha``: precomputed (V, N), it does not depend on the text)."""
    if maha is None:
        maha = np.stack([minmax(mahalanobis(h)) for h in hybrid])
    s = np.stack([text_sparsity(h, text, temperature) for h in hybrid])
    b = _sigmoid(2 * s)                                  # softmax([s, -s])[0]
    m = MAP_W * b + (1 - MAP_W) * maha
    shape = (len(hybrid), grid[0], grid[1])
    return m.reshape(shape).astype(np.float32), b.reshape(shape).astype(np.float32)


def image_score(terms: dict) -> float:
    """0.4 hybrid_global + 0.3 view_global + 0.3 rgb_global over the terms present (weights renormalised)."""
    have = [(float(terms[k]), w) for k, w in IMAGE_WEIGHTS.items() if terms.get(k) is not None]
    if not have:
        return float("nan")
    return sum(s * w for s, w in have) / sum(w for _, w in have)
