"""Constants and small numeric helpers shared by the demo generator's modules."""
from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np

#: Bump whenever the generated files change (the cache directory is ``demo-v<DEMO_VERSION>``).
DEMO_VERSION = 1
#: The synthetic part classes.
DEMO_CLASSES: tuple[str, ...] = ("cookie", "bracket", "tube", "gasket")
#: Defect kinds, in the order their folders are generated.
DEFECT_KINDS: tuple[str, ...] = ("dent", "bump", "stain", "scratch", "hole", "crack")
GEOMETRY_DEFECTS: tuple[str, ...] = ("dent", "bump")      # plain in 3D, faint in RGB
TEXTURE_DEFECTS: tuple[str, ...] = ("stain", "scratch")   # plain in RGB, absent in 3D
MIXED_DEFECTS: tuple[str, ...] = ("hole", "crack")        # in 3D and dark in RGB

GOOD = "good"
MANIFEST = "demo.json"
DEMO_FORMAT = "mmad-inspector-demo"
LABELS = (GOOD,) + DEFECT_KINDS
SPLITS = ("train", "validation", "test")

ProgressFn = Callable[[float, str], None]

# camera / sensor constants (mm)
Z_NOMINAL = 300.0           # nominal distance camera -> background plane
PROJECTOR_AZIMUTH = 0.0     # the structured-light projector sits to the right of the camera (deg)
PROJECTOR_ELEVATION = 70.0  # ... 20 deg off the optical axis
STEEP_COS = 0.2             # points whose normal is > ~78 deg from the view ray are not measured
GT_GEOMETRY_FRACTION = 0.15  # dent/bump ground truth: |height change| > 15 % of its peak


# =============================================================================== small helpers
def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at ``e0`` to 1 at ``e1`` (``e0 > e1`` gives a falling step)."""
    t = np.clip((np.asarray(x, np.float32) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def make_rng(*key: int) -> np.random.Generator:
    """An independent, reproducible random stream for an integer key."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def value_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation.

    ``sigma`` (texels) is the correlation length, or ``(sigma_x, sigma_y)`` for anisotropic noise
    (brushed metal, extrusion lines).  Large isotropic scales are made at low resolution and
    upsampled (same statistics, much faster).
    """
    h, w = shape
    sx, sy = (sigma, sigma) if np.isscalar(sigma) else sigma
    if sx == sy and sx > 6.0:
        f = sx / 3.0
        small = (max(2, int(math.ceil(h / f)) + 2), max(2, int(math.ceil(w / f)) + 2))
        n = cv2.GaussianBlur(rng.standard_normal(small, dtype=np.float32), (0, 0), 3.0,
                             borderType=cv2.BORDER_REFLECT)
        n = cv2.resize(n, (int(small[1] * f), int(small[0] * f)), interpolation=cv2.INTER_CUBIC)[:h, :w]
    else:
        n = rng.standard_normal((h, w), dtype=np.float32)
        if sx > 0.25 or sy > 0.25:
            n = cv2.GaussianBlur(n, (0, 0), sigmaX=max(sx, 0.25), sigmaY=max(sy, 0.25),
                                 borderType=cv2.BORDER_REFLECT)
    mean, std = cv2.meanStdDev(n)
    return ((n - np.float32(mean[0, 0])) / np.float32(max(float(std[0, 0]), 1e-6))).astype(np.float32, copy=False)


def random_waves(seed: int, n: int = 6, wavelength: tuple[float, float] = (0.8, 3.0)):
    """A smooth random field evaluable anywhere: a sum of ``n`` random plane waves (mm)."""
    r = make_rng(seed, 99)
    k = 2 * np.pi / r.uniform(*wavelength, n)
    th = r.uniform(0, 2 * np.pi, n)
    ph = r.uniform(0, 2 * np.pi, n)
    kx, ky = k * np.cos(th), k * np.sin(th)

    def field(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        out = np.zeros(np.shape(u), np.float32)
        for i in range(n):
            out += np.sin(kx[i] * u + ky[i] * v + ph[i]).astype(np.float32)
        return out * np.float32(math.sqrt(2.0 / n))  # ~unit std

    return field


def polyline_distance(px: np.ndarray, py: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points to a polyline and the arc-length position (0..1) of the nearest point."""
    best = np.full(px.shape, np.inf, np.float32)
    pos = np.zeros(px.shape, np.float32)
    seg = np.diff(pts, axis=0)
    lens = np.hypot(seg[:, 0], seg[:, 1])
    total = max(float(lens.sum()), 1e-9)
    start = np.concatenate([[0.0], np.cumsum(lens)[:-1]])
    for (ax, ay), (sx, sy), ln, s0 in zip(pts[:-1], seg, lens, start):
        t = np.clip(((px - ax) * sx + (py - ay) * sy) / max(ln * ln, 1e-12), 0.0, 1.0)
        d2 = (px - ax - t * sx) ** 2 + (py - ay - t * sy) ** 2
        closer = d2 < best
        best = np.where(closer, d2, best)
        pos = np.where(closer, (s0 + t * ln) / total, pos)
    return np.sqrt(best).astype(np.float32), pos.astype(np.float32)


class TexGrid:
    """A square texture over the part's local frame: ``[-extent, extent]^2`` mm at ``ppm`` texels/mm."""

    def __init__(self, extent: float, ppm: float):
        self.extent = float(extent)
        self.ppm = float(ppm)
        self.n = int(math.ceil(2 * extent * ppm))
        c = (np.arange(self.n, dtype=np.float32) + 0.5) / self.ppm - self.extent
        self.v, self.u = np.meshgrid(c, c, indexing="ij")  # texel centres (mm): rows = v, cols = u

    def noise(self, rng: np.random.Generator, sigma_mm: float | tuple[float, float]) -> np.ndarray:
        s = sigma_mm if np.isscalar(sigma_mm) else tuple(sigma_mm)
        s = s * self.ppm if np.isscalar(s) else (s[0] * self.ppm, s[1] * self.ppm)
        return value_noise(rng, (self.n, self.n), s)

    def sample(self, tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Bilinear lookup of a texture at local coordinates (mm)."""
        mx = ((u + self.extent) * self.ppm - 0.5).astype(np.float32)
        my = ((v + self.extent) * self.ppm - 0.5).astype(np.float32)
        return cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


