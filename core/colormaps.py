"""Colour lookup tables and score-range rules shared by the GUI views and the CLI's PNGs (headless).

Every anomaly map is coloured through the same 256-entry lookup tables, so the 2D heatmap, the 3D
point colours, the GUI's colour bar and ``mmad-inspector score``'s PNGs mean the same thing.  The
tables come from matplotlib when it is installed (optional; imported lazily, pulled in by open3d)
and otherwise from control points sampled from the same colormaps (33 evenly spaced colours,
linearly interpolated; ``jet`` uses its exact piecewise-linear definition), which stay within a
few 8-bit levels of matplotlib's tables.

:func:`score_range` is the one rule for the colour range of a result: ``[0, 2 t]`` with a decision
threshold ``t > 0``, else the 1st-99.5th percentile of the sample's own scores.

Pure numpy: no Qt, no pyvista.  ``apply_colormap`` is cheap (one affine transform, one clip, one
table lookup): a few milliseconds for an 800 x 800 map on this project's 2-core machines.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional

import numpy as np

__all__ = [
    "COLORMAPS",
    "DEFAULT_COLORMAP",
    "NAN_COLOR",
    "alpha_ramp",
    "apply_colormap",
    "check_colormap",
    "colormap_indices",
    "colorbar_image",
    "contrast_color",
    "percentile_range",
    "heatmap_overlay",
    "lut",
    "score_colors",
    "score_range",
]

#: Names accepted by :func:`apply_colormap` and the views' ``set_colormap``.
COLORMAPS = ("inferno", "jet", "viridis", "turbo", "magma")

#: Colour used by the views for undefined (NaN) values where they have to draw something.
NAN_COLOR = (128, 128, 128)

# 33 evenly spaced colours of each smooth colormap (sampled from matplotlib 3.11), used only when
# matplotlib is not importable.
_CONTROL_POINTS = {
    "inferno": (
        "000004 040312 0b0724 150b37 210c4a 2f0a5b 3d0965 4a0c6b 57106e 64156e 71196e"
        " 7d1e6d 8a226a 972766 a32c61 b0315b bc3754 c73e4c d24644 db503b e45a31 eb6628"
        " f1731d f68013 f98e09 fb9d07 fcac11 fbbc21 f9cb35 f5db4c f2ea69 f3f68a fcffa4"
    ),
    "viridis": (
        "440154 470d60 48186a 482374 472d7b 453781 424086 3e4989 3b528b 375b8d 33638d"
        " 2f6b8e 2c728e 297a8e 26828e 23898e 21918c 1f988b 1fa088 22a785 28ae80 32b67a"
        " 3fbc73 4ec36b 5ec962 70cf57 84d44b 98d83e addc30 c2df23 d8e219 ece51b fde725"
    ),
    "magma": (
        "000004 030312 0a0822 130d34 1d1147 29115a 36106b 440f76 51127c 5d177f 6a1c81"
        " 762181 832681 902a81 9c2e7f aa337d b73779 c43c75 d0416f dc4869 e75263 ef5d5e"
        " f56b5c f9795d fc8961 fd9869 fea772 feb67c fec488 fed395 fde2a3 fcf0b2 fcfdbf"
    ),
    "turbo": (
        "30123b 392a73 4040a2 4456c7 466be3 4680f6 4294ff 37a8fa 28bceb 1ccdd8 18ddc2"
        " 1fe9af 32f298 4ef97d 6dfe62 8bff4b a4fc3c b9f635 cdec34 dfdf37 eecf3a f8be39"
        " fdac34 fe962b fb7e21 f46617 eb500e df3f08 d02f05 be2102 a91601 920b01 7a0403"
    ),
}

# matplotlib's definition of "jet": per channel (x, value) breakpoints, linear in between.
_JET_SEGMENTS = (
    ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
)

# Colour of the threshold contour / emphasis drawn over each colormap: one that none of the
# map's own colours resembles.
_CONTRAST = {
    "inferno": (0, 255, 255),
    "magma": (0, 255, 255),
    "viridis": (255, 64, 255),
    "jet": (255, 255, 255),
    "turbo": (255, 255, 255),
}


def check_colormap(name: str) -> str:
    """``name`` if it is one of :data:`COLORMAPS`, else ValueError listing them."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}")
    return name


