"""Hand-crafted, weight-free RGB patch descriptors.

Per pixel (at the working resolution) we compute

* **colour**: CIE Lab divided by the image's median ``L + 16`` (a global gain of the light
  multiplies ``L + 16``, ``a`` and ``b`` alike by ``k^(1/3)``, so the ratio is gain invariant);
* **differential invariants** of the normalized lightness at scales ``sigma`` = 1, 2, 4 px:
  the scale-normalized gradient magnitude and the two eigenvalues of the Hessian (Koenderink's
  local jet invariants: unchanged by an in-plane rotation of the part);
* the gradient magnitude of the chroma (a, b) at ``sigma`` = 2 (colour edges of stains).

These maps are then aggregated like Back-to-the-Feature's average pooling: the mean of every
channel, and the mean *absolute* value of the signed Hessian channels (texture energy), over three
square windows (``stride``, ``2 * stride`` and ``4 * stride`` px: nested receptive fields, like a
CNN's successive layers; the finest keeps thin scratches from being averaged away) sampled every
``stride`` px.  The result is a descriptor per patch of a
regular grid.  Groups of channels are reported so the memory bank can balance them.
"""
from __future__ import annotations

import cv2
import numpy as np

SCALES = (1.0, 2.0, 4.0)


def _derivatives(img: np.ndarray, sigma: float) -> tuple[np.ndarray, ...]:
    """Gaussian-smoothed first and second derivatives (Lx, Ly, Lxx, Lxy, Lyy) at ``sigma``."""
    g = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    lx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8, borderType=cv2.BORDER_REFLECT)
    ly = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8, borderType=cv2.BORDER_REFLECT)
    lxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3, scale=1 / 4, borderType=cv2.BORDER_REFLECT)
    lyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3, scale=1 / 4, borderType=cv2.BORDER_REFLECT)
    lxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3, scale=1 / 4, borderType=cv2.BORDER_REFLECT)
    return lx, ly, lxx, lxy, lyy


def pixel_features(rgb: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel features at ``size`` x ``size``.

    Returns ``(mean_channels, abs_channels, group_of_mean_channels)``: ``mean_channels`` S x S x C
    float32 maps to be averaged, ``abs_channels`` S x S x A maps whose absolute value is averaged,
    and the group name of each of the C + A channels (``"colour"`` or ``"texture"``).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {rgb.shape}")
    img = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    gain = float(np.median(lab[..., 0] + 16.0))
    gain = max(gain, 1.0) / 50.0  # so that a mid-grey image keeps values of the usual Lab range
    lab[..., 0] += 16.0
    lab /= gain * 100.0             # ~unit range
    light = np.ascontiguousarray(lab[..., 0])
    mean_ch = [lab[..., 0], lab[..., 1], lab[..., 2]]
    groups = ["colour"] * 3
    abs_ch = []
    for s in SCALES:
        lx, ly, lxx, lxy, lyy = _derivatives(light, s)
        mean_ch.append(s * np.sqrt(lx * lx + ly * ly))
        groups.append("texture")
        # Hessian eigenvalues, scale-normalized by s^2 (signed: blob polarity)
        tr = (lxx + lyy) / 2
        det = np.sqrt(((lxx - lyy) / 2) ** 2 + lxy ** 2)
        abs_ch += [s * s * (tr + det), s * s * (tr - det)]
    # chroma edges
    ax, ay, *_ = _derivatives(np.ascontiguousarray(lab[..., 1]), 2.0)
    bx, by, *_ = _derivatives(np.ascontiguousarray(lab[..., 2]), 2.0)
    mean_ch.append(2.0 * np.sqrt(ax * ax + ay * ay + bx * bx + by * by))
    groups.append("colour")
    groups += ["texture"] * len(abs_ch)
    return (np.stack(mean_ch, -1).astype(np.float32), np.stack(abs_ch, -1).astype(np.float32),
            np.array(groups))


def patch_grid(size: int, stride: int) -> tuple[int, int]:
    """Shape of the patch grid for a working size and stride."""
    n = int(np.ceil(size / stride))
    return n, n


def rgb_descriptors(rgb: np.ndarray, size: int = 256, stride: int = 4) -> tuple[np.ndarray, tuple[int, int], np.ndarray]:
    """Patch descriptors of an RGB image.

    Returns ``(desc, grid, groups)``: ``desc`` (gh * gw) x D float32 (row-major patch order),
    ``grid`` = (gh, gw) and ``groups`` the group name of each of the D channels
    (``"<group>@<window>"``).
    """
    mean_ch, abs_ch, groups = pixel_features(rgb, size)
    stack = np.concatenate([mean_ch, np.abs(abs_ch)], axis=-1)
    gh, gw = patch_grid(size, stride)
    centres = (np.arange(gh) * stride + stride // 2).clip(max=size - 1)
    centres_x = (np.arange(gw) * stride + stride // 2).clip(max=size - 1)
    outs, names = [], []
    for win in (stride, 2 * stride, 4 * stride):
        pooled = np.stack([cv2.boxFilter(stack[..., c], -1, (win + 1, win + 1), borderType=cv2.BORDER_REFLECT)
                           for c in range(stack.shape[-1])], -1)
        outs.append(pooled[np.ix_(centres, centres_x)])
        names += [f"{g}@{win}" for g in groups]
    desc = np.concatenate(outs, axis=-1).reshape(gh * gw, -1)
    return np.ascontiguousarray(desc, dtype=np.float32), (gh, gw), np.array(names)
