"""Hand-crafted, weight-free RGB patch descriptors.

Per pixel (at the working resolution, the image resized to ``size`` x ``size``):

* **locally contrast-normalised lightness** ``n = (L - mu) / sqrt(var + eps)``, where ``mu`` and
  ``var`` are Gaussian-weighted local statistics (``sigma = size / 16``): a change of exposure,
  contrast or a slow illumination gradient leaves ``n`` unchanged, so highlights and shading do not
  dominate the structure channels;
* **oriented gradient energy** (HOG-like) of ``n`` at scales 1, 2 and 4 px: the gradient magnitude
  softly split into ``N_ORIENT`` unsigned orientation bins.  The orientations are measured
  relative to a reference angle (``angle``, e.g. the texture's dominant orientation, see
  :func:`dominant_angles`), which makes the descriptor follow an in-plane rotation of a texture;
* **Hessian eigenvalues** of ``n`` at the same scales (blob / ridge polarity and strength);
* **colour**: CIE Lab chroma (a, b) and the lightness relative to the image's median (in units
  of its 5-95 % spread), plus the
  chroma gradient magnitude (colour edges of stains).  Grey images have constant chroma: those
  channels are dropped by the scaler.

The channels are pooled (box mean; the signed Hessian channels also as mean absolute value) over
three nested square windows (``stride``, ``2 stride``, ``4 stride``) sampled every ``stride`` px.
In texture mode, patch centres are kept at least the largest window's half-size plus the coarsest
derivative's support away from the image border (the border patches copy their nearest interior neighbour):
descriptors that would see reflected, mirrored texture at the border are never computed, which
otherwise lights up a frame around every texture image.
"""
from __future__ import annotations

import cv2
import numpy as np

SCALES = (1.0, 2.0, 4.0)
N_ORIENT = 8
_ANGLE_BINS = 90          # resolution of the dominant-orientation histogram (2 degrees, mod 180)


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {rgb.shape}")
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)


def _lab(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def normalised_lightness(light: np.ndarray) -> np.ndarray:
    """Local contrast normalisation of a lightness map (Gaussian window of ``size / 16``)."""
    s = max(light.shape) / 16.0
    mu = cv2.GaussianBlur(light, (0, 0), s, borderType=cv2.BORDER_REFLECT)
    d = light - mu
    var = cv2.GaussianBlur(d * d, (0, 0), s, borderType=cv2.BORDER_REFLECT)
    # the floor keeps flat regions (noise only) from being blown up to unit contrast
    floor = max(float(np.mean(var)) * 0.05, 1e-4)
    return (d / np.sqrt(var + floor)).astype(np.float32)


def _gradients(img: np.ndarray, sigma: float) -> tuple[np.ndarray, ...]:
    g = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    lx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8, borderType=cv2.BORDER_REFLECT)
    ly = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8, borderType=cv2.BORDER_REFLECT)
    lxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3, scale=1 / 4, borderType=cv2.BORDER_REFLECT)
    lyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3, scale=1 / 4, borderType=cv2.BORDER_REFLECT)
    lxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3, scale=1 / 4, borderType=cv2.BORDER_REFLECT)
    return lx, ly, lxx, lxy, lyy


def dominant_angles(rgb: np.ndarray, size: int = 256, k: int = 2) -> list[float]:
    """The ``k`` strongest orientations (radians, mod pi) of the image's structure: peaks of the
    magnitude-weighted histogram of unsigned gradient orientations of the normalised lightness
    (circularly smoothed), strongest first."""
    img = _resize(rgb, size)
    n = normalised_lightness(np.ascontiguousarray(_lab(img)[..., 0]))
    lx, ly, *_ = _gradients(n, 1.0)
    mag = np.sqrt(lx * lx + ly * ly).ravel()
    th = np.mod(np.arctan2(ly, lx).ravel(), np.pi)
    hist = np.bincount((th / np.pi * _ANGLE_BINS).astype(int) % _ANGLE_BINS, weights=mag,
                       minlength=_ANGLE_BINS)
    ker = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    hist = np.convolve(np.concatenate([hist[-6:], hist, hist[:6]]), ker, mode="valid")
    peaks = [i for i in range(_ANGLE_BINS) if hist[i] >= hist[i - 1] and hist[i] > hist[(i + 1) % _ANGLE_BINS]]
    peaks.sort(key=lambda i: -hist[i])
    out = [(i + 0.5) * np.pi / _ANGLE_BINS for i in peaks[:k]]
    return out or [0.0]