def _fallback_lut(name: str) -> np.ndarray:
    """256 x 3 uint8 table built from the control points above (no matplotlib needed)."""
    t = np.linspace(0.0, 1.0, 256)
    if name == "jet":
        chans = [np.interp(t, [p[0] for p in seg], [p[1] for p in seg]) * 255.0 for seg in _JET_SEGMENTS]
    else:
        hexes = _CONTROL_POINTS[name].split()
        cp = np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in hexes], np.float64)
        x = np.linspace(0.0, 1.0, len(cp))
        chans = [np.interp(t, x, cp[:, c]) for c in range(3)]
    return np.clip(np.round(np.stack(chans, axis=1)), 0, 255).astype(np.uint8)


def _matplotlib_lut(name: str) -> Optional[np.ndarray]:
    try:
        import matplotlib  # noqa: PLC0415  (optional, only for the tables)
        cmap = matplotlib.colormaps[name]
    except Exception:  # not installed, or too old to know the name  # noqa: BLE001 - must never fail the caller
        return None
    rgba = cmap(np.linspace(0.0, 1.0, 256))
    return np.clip(np.round(rgba[:, :3] * 255.0), 0, 255).astype(np.uint8)


@lru_cache(maxsize=None)
def _cached_lut(name: str, use_matplotlib: bool) -> np.ndarray:
    table = _matplotlib_lut(name) if use_matplotlib else None
    if table is None:
        table = _fallback_lut(name)
    table.setflags(write=False)
    return table


def lut(name: str = "inferno", *, use_matplotlib: bool = True) -> np.ndarray:
    """The read-only 256 x 3 uint8 lookup table of colormap ``name``.

    ``use_matplotlib=False`` forces the built-in control-point tables (used by the tests to check
    them against matplotlib).
    """
    return _cached_lut(check_colormap(name), bool(use_matplotlib))


def contrast_color(name: str) -> tuple[int, int, int]:
    """An RGB colour that stands out against every colour of colormap ``name``."""
    return _CONTRAST[check_colormap(name)]