def pixel_features(rgb: np.ndarray, size: int, angle: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel features at ``size`` x ``size``.

    Returns ``(mean_channels, signed_channels, groups)``: maps to average (S x S x C), signed maps
    averaged both as they are and as absolute values (S x S x A), and the group name of each of the
    C + A channels (``"colour"``, ``"orient"`` or ``"blob"``).
    """
    img = _resize(rgb, size)
    lab = _lab(img)
    light = np.ascontiguousarray(lab[..., 0])
    n = normalised_lightness(light)
    # lightness relative to the image's median, in units of its 5-95 % spread (floored): a global
    # exposure or contrast change leaves it as it is
    lo, med, hi = (float(q) for q in np.percentile(light, (5, 50, 95)))
    spread = max(hi - lo, 10.0)
    mean_ch = [(light - med) / spread, lab[..., 1] / 25.0, lab[..., 2] / 25.0]
    groups = ["colour"] * 3
    signed = [n]
    sgroups = ["blob"]
    centres = (np.arange(N_ORIENT) + 0.5) * np.pi / N_ORIENT
    width = np.pi / N_ORIENT
    for s in SCALES:
        lx, ly, lxx, lxy, lyy = _gradients(n, s)
        mag = s * np.sqrt(lx * lx + ly * ly)
        th = np.mod(np.arctan2(ly, lx) - angle, np.pi)
        for c in centres:
            # soft (triangular) assignment to the two nearest bins, circular over pi
            d = np.abs(np.mod(th - c + np.pi / 2, np.pi) - np.pi / 2)
            mean_ch.append(mag * np.clip(1.0 - d / width, 0.0, None))
            groups.append("orient")
        tr = (lxx + lyy) / 2
        det = np.sqrt(((lxx - lyy) / 2) ** 2 + lxy ** 2)
        signed += [s * s * (tr + det), s * s * (tr - det)]
        sgroups += ["blob", "blob"]
    ax, ay, *_ = _gradients(np.ascontiguousarray(lab[..., 1]), 2.0)
    bx, by, *_ = _gradients(np.ascontiguousarray(lab[..., 2]), 2.0)
    mean_ch.append(2.0 * np.sqrt(ax * ax + ay * ay + bx * bx + by * by) / 25.0)
    groups.append("colour")
    return (np.stack(mean_ch, -1).astype(np.float32), np.stack(signed, -1).astype(np.float32),
            np.array(groups + sgroups))


def patch_grid(size: int, stride: int) -> tuple[int, int]:
    """Shape of the patch grid for a working size and stride."""
    n = int(np.ceil(size / stride))
    return n, n


def border_margin(size: int, stride: int) -> int:
    """Distance from the border (working px) inside which no patch is described."""
    m = 2 * stride + int(np.ceil(2 * max(SCALES)))
    return int(min(m, max(size // 2 - 1, 0)))


def rgb_descriptors(rgb: np.ndarray, size: int = 256, stride: int = 4, angle: float = 0.0,
                    flip: bool = False, margin: bool = True) -> tuple[np.ndarray, tuple[int, int], np.ndarray]:
    """Patch descriptors of an RGB image.

    ``angle``: the reference orientation subtracted from gradient orientations (radians);
    ``flip``: describe the left-right mirror image (support augmentation; the patch grid is
    mirrored back, so positions keep their meaning); ``margin``: keep patch centres away from the
    border (textures; an object's border looks alike in every image, reflected or not).

    Returns ``(desc, grid, groups)``: ``desc`` (gh * gw) x D float32 (row-major patch order),
    ``grid`` = (gh, gw) and ``groups`` the group name of each of the D channels
    (``"<group>@<window>"``).
    """
    rgb = np.asarray(rgb)
    if flip:
        rgb = np.ascontiguousarray(rgb[:, ::-1])
    mean_ch, signed, groups = pixel_features(rgb, size, angle)
    stack = np.concatenate([mean_ch, signed, np.abs(signed[..., 1:])], axis=-1)
    groups = np.concatenate([groups, groups[mean_ch.shape[-1] + 1:]])
    gh, gw = patch_grid(size, stride)
    m = border_margin(size, stride) if margin else 0
    cy = (np.arange(gh) * stride + stride // 2).clip(m, size - 1 - m)
    cx = (np.arange(gw) * stride + stride // 2).clip(m, size - 1 - m)
    if flip:
        cx = cx[::-1]
    # box means at the patch centres only, from one integral image (windows clipped at the border)
    integ = np.zeros((size + 1, size + 1, stack.shape[-1]), np.float64)
    integ[1:, 1:] = stack.astype(np.float64).cumsum(0).cumsum(1)
    outs, names = [], []
    for win in (stride, 2 * stride, 4 * stride):
        h = win // 2
        y0, y1 = (cy - h).clip(0, size), (cy + h + 1).clip(0, size)
        x0, x1 = (cx - h).clip(0, size), (cx + h + 1).clip(0, size)
        box = (integ[np.ix_(y1, x1)] - integ[np.ix_(y0, x1)] - integ[np.ix_(y1, x0)] + integ[np.ix_(y0, x0)])
        area = ((y1 - y0)[:, None] * (x1 - x0)[None, :]).astype(np.float64)[..., None]
        outs.append((box / area).astype(np.float32))
        names += [f"{g}@{win}" for g in groups]
    desc = np.concatenate(outs, axis=-1).reshape(gh * gw, -1)
    return np.ascontiguousarray(desc, dtype=np.float32), (gh, gw), np.array(names)


def stationarity(descs: list[np.ndarray], grid: tuple[int, int], blocks: int = 4, border: int = 0) -> float:
    """How much a support set's patch statistics depend on position, in [0, 1]: the fraction of
    the (standardised) descriptor variance explained by the block of a ``blocks`` x ``blocks``
    partition of the image.  A texture (any position looks like any other) is near 0; an object on
    a background is far from it.  ``border``: grid cells next to the border left out."""
    gh, gw = grid
    gy, gx = np.divmod(np.arange(gh * gw), gw)
    inner = (gy >= border) & (gy < gh - border) & (gx >= border) & (gx < gw - border)
    if inner.sum() >= blocks * blocks:
        descs = [d[inner] for d in descs]
        gy, gx = gy[inner] - border, gx[inner] - border
        gh, gw = gh - 2 * border, gw - 2 * border
    x = np.concatenate(descs).astype(np.float64)
    mu, sd = x.mean(0), x.std(0)
    ok = sd > 1e-9
    if not ok.any():
        return 0.0
    block = (gy * blocks // gh) * blocks + (gx * blocks // gw)
    z = (x[:, ok] - mu[ok]) / sd[ok]
    blk = np.tile(block, len(descs))
    between = 0.0
    for b in range(blocks * blocks):
        sel = blk == b
        if sel.any():
            between += sel.sum() * float((z[sel].mean(0) ** 2).sum())
    return float(between / (len(z) * ok.sum()))


#: the smallest standard deviation a channel group is scaled by (its natural unit of change):
#: colour channels are in 25 Lab units (chroma) or in the image's lightness spread; structure
#: channels are in units of the local contrast
MIN_STD = {"colour": 0.04, "orient": 0.01, "blob": 0.01}


def channel_floors(names: np.ndarray) -> np.ndarray:
    """Per-channel standard-deviation floors for descriptor channels named ``<group>@<window>``."""
    return np.array([MIN_STD.get(str(n).split("@")[0], 0.0) for n in names], np.float64)