def _indices(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """LUT indices (intp) of ``values``; NaN maps to index 0 (callers mask NaN themselves).

    Binning follows matplotlib: ``t = (v - vmin) / (vmax - vmin)`` falls in entry
    ``floor(256 t)``, clipped to 0..255 (so ``t == 1`` is the last entry).
    """
    v = np.asarray(values)
    vmin = float(vmin)
    vmax = float(vmax)
    if not (np.isfinite(vmin) and np.isfinite(vmax)):
        raise ValueError(f"colour range must be finite, got vmin={vmin}, vmax={vmax}")
    if vmax > vmin:
        t = (v.astype(np.float64) - vmin) / (vmax - vmin)
        t *= 256.0
        np.nan_to_num(t, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(t, 0.0, 255.0, out=t)
        return t.astype(np.intp)  # truncation == floor for t >= 0
    # Degenerate range: values above it are "hot", the rest "cold".
    with np.errstate(invalid="ignore"):
        return np.where(v > vmin, 255, 0).astype(np.intp)


def apply_colormap(values: np.ndarray, vmin: float, vmax: float, name: str = "inferno") -> np.ndarray:
    """Map ``values`` (any shape) linearly from [vmin, vmax] to colours of colormap ``name``.

    Returns ``values.shape + (3,)`` uint8.  Values outside the range are clipped to the end
    colours; NaN gets the colour of ``vmin`` -- callers that must show NaN differently (as
    transparent or grey) mask it themselves.  With ``vmax <= vmin`` values above ``vmin`` get the
    top colour and the rest the bottom one.
    """
    return np.take(lut(name), _indices(values, vmin, vmax), axis=0)  # (5x faster than lut[idx])


def colormap_indices(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """The 0..255 lookup-table entry of each value (intp, same shape as ``values``).

    ``apply_colormap(v, vmin, vmax, name) == lut(name)[colormap_indices(v, vmin, vmax)]``.  NaN
    maps to entry 0; values outside [vmin, vmax] to the end entries.
    """
    return _indices(values, vmin, vmax)


@lru_cache(maxsize=64)
def _cached_ramp(gamma: float) -> np.ndarray:
    if gamma == 0.0:
        table = np.ones(256, np.float32)
    else:
        table = (np.arange(256, dtype=np.float64) / 255.0) ** gamma
        table = table.astype(np.float32)
    table.setflags(write=False)
    return table


def alpha_ramp(gamma: float) -> np.ndarray:
    """Read-only 256-entry float32 table of overlay weights per colormap entry: ``(i / 255) ** gamma``.

    Indexed like :func:`lut`, it makes a heatmap overlay fade out with the score: weight 0 at the
    bottom of the colour range, 1 at the top.  ``gamma > 1`` keeps low scores fainter for longer;
    ``gamma == 0`` gives weight 1 everywhere (a uniform overlay).
    """
    gamma = float(gamma)
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(f"the overlay gamma must be a finite number >= 0, got {gamma}")
    return _cached_ramp(gamma)


def colorbar_image(name: str, height: int, width: int) -> np.ndarray:
    """An H x W x 3 uint8 picture of colormap ``name``.

    Vertical (low values at the bottom, high at the top) when ``height >= width``, horizontal
    (low on the left) otherwise.
    """
    height = int(height)
    width = int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f"colour bar size must be positive, got {height} x {width}")
    table = lut(name)
    if height >= width:
        idx = np.round(np.linspace(255, 0, height)).astype(np.intp)
        return np.ascontiguousarray(np.broadcast_to(table[idx][:, None, :], (height, width, 3)))
    idx = np.round(np.linspace(0, 255, width)).astype(np.intp)
    return np.ascontiguousarray(np.broadcast_to(table[idx][None, :, :], (height, width, 3)))


#: The colormap of the CLI's PNGs and the GUI's first start.
DEFAULT_COLORMAP = "inferno"


def score_range(result: Any) -> tuple[float, float]:
    """Colour range of a result (anything with ``threshold``, ``pixel_map``, ``point_scores``).

    With a decision threshold ``t > 0`` the range is fixed to ``[0, 2 t]`` so colours mean the same
    on every sample (paging through results compares like with like); otherwise the 1st-99.5th
    percentile of the sample's own scores.  None: ``(0, 1)``.
    """
    if result is None:
        return 0.0, 1.0
    t = getattr(result, "threshold", None)
    if t is not None and np.isfinite(t) and t > 0:
        return 0.0, 2.0 * float(t)
    return percentile_range(getattr(result, "pixel_map", None), getattr(result, "point_scores", None))


def percentile_range(*arrays: Optional[np.ndarray]) -> tuple[float, float]:
    """The 1st-99.5th percentile of the finite values of ``arrays`` together (None skipped);
    ``(0, 1)`` without any; ``hi`` > ``lo`` always."""
    vals = [np.asarray(a)[np.isfinite(a)] for a in arrays if a is not None]
    vals = [v for v in vals if v.size]
    if not vals:
        return 0.0, 1.0
    v = np.concatenate([x.ravel() for x in vals])
    lo, hi = np.percentile(v, [1, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1e-6)


def heatmap_overlay(rgb: Optional[np.ndarray], pixel_map: np.ndarray, vmin: float, vmax: float,
                    opacity: float = 0.5, name: str = DEFAULT_COLORMAP) -> np.ndarray:
    """H x W x 3 uint8: ``pixel_map`` coloured over [vmin, vmax] and blended over ``rgb`` (same
    H x W; None: the coloured map alone).  NaN scores leave the photo as it is (grey without one)."""
    pm = np.asarray(pixel_map)
    heat = apply_colormap(pm, vmin, vmax, name)
    nan = ~np.isfinite(pm)
    if rgb is None:
        heat[nan] = NAN_COLOR
        return heat
    base = np.asarray(rgb)
    if base.shape[:2] != pm.shape[:2]:
        raise ValueError(f"the map is {pm.shape[:2]} but the image is {base.shape[:2]}")
    a = np.where(nan, 0.0, float(min(max(opacity, 0.0), 1.0)))[..., None]
    out = base[..., :3].astype(np.float32) * (1.0 - a) + heat.astype(np.float32) * a
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def score_colors(scores: np.ndarray, vmin: float, vmax: float, name: str = DEFAULT_COLORMAP,
                 base: Optional[np.ndarray] = None, gamma: float = 0.0, opacity: float = 1.0) -> np.ndarray:
    """N x 3 uint8 colours of N scores (e.g. per-point scores of a cloud).

    Without ``base``: the plain colormap colours, NaN grey (:data:`NAN_COLOR`).  With ``base``
    (N x 3 uint8, e.g. the points' own colours): the colormap blended over it with weight
    ``opacity * alpha_ramp(gamma)[entry]``, so low scores leave ``base`` readable; NaN: ``base``.
    """
    s = np.asarray(scores).reshape(-1)
    nan = ~np.isfinite(s)
    if base is None:
        out = apply_colormap(s, vmin, vmax, name)
        if nan.any():
            out[nan] = NAN_COLOR
        return out
    ci = colormap_indices(s, vmin, vmax)
    w = np.take(alpha_ramp(gamma), ci) * np.float32(min(max(opacity, 0.0), 1.0))
    w[nan] = 0.0
    out = np.asarray(base, np.float32).copy()
    top = np.take(lut(name), ci, axis=0).astype(np.float32)
    out += w[:, None] * (top - out)
    return np.rint(out, out=out).astype(np.uint8)
