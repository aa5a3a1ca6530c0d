"""Built-in demo dataset: synthetic RGB + organized-point-cloud inspection data in the MVTec 3D-AD layout.

The demo is the application's default data and the test-suite's fixture.  It is rendered, not
drawn: every sample is a small physically-motivated scene.

Scene
    A part lies on a slightly tilted, textured background plane (~300 mm from the camera) and is seen
    by an organized depth camera (pinhole, one 3D point per pixel, in mm) paired with a colour camera
    on the same pixel grid.  The part is a *height field* over the plane defined in its own local
    frame (mm), so pose (in-plane rotation, translation), size, texture and defects move with it.

Classes (:data:`DEMO_CLASSES`), each with all six defect kinds
    ``cookie`` (round baked disc, domed and lumpy, speckled crust; rotated +-180 deg), ``bracket``
    (machined aluminium plate with two chamfered holes, brushed finish; +-20 deg), ``tube`` (extruded
    plastic tube lying on its side; +-15 deg), ``gasket`` (black moulded rubber ring; +-180 deg).

3D (``xyz``)
    Each pixel's ray is intersected with the part surface (fixed-point iterations, so the parallax of
    tall parts is right), then depth noise is added along the ray.  Points are missing (stored as
    exactly 0, like MVTec 3D-AD) on steep walls, in the *projector shadow* of the structured-light
    sensor (a strip beside tall edges), on saturated specular highlights of metal, and in a few
    random dropouts.  The background plane is kept, as in MVTec 3D-AD.

RGB (``rgb``)
    Procedural albedo (speckle / grain / brushed lines, in the part's frame) x (ambient ring light +
    Lambertian directional light with a cast shadow) + Blinn-Phong specular, from the normals of the
    height field plus a micro-bump texture that affects shading only; then vignetting, gamma, a slight
    optical blur and sensor noise.

Good parts vary in pose, size/shape, texture, lighting direction and intensity (about +-20 %), plane
depth/tilt and depth noise, so a plain pixel difference against a good reference does not find the
defects.  Defects (:data:`DEFECT_KINDS`) are realistically small (about 0.3 %-4 % of the part area):

* geometry only: ``dent``, ``bump`` (0.7-1.6 mm over 5-8 mm; in RGB only a faint shading change),
* texture only: ``stain``, ``scratch`` (albedo change; the 3D points are bit-identical),
* both: ``hole``, ``crack`` (a cavity / fissure in 3D that is also dark in RGB).

Everything is deterministic: one seed gives the same files byte for byte.  The building blocks are
public so that tests (and curious users) can render *the same* good part with and without a defect::

    rng = np.random.default_rng(7)
    part = sample_part("cookie", rng)
    defect = sample_defect(part, "stain", rng)
    good, bad = render_part(part, None), render_part(part, defect)   # identical except the stain

Command line: ``python -m core.demo OUT [--size 256] [--classes cookie gasket] [--seed 0]``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import cv2
import numpy as np
import tifffile

from .errors import InputError

__all__ = [
    "DEMO_VERSION", "DEMO_CLASSES", "DEFECT_KINDS", "GEOMETRY_DEFECTS", "TEXTURE_DEFECTS", "MIXED_DEFECTS",
    "PartParams", "DefectParams", "Rendered", "sample_part", "sample_defect", "render_part",
    "generate_demo", "default_cache_dir", "ensure_demo", "main",
]

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
_FORMAT = "mmad-inspector-demo"
_LABELS = (GOOD,) + DEFECT_KINDS
_SPLITS = ("train", "validation", "test")

ProgressFn = Callable[[float, str], None]

# camera / sensor constants (mm)
_Z_NOMINAL = 300.0           # nominal distance camera -> background plane
_PROJECTOR_AZIMUTH = 0.0     # the structured-light projector sits to the right of the camera (deg)
_PROJECTOR_ELEVATION = 70.0  # ... 20 deg off the optical axis
_STEEP_COS = 0.2             # points whose normal is > ~78 deg from the view ray are not measured
_GT_GEOMETRY_FRACTION = 0.15  # dent/bump ground truth: |height change| > 15 % of its peak


# =============================================================================== small helpers
def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at ``e0`` to 1 at ``e1`` (``e0 > e1`` gives a falling step)."""
    t = np.clip((np.asarray(x, np.float32) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _rng(*key: int) -> np.random.Generator:
    """An independent, reproducible random stream for an integer key."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]) -> np.ndarray:
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


def _waves(seed: int, n: int = 6, wavelength: tuple[float, float] = (0.8, 3.0)):
    """A smooth random field evaluable anywhere: a sum of ``n`` random plane waves (mm)."""
    r = _rng(seed, 99)
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


def _polyline_distance(px: np.ndarray, py: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


class _TexGrid:
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
        return _noise(rng, (self.n, self.n), s)

    def sample(self, tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Bilinear lookup of a texture at local coordinates (mm)."""
        mx = ((u + self.extent) * self.ppm - 0.5).astype(np.float32)
        my = ((v + self.extent) * self.ppm - 0.5).astype(np.float32)
        return cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


# =============================================================================== part models
class _PartModel:
    """One synthetic part class: shape (height field), material, textures and defect styling.

    Subclasses implement :meth:`sample_shape`, :meth:`surface`, :meth:`top_distance` and
    :meth:`textures`.  All lengths are mm in the part's local frame (u along the part's long axis).
    """

    name = ""
    description = ""
    fov_mm = 56.0                   # field of view (width) at the background plane
    extent = 26.0                   # half-size of the local texture square
    rot_range = 180.0               # in-plane rotation range (+-deg)
    shift_range = 3.0               # translation range (+-mm)
    defect_scale = 1.0              # defect sizes relative to the nominal ranges
    light_azimuth = 225.0           # base azimuth of the key light (image axes: 0 = right, 90 = down)
    kd, ks, shininess = 0.45, 0.05, 12.0
    background = (0.06, 0.06, 0.07)  # linear albedo of the background plane
    depth_noise = (0.05, 0.15)      # range of the depth noise sigma (mm)
    dropout_rate = 0.0015           # isolated missing points
    spec_dropout: Optional[float] = None  # n.h above which a shiny surface saturates the depth sensor
    stain_color = (0.1, 0.08, 0.06)
    scratch_color = (0.7, 0.7, 0.7)

    def sample_shape(self, rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def surface(self, u: np.ndarray, v: np.ndarray, shape: dict, tex: dict) -> tuple[np.ndarray, np.ndarray]:
        """Height above the plane (mm, >= 0) and signed distance to the outline (mm, > 0 on the part)."""
        raise NotImplementedError

    def top_distance(self, u, v, shape: dict) -> np.ndarray:
        """Distance inside the region where a defect may be centred (top faces, away from walls)."""
        raise NotImplementedError

    def textures(self, rng: np.random.Generator, shape: dict, grid: _TexGrid) -> dict:
        """Maps over ``grid``: ``albedo`` (n x n x 3 linear RGB), ``bump`` (shading-only micro
        height, mm), optionally ``lump`` (real low-amplitude height relief, mm)."""
        raise NotImplementedError


class _Cookie(_PartModel):
    name = "cookie"
    description = "round baked disc with a domed, lumpy top and a speckled crust"
    fov_mm = 50.0
    extent = 24.0
    rot_range = 180.0
    shift_range = 2.0
    light_azimuth = 225.0
    kd, ks, shininess = 0.48, 0.03, 8.0
    background = (0.045, 0.05, 0.06)
    stain_color = (0.07, 0.035, 0.015)     # burnt / grease spot
    scratch_color = (0.75, 0.58, 0.36)     # scraped pale dough

    def sample_shape(self, rng):
        k = np.arange(2, 7)
        return {
            "radius": float(rng.uniform(19.0, 20.5)),
            "height": float(rng.uniform(6.0, 7.5)),
            "dome": float(rng.uniform(0.5, 1.1)),
            "edge": float(rng.uniform(2.2, 3.0)),
            "harm_amp": [float(a) for a in rng.uniform(0.004, 0.014, k.size) / np.sqrt(k - 1)],
            "harm_phase": [float(p) for p in rng.uniform(0, 2 * np.pi, k.size)],
            "bake": float(rng.uniform(0.88, 1.1)),
        }

    def _outline(self, u, v, s):
        r = np.hypot(u, v)
        phi = np.arctan2(v, u)
        rad = np.ones_like(r)
        for i, (a, p) in enumerate(zip(s["harm_amp"], s["harm_phase"])):
            rad += a * np.cos((i + 2) * phi + p)
        rad *= s["radius"]
        return r, rad

    def surface(self, u, v, s, tex):
        r, rad = self._outline(u, v, s)
        d = rad - r
        t = np.clip(d / s["edge"], 0.0, 1.0)
        prof = np.sqrt(1.0 - (1.0 - t) ** 2)                 # rounded rim
        top = s["height"] + s["dome"] * (1.0 - np.clip(r / rad, 0, 1) ** 2)
        h = prof * top
        if "lump" in tex:
            h = h + tex["grid"].sample(tex["lump"], u, v) * t
        return np.maximum(h, 0.0).astype(np.float32), d.astype(np.float32)

    def top_distance(self, u, v, s):
        r, rad = self._outline(np.asarray(u, np.float32), np.asarray(v, np.float32), s)
        return rad - r - 0.6 * s["edge"]

    def textures(self, rng, s, g):
        low = g.noise(rng, 3.0)
        mid = g.noise(rng, 0.9)
        spk = g.noise(rng, 0.28)
        sug = g.noise(rng, 0.2)
        lump = g.noise(rng, 2.6) * 0.22 + g.noise(rng, 0.8) * 0.06
        pores = g.noise(rng, 0.18)
        r = np.hypot(g.u, g.v)
        base = np.array([0.50, 0.26, 0.085], np.float32) * s["bake"]
        rim = 1.0 - 0.32 * _smoothstep(s["radius"] - 6.0, s["radius"], r)      # browner rim
        shade = rim * (1.0 + 0.07 * low + 0.04 * mid)
        dark = _smoothstep(1.5, 2.4, spk)                                     # dark crumbs
        light = _smoothstep(2.1, 2.9, sug)                                    # sugar grains
        alb = base[None, None] * shade[..., None]
        alb = alb * (1.0 - 0.6 * dark[..., None] * np.array([0.9, 1.0, 1.0], np.float32))
        alb = alb + light[..., None] * np.array([0.25, 0.2, 0.14], np.float32)
        bump = 0.012 * pores + 0.03 * dark + 0.02 * light
        return {"albedo": alb.astype(np.float32), "bump": bump.astype(np.float32),
                "lump": lump.astype(np.float32)}


class _Bracket(_PartModel):
    name = "bracket"
    description = "machined aluminium plate with two countersunk holes, chamfered edges, brushed finish"
    fov_mm = 57.0
    extent = 28.0
    rot_range = 20.0
    shift_range = 2.5
    light_azimuth = 200.0
    kd, ks, shininess = 0.42, 0.09, 12.0
    background = (0.055, 0.075, 0.065)
    depth_noise = (0.07, 0.2)
    spec_dropout = 0.992
    stain_color = (0.09, 0.045, 0.02)      # rust / oil
    scratch_color = (0.85, 0.86, 0.88)     # bright exposed metal

    def sample_shape(self, rng):
        return {
            "half_length": float(rng.uniform(20.5, 21.5)),
            "half_width": float(rng.uniform(13.0, 13.6)),
            "corner": float(rng.uniform(2.5, 4.0)),
            "thickness": float(rng.uniform(3.8, 4.3)),
            "bevel": float(rng.uniform(0.8, 1.2)),
            "hole_radius": float(rng.uniform(3.1, 3.5)),
            "hole_offset": float(rng.uniform(12.5, 13.5)),
            "shade": float(rng.uniform(0.94, 1.06)),
        }

    def _sdf(self, u, v, s):
        """Distance inside the material (outline and holes), > 0 on the part."""
        hx, hy, rc = s["half_length"], s["half_width"], s["corner"]
        qx = np.abs(u) - (hx - rc)
        qy = np.abs(v) - (hy - rc)
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0) - rc
        d = -outside
        for sx in (-1.0, 1.0):
            d = np.minimum(d, np.hypot(u - sx * s["hole_offset"], v) - s["hole_radius"])
        return d

    def surface(self, u, v, s, tex):
        d = self._sdf(u, v, s)
        bev = s["bevel"]
        h = (s["thickness"] - bev * np.clip(1.0 - d / bev, 0.0, 1.0)) * _smoothstep(-0.05, 0.05, d)
        return h.astype(np.float32), d.astype(np.float32)

    def top_distance(self, u, v, s):
        return self._sdf(np.asarray(u, np.float32), np.asarray(v, np.float32), s) - s["bevel"] - 0.5

    def textures(self, rng, s, g):
        brushed = g.noise(rng, (5.0, 0.03)) * 0.65 + g.noise(rng, (1.2, 0.06)) * 0.35
        low = g.noise(rng, 5.0)
        base = np.array([0.27, 0.28, 0.29], np.float32) * s["shade"]
        d = self._sdf(g.u, g.v, s)
        chamfer = 1.0 + 0.12 * _smoothstep(s["bevel"], 0.6 * s["bevel"], d)  # freshly cut, brighter
        f = (1.0 + 0.08 * brushed + 0.03 * low) * chamfer
        alb = base[None, None] * f[..., None]
        bump = 0.0035 * brushed
        return {"albedo": alb.astype(np.float32), "bump": bump.astype(np.float32)}


class _Tube(_PartModel):
    name = "tube"
    description = "extruded plastic tube lying on its side, filleted ends, fine grain and extrusion lines"
    fov_mm = 58.0
    extent = 27.0
    rot_range = 15.0
    shift_range = 2.5
    light_azimuth = 250.0
    kd, ks, shininess = 0.45, 0.08, 18.0
    background = (0.10, 0.10, 0.105)
    defect_scale = 0.9
    stain_color = (0.06, 0.05, 0.04)       # grease
    scratch_color = (0.80, 0.82, 0.84)     # stress-whitened scuff

    def sample_shape(self, rng):
        return {
            "half_length": float(rng.uniform(21.5, 22.5)),
            "radius": float(rng.uniform(8.5, 9.0)),
            "fillet": float(rng.uniform(0.8, 1.3)),
            "bow": float(rng.uniform(-0.25, 0.25)),     # slight bending of the extrusion (mm)
            "shade": float(rng.uniform(0.94, 1.06)),
        }

    def _axis(self, u, v, s):
        # slight bow: the axis follows a parabola through the ends
        t = np.clip(u / s["half_length"], -1, 1)
        return v - s["bow"] * (1.0 - t * t)

    def surface(self, u, v, s, tex):
        r = s["radius"]
        w = self._axis(u, v, s)
        du = s["half_length"] - np.abs(u)
        side = r - np.abs(w)
        d = np.minimum(side, du)
        h = r + np.sqrt(np.clip(r * r - w * w, 0.0, None))
        f = s["fillet"]
        tf = np.clip(du / f, 0.0, 1.0)
        h = h - f * (1.0 - np.sqrt(1.0 - (1.0 - tf) ** 2))     # rounded end edges
        h = h * _smoothstep(-0.05, 0.05, d)
        return np.maximum(h, 0.0).astype(np.float32), d.astype(np.float32)

    def top_distance(self, u, v, s):
        u = np.asarray(u, np.float32)
        w = self._axis(u, np.asarray(v, np.float32), s)
        return np.minimum(0.55 * s["radius"] - np.abs(w), s["half_length"] - np.abs(u) - 2.0)

    def textures(self, rng, s, g):
        lines = g.noise(rng, (8.0, 0.12))
        grain = g.noise(rng, 0.15)
        low = g.noise(rng, 4.0)
        base = np.array([0.30, 0.38, 0.46], np.float32) * s["shade"]
        f = 1.0 + 0.03 * lines + 0.035 * grain + 0.03 * low
        alb = base[None, None] * f[..., None]
        bump = 0.003 * lines + 0.002 * grain
        return {"albedo": alb.astype(np.float32), "bump": bump.astype(np.float32)}


class _Gasket(_PartModel):
    name = "gasket"
    description = "black moulded rubber ring with a rounded section and a satin, grainy surface"
    fov_mm = 52.0
    extent = 24.0
    rot_range = 180.0
    shift_range = 2.0
    light_azimuth = 300.0
    kd, ks, shininess = 0.5, 0.05, 10.0
    background = (0.28, 0.28, 0.26)
    defect_scale = 0.85
    depth_noise = (0.08, 0.2)
    dropout_rate = 0.004                   # dark rubber returns less light
    stain_color = (0.36, 0.35, 0.32)       # whitish residue
    scratch_color = (0.24, 0.24, 0.24)     # abraded, greyish rubber

    def sample_shape(self, rng):
        return {
            "outer": float(rng.uniform(21.0, 22.0)),
            "inner": float(rng.uniform(12.5, 13.5)),
            "height": float(rng.uniform(4.6, 5.4)),
            "ovality": float(rng.uniform(0.0, 0.012)),
            "oval_angle": float(rng.uniform(0, np.pi)),
            "shade": float(rng.uniform(0.85, 1.15)),
        }

    def _radial(self, u, v, s):
        phi = np.arctan2(v, u)
        rr = np.hypot(u, v) * (1.0 + s["ovality"] * np.cos(2 * (phi - s["oval_angle"])))
        rm = 0.5 * (s["outer"] + s["inner"])
        hw = 0.5 * (s["outer"] - s["inner"])
        return rr - rm, hw

    def surface(self, u, v, s, tex):
        x, hw = self._radial(u, v, s)
        t = np.clip(np.abs(x) / hw, 0.0, 1.0)
        h = s["height"] * (1.0 - t ** 4) ** 0.25          # rounded (superelliptic) section
        d = hw - np.abs(x)
        h = h * _smoothstep(-0.05, 0.05, d)
        return h.astype(np.float32), d.astype(np.float32)

    def top_distance(self, u, v, s):
        x, hw = self._radial(np.asarray(u, np.float32), np.asarray(v, np.float32), s)
        return 0.8 * hw - np.abs(x)

    def textures(self, rng, s, g):
        grain = g.noise(rng, 0.12)
        mid = g.noise(rng, 0.7)
        low = g.noise(rng, 4.0)
        base = np.array([0.045, 0.045, 0.05], np.float32) * s["shade"]
        f = 1.0 + 0.14 * grain + 0.06 * mid + 0.06 * low
        alb = base[None, None] * np.clip(f, 0.3, None)[..., None]
        bump = 0.006 * grain + 0.004 * mid
        return {"albedo": alb.astype(np.float32), "bump": bump.astype(np.float32)}


_MODELS: dict[str, _PartModel] = {m.name: m for m in (_Cookie(), _Bracket(), _Tube(), _Gasket())}
assert tuple(_MODELS) == DEMO_CLASSES


# =============================================================================== parameters
@dataclass
class PartParams:
    """Everything that makes one good part and its scene (all random choices are drawn here)."""

    class_name: str
    seed: int                                   # texture, depth noise, dropouts, sensor noise
    angle: float                                # in-plane rotation (deg)
    shift: tuple[float, float]                  # translation on the plane (mm)
    scale: float                                # overall size factor
    shape: dict                                 # class-specific shape parameters (mm)
    plane_z: float                              # background plane depth on the optical axis (mm)
    plane_slope: tuple[float, float]            # dz/dx, dz/dy of the background plane
    light_azimuth: float                        # key light azimuth (deg, image axes)
    light_elevation: float                      # key light elevation above the plane (deg)
    light_intensity: float                      # key light gain (1 = nominal)
    ambient: float                              # ring / ambient light level
    white_balance: tuple[float, float, float]
    depth_noise: float                          # depth noise sigma (mm)

    def to_dict(self) -> dict:
        return _jsonable(dataclasses.asdict(self))


@dataclass
class DefectParams:
    """One defect, in the part's local frame (so it moves with the part)."""

    kind: str
    center: tuple[float, float]   # (u, v) mm
    size: float                   # radius (dent, bump, hole, stain) or length (scratch, crack), mm
    depth: float                  # depth (dent, hole, crack) or height (bump) in mm; 0 = texture only
    width: float = 0.0            # line width (scratch, crack), mm
    angle: float = 0.0            # orientation (deg)
    aspect: float = 1.0           # elongation of round defects
    strength: float = 0.0         # albedo change 0..1; 0 = geometry only
    seed: int = 0                 # shape details (outline wobble, crack path)

    def to_dict(self) -> dict:
        return _jsonable(dataclasses.asdict(self))


@dataclass
class Rendered:
    """A rendered sample.  ``xyz`` stores missing points as exactly 0 (MVTec 3D-AD on-disk convention)."""

    rgb: np.ndarray            # H x W x 3 uint8, RGB order
    xyz: np.ndarray            # H x W x 3 float32, mm; missing = (0, 0, 0)
    gt: np.ndarray             # H x W bool, defect pixels
    object_mask: np.ndarray    # H x W bool, pixels on the part
    height: np.ndarray         # H x W float32, noise-free height above the plane (mm)

    @property
    def valid(self) -> np.ndarray:
        """H x W bool of pixels that hold a 3D point."""
        return self.xyz[..., 2] != 0


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    if isinstance(obj, (np.integer, int)) and not isinstance(obj, bool):
        return int(obj)
    return obj


def _model(class_name: str) -> _PartModel:
    try:
        return _MODELS[class_name]
    except KeyError:
        raise ValueError(f"unknown demo class {class_name!r}; choose from {', '.join(DEMO_CLASSES)}") from None


def sample_part(class_name: str, rng: np.random.Generator | int) -> PartParams:
    """Draw a good part of ``class_name`` (pose, size, shape, lighting, plane, noise)."""
    m = _model(class_name)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    tilt = math.radians(rng.uniform(0.5, 3.0))
    tilt_dir = rng.uniform(0, 2 * np.pi)
    wb = rng.uniform(0.97, 1.03, 3)
    return PartParams(
        class_name=class_name,
        seed=int(rng.integers(0, 2 ** 31 - 1)),
        angle=float(rng.uniform(-m.rot_range, m.rot_range)),
        shift=(float(rng.uniform(-m.shift_range, m.shift_range)), float(rng.uniform(-m.shift_range, m.shift_range))),
        scale=float(rng.uniform(0.97, 1.03)),
        shape=m.sample_shape(rng),
        plane_z=float(_Z_NOMINAL + rng.uniform(-3.0, 3.0)),
        plane_slope=(float(math.tan(tilt) * math.cos(tilt_dir)), float(math.tan(tilt) * math.sin(tilt_dir))),
        light_azimuth=float(m.light_azimuth + rng.uniform(-25.0, 25.0)),
        light_elevation=float(rng.uniform(50.0, 68.0)),
        light_intensity=float(rng.uniform(0.8, 1.2)),
        ambient=float(rng.uniform(0.50, 0.62)),
        white_balance=(float(wb[0]), float(wb[1]), float(wb[2])),
        depth_noise=float(rng.uniform(*m.depth_noise)),
    )


# nominal ranges (mm); sizes and widths are multiplied by the class's defect_scale, depths are not
_DEFECT_RANGES = {
    "dent": dict(size=(2.6, 4.0), depth=(0.7, 1.6), aspect=(1.0, 1.5)),
    "bump": dict(size=(2.4, 3.6), depth=(0.7, 1.5), aspect=(1.0, 1.5)),
    "stain": dict(size=(2.0, 3.8), aspect=(1.0, 1.8), strength=(0.7, 0.9)),
    "scratch": dict(size=(10.0, 17.0), width=(0.5, 0.7), strength=(0.6, 0.85)),
    "hole": dict(size=(1.0, 1.7), depth=(1.5, 3.0), aspect=(1.0, 1.25), strength=(0.6, 0.8)),
    "crack": dict(size=(6.0, 12.0), width=(0.45, 0.8), depth=(0.7, 1.6), strength=(0.6, 0.8)),
}


def sample_defect(part: PartParams, kind: str, rng: np.random.Generator | int) -> DefectParams:
    """Draw a defect of ``kind`` placed on the top surface of ``part``."""
    if kind not in DEFECT_KINDS:
        raise ValueError(f"unknown defect kind {kind!r}; choose from {', '.join(DEFECT_KINDS)}")
    m = _model(part.class_name)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    rg = _DEFECT_RANGES[kind]
    k = m.defect_scale
    draw = {name: float(rng.uniform(*lohi)) for name, lohi in rg.items()}
    size = draw["size"] * k
    linear = kind in ("scratch", "crack")
    margin = min(0.5 * size, 2.0) if linear else 0.9 * size
    # rejection sampling of the centre on the eligible top area (falls back to the best candidate)
    best, best_d = (0.0, 0.0), -np.inf
    for _ in range(400):
        c = rng.uniform(-m.extent, m.extent, 2)
        d = float(m.top_distance(c[0], c[1], part.shape))
        if d > best_d:
            best, best_d = (float(c[0]), float(c[1])), d
        if d >= margin:
            break
    return DefectParams(
        kind=kind, center=best, size=size,
        depth=draw.get("depth", 0.0),
        width=draw.get("width", 0.0) * k, angle=float(rng.uniform(0.0, 180.0)),
        aspect=draw.get("aspect", 1.0), strength=draw.get("strength", 0.0),
        seed=int(rng.integers(0, 2 ** 31 - 1)),
    )


# =============================================================================== defect fields
@dataclass
class _DefectField:
    dh: np.ndarray      # height change (mm)
    cov: np.ndarray     # albedo change weight 0..1
    region: np.ndarray  # bool ground-truth region (before clipping to the part)


def _defect_shape(defect: DefectParams):
    """Deterministic shape details of a defect (crack path / scratch curve / outline wobble)."""
    r = _rng(defect.seed, 7)
    cu, cv = defect.center
    a = math.radians(defect.angle)
    if defect.kind == "crack":
        n = 7
        steps = np.full(n, defect.size / n)
        turn = np.cumsum(r.normal(0.0, 0.45, n))
        dirs = a + turn - turn.mean()
        pts = np.zeros((n + 1, 2))
        pts[1:, 0] = np.cumsum(steps * np.cos(dirs))
        pts[1:, 1] = np.cumsum(steps * np.sin(dirs))
        pts -= pts.mean(axis=0)
        return pts + np.array([cu, cv])
    if defect.kind == "scratch":
        bend = r.uniform(-0.15, 0.15) * defect.size
        t = np.linspace(0, 1, 25)[:, None]
        d = np.array([math.cos(a), math.sin(a)])
        nrm = np.array([-d[1], d[0]])
        p0 = -0.5 * defect.size * d
        p2 = 0.5 * defect.size * d
        p1 = bend * nrm
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2
        return pts + np.array([cu, cv])
    # round kinds: outline harmonics
    kk = np.arange(2, 6)
    amp = r.uniform(0.0, 0.12, kk.size) / np.sqrt(kk - 1) * (2.0 if defect.kind == "stain" else 1.0)
    ph = r.uniform(0, 2 * np.pi, kk.size)
    return kk, amp, ph


def _defect_field(defect: DefectParams, u: np.ndarray, v: np.ndarray, px_mm: float) -> _DefectField:
    """Height change, albedo weight and GT region of a defect, evaluated at local coordinates."""
    shape = u.shape
    dh = np.zeros(shape, np.float32)
    cov = np.zeros(shape, np.float32)
    region = np.zeros(shape, bool)
    kind = defect.kind
    linear = kind in ("scratch", "crack")
    reach = (0.5 * defect.size + defect.width + 1.0) if linear else (1.6 * defect.size * max(defect.aspect, 1.0) + 1.0)
    cu, cv = defect.center
    sel = (np.abs(u - cu) < reach) & (np.abs(v - cv) < reach)
    if not sel.any():
        return _DefectField(dh, cov, region)
    uu, vv = u[sel].astype(np.float32), v[sel].astype(np.float32)
    details = _defect_shape(defect)
    if linear:
        dist, pos = _polyline_distance(uu, vv, details)
        # never thinner than about a pixel, so the defect exists at any resolution
        hw = max(0.5 * defect.width, 0.55 * px_mm)
        taper = 0.35 + 0.65 * np.sqrt(np.clip(np.sin(np.pi * pos), 0.0, 1.0))
        hw_local = hw * taper
        if kind == "crack":
            wob = _waves(defect.seed, 5, (0.6, 2.0))(uu, vv)
            hw_local = hw_local * (1.0 + 0.25 * wob)
            depth = defect.depth * taper
            g = np.clip(1.0 - dist / np.maximum(hw_local, 1e-3), 0.0, 1.0)
            d_ = -depth * g ** 0.7
            c_ = _smoothstep(1.6, 1.0, dist / np.maximum(hw_local, 1e-3))     # dark, crumbly edges
            r_ = (g > 0) | (c_ > 0.5)
        else:
            d_ = np.zeros_like(uu)
            c_ = _smoothstep(1.3, 0.7, dist / np.maximum(hw_local, 1e-3))
            r_ = c_ > 0.5
    else:
        kk, amp, ph = details
        a = math.radians(defect.angle)
        du, dv = uu - cu, vv - cv
        pu = math.cos(a) * du + math.sin(a) * dv
        pv = -math.sin(a) * du + math.cos(a) * dv
        phi = np.arctan2(pv, pu)
        wob = np.ones_like(uu)
        for k_, a_, p_ in zip(kk, amp, ph):
            wob += a_ * np.cos(k_ * phi + p_)
        rn = np.hypot(pu, pv * defect.aspect) / (defect.size * wob)        # 1 on the outline
        if kind in ("dent", "bump"):
            prof = np.clip(1.0 - rn * rn, 0.0, 1.0) ** 2
            d_ = (-1.0 if kind == "dent" else 1.0) * defect.depth * prof
            c_ = np.zeros_like(uu)
            r_ = prof > _GT_GEOMETRY_FRACTION
        elif kind == "hole":
            wall = _smoothstep(1.0, 0.86, rn)
            d_ = -defect.depth * wall + 0.08 * np.exp(-((rn - 1.12) / 0.1) ** 2)   # cavity + small burr
            c_ = _smoothstep(1.12, 0.9, rn)
            r_ = rn < 1.05
        else:  # stain
            fine = _waves(defect.seed, 8, (0.5, 2.0))(uu, vv)
            edge = rn + 0.05 * fine
            blotch = 0.82 + 0.18 * _waves(defect.seed + 1, 6, (1.0, 4.0))(uu, vv)
            c_ = _smoothstep(1.0, 0.82, edge) * blotch
            d_ = np.zeros_like(uu)
            r_ = _smoothstep(1.0, 0.82, edge) > 0.5
    dh[sel], cov[sel], region[sel] = d_, c_, r_
    return _DefectField(dh, cov, region)


# =============================================================================== rendering
def _normals(a: np.ndarray, b: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Unit normals (towards the camera) of the organized surface ``(a z, b z, z)``."""
    x, y = a * z, b * z
    xi, xj = np.gradient(x)
    yi, yj = np.gradient(y)
    zi, zj = np.gradient(z)
    n = np.stack([yi * zj - zi * yj, zi * xj - xi * zj, xi * yj - yi * xj], axis=-1).astype(np.float32)
    return _unit(n)


def _unit(v: np.ndarray) -> np.ndarray:
    """Normalize the last axis (3-vectors)."""
    norm = np.sqrt(v[..., 0] ** 2 + v[..., 1] ** 2 + v[..., 2] ** 2)
    return v / np.maximum(norm, 1e-12)[..., None]


def _cast_shadow(h: np.ndarray, px_mm: float, azimuth_deg: float, elevation_deg: float,
                 softness_mm: float = 0.25) -> np.ndarray:
    """0..1 shadow of a height field lit from a direction (marching towards the light)."""
    hmax = float(h.max())
    out = np.zeros_like(h)
    if hmax <= 0:
        return out
    tan_el = math.tan(math.radians(elevation_deg))
    dx, dy = math.cos(math.radians(azimuth_deg)), math.sin(math.radians(azimuth_deg))
    reach = hmax / tan_el / px_mm                   # longest possible shadow (pixels)
    step = max(1.25, reach / 24.0)
    n = int(math.ceil(reach / step))
    for k in range(1, n + 1):
        s = k * step
        m = np.float32([[1, 0, s * dx], [0, 1, s * dy]])
        shifted = cv2.warpAffine(h, m, (h.shape[1], h.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REPLICATE)
        occ = (shifted - h - s * px_mm * tan_el) / softness_mm
        np.maximum(out, np.clip(occ, 0.0, 1.0), out=out)
    return out


def render_part(part: PartParams, defect: Optional[DefectParams] = None, size: int = 256) -> Rendered:
    """Render one sample (RGB, organized xyz, ground truth) of ``part`` with an optional ``defect``.

    The same ``part`` always gives the same sensor noise, texture and dropouts, so rendering it with
    and without a defect isolates the defect's effect.
    """
    m = _model(part.class_name)
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    f = size * _Z_NOMINAL / m.fov_mm
    px_mm = _Z_NOMINAL / f
    c = np.arange(size, dtype=np.float32) + 0.5 - size / 2.0
    a, b = np.meshgrid(c / f, c / f)  # ray slopes x/z (cols), y/z (rows)

    # ---- textures in the part frame
    grid = _TexGrid(m.extent, min(8.0, 1.5 / px_mm))
    tex = m.textures(_rng(part.seed, 1), part.shape, grid)
    tex["grid"] = grid

    # ---- geometry: intersect each ray with plane + height field (fixed point for parallax)
    gx, gy = part.plane_slope
    denom = (1.0 - gx * a - gy * b).astype(np.float32)
    z = part.plane_z / denom
    th = math.radians(part.angle)
    ct, st = math.cos(th), math.sin(th)
    field_ = None
    for _ in range(3):
        x = a * z - part.shift[0]
        y = b * z - part.shift[1]
        u = (ct * x + st * y) / part.scale
        v = (-st * x + ct * y) / part.scale
        h, d = m.surface(u, v, part.shape, tex)
        h, d = h * part.scale, d * part.scale
        if defect is not None:
            field_ = _defect_field(defect, u, v, px_mm)
            h = np.maximum(h + field_.dh * (d > 0), 0.0)
        z = (part.plane_z - h) / denom
    h = h.astype(np.float32)
    inside = _smoothstep(-0.5 * px_mm, 0.5 * px_mm, d)
    object_mask = d > 0

    # ---- shading geometry (with the shading-only micro bump)
    bump = grid.sample(tex["bump"], u, v) * inside
    n_geo = _normals(a, b, z)
    n_sh = _normals(a, b, (part.plane_z - h - bump) / denom)
    view = _unit(-np.stack([a, b, np.ones_like(a)], axis=-1))
    az, el = math.radians(part.light_azimuth), math.radians(part.light_elevation)
    light = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), -math.sin(el)], np.float32)
    half = _unit(view + light)
    shadow = _cast_shadow(h, px_mm, part.light_azimuth, part.light_elevation)
    shadow = cv2.GaussianBlur(shadow, (0, 0), 0.8)

    # ---- albedo: part texture over a textured plane, then the defect
    trng = _rng(part.seed, 2)
    bg_tex = 1.0 + 0.06 * _noise(trng, (size, size), 0.6) + 0.05 * _noise(trng, (size, size), size / 10.0)
    albedo = np.asarray(m.background, np.float32)[None, None] * bg_tex[..., None]
    obj_alb = grid.sample(tex["albedo"], u, v)
    albedo = albedo * (1.0 - inside[..., None]) + obj_alb * inside[..., None]
    gt = np.zeros((size, size), bool)
    if defect is not None and field_ is not None:
        w = (field_.cov * inside * defect.strength)[..., None]
        if defect.kind == "stain":
            target = np.asarray(m.stain_color, np.float32)[None, None] * (1.0 + 0.1 * (bg_tex[..., None] - 1.0))
        elif defect.kind == "scratch":
            target = np.asarray(m.scratch_color, np.float32)[None, None] * np.ones_like(albedo)
        else:  # cavities and fissures are dark
            target = albedo * 0.25
        albedo = albedo * (1.0 - w) + target * w
        gt = field_.region & object_mask

    ks = m.ks * inside + 0.02 * (1.0 - inside)
    shin = m.shininess * inside + 6.0 * (1.0 - inside)
    ndl = np.clip(n_sh @ light, 0.0, None)
    ndv = np.clip(np.einsum("ijk,ijk->ij", n_sh, view), 0.0, None)
    ndh = np.clip(np.einsum("ijk,ijk->ij", n_sh, half), 0.0, None)
    spec = ks * ndh ** shin * (ndl > 0)
    lit = 1.0 - 0.85 * shadow
    ambient = part.ambient * (0.7 + 0.3 * ndv)
    wb = np.asarray(part.white_balance, np.float32)[None, None]
    rad = albedo * (ambient + m.kd * part.light_intensity * ndl * lit)[..., None] \
        + (spec * part.light_intensity * lit)[..., None]
    rad = rad * wb
    r2 = (a * a + b * b) / float(a.max() ** 2 * 2)
    rad *= (1.0 - 0.12 * r2)[..., None]                      # vignetting
    img = np.clip(rad * 0.95, 0.0, 1.0) ** (1.0 / 2.2)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.55)
    srng = _rng(part.seed, 3)
    img = img + srng.standard_normal(img.shape, dtype=np.float32) * (0.005 + 0.012 * np.sqrt(img))
    rgb = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)

    # ---- depth sensor: noise along the ray and missing points
    nrng = _rng(part.seed, 4)
    noise = part.depth_noise * (0.85 * nrng.standard_normal((size, size), dtype=np.float32)
                                + 0.5 * _noise(nrng, (size, size), 2.0))
    zn = (z + noise).astype(np.float32)
    missing = np.einsum("ijk,ijk->ij", n_geo, view) < _STEEP_COS
    proj = _cast_shadow(h, px_mm, _PROJECTOR_AZIMUTH, _PROJECTOR_ELEVATION, softness_mm=0.05)
    missing |= cv2.dilate((proj > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if m.spec_dropout is not None:
        missing |= (np.einsum("ijk,ijk->ij", n_geo, half) > m.spec_dropout) & object_mask
    drng = _rng(part.seed, 5)
    missing |= drng.random((size, size), dtype=np.float32) < m.dropout_rate
    blobs = np.zeros((size, size), np.uint8)
    for _ in range(int(drng.poisson(2.0))):
        cx, cy = drng.uniform(0, size, 2)
        ax_ = max(1.0, drng.uniform(0.4, 1.4) / px_mm)
        cv2.ellipse(blobs, (int(cx), int(cy)), (int(round(ax_)), int(round(ax_ * drng.uniform(0.5, 1.0)))),
                    float(drng.uniform(0, 180)), 0, 360, 1, -1)
    missing |= blobs.astype(bool)
    xyz = np.stack([a * zn, b * zn, zn], axis=-1).astype(np.float32)
    xyz[missing] = 0.0
    return Rendered(rgb=rgb, xyz=xyz, gt=gt, object_mask=object_mask, height=h)


# =============================================================================== dataset writer
def _normalize_args(classes: Optional[Sequence[str]] = None, n_train: int = 20, n_val: int = 4,
                    n_test_good: int = 8, n_per_defect: int = 4, size: int = 256, seed: int = 0) -> dict:
    if classes is None:
        classes = list(DEMO_CLASSES)
    elif isinstance(classes, str):
        classes = [classes]
    classes = list(dict.fromkeys(str(c) for c in classes))
    for c in classes:
        _model(c)
    if not classes:
        raise ValueError("at least one demo class is needed")
    counts = dict(n_train=n_train, n_val=n_val, n_test_good=n_test_good, n_per_defect=n_per_defect)
    for k, val in counts.items():
        if int(val) != val or val < 0:
            raise ValueError(f"{k} must be a non-negative integer, got {val!r}")
        if val > 999:
            raise ValueError(f"{k} must be at most 999 (ids have 3 digits), got {val!r}")
    if int(size) != size or not 32 <= size <= 4096:
        raise ValueError(f"size must be an integer between 32 and 4096, got {size!r}")
    return dict(classes=classes, **{k: int(v) for k, v in counts.items()}, size=int(size), seed=int(seed))


def _plan(args: dict) -> Iterator[tuple[str, str, str, int]]:
    """(class, split, label, index) of every sample, in generation order."""
    for cname in args["classes"]:
        for split, label, n in (("train", GOOD, args["n_train"]), ("validation", GOOD, args["n_val"]),
                                ("test", GOOD, args["n_test_good"])):
            for i in range(n):
                yield cname, split, label, i
        for kind in DEFECT_KINDS:
            for i in range(args["n_per_defect"]):
                yield cname, "test", kind, i


def _sample_rng(seed: int, cname: str, split: str, label: str, i: int) -> np.random.Generator:
    # keys by *name* position in the fixed tuples, so a subset of classes gives the same files
    return _rng(seed, DEMO_CLASSES.index(cname), _SPLITS.index(split), _LABELS.index(label), i)


def _write_png(path: Path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise InputError(path, "could not write the image (is the folder writable?)")


def _render_and_write(root: Path, args: dict, cname: str, split: str, label: str, i: int) -> dict:
    rng = _sample_rng(args["seed"], cname, split, label, i)
    part = sample_part(cname, rng)
    defect = sample_defect(part, label, rng) if label != GOOD else None
    r = render_part(part, defect, args["size"])
    sid = f"{i:03d}"
    folder = root / cname / split / label
    files = {"rgb": f"{cname}/{split}/{label}/rgb/{sid}.png", "xyz": f"{cname}/{split}/{label}/xyz/{sid}.tiff"}
    if split == "test":
        files["gt"] = f"{cname}/{split}/{label}/gt/{sid}.png"
    for role in files:
        (folder / role).mkdir(parents=True, exist_ok=True)
    _write_png(root / files["rgb"], np.ascontiguousarray(r.rgb[..., ::-1]))
    tifffile.imwrite(root / files["xyz"], r.xyz, photometric="rgb")
    if "gt" in files:
        _write_png(root / files["gt"], r.gt.astype(np.uint8) * 255)
    obj = int(r.object_mask.sum())
    entry = {"class": cname, "split": split, "label": label, "id": sid, "files": files,
             "part": part.to_dict(), "object_pixels": obj}
    if defect is not None:
        entry["defect"] = defect.to_dict()
        entry["defect_pixels"] = int(r.gt.sum())
        entry["defect_area_fraction"] = round(int(r.gt.sum()) / max(obj, 1), 5)
    return entry


def _read_manifest(root: Path) -> Optional[dict]:
    try:
        with open(Path(root) / MANIFEST, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == _FORMAT else None


def _is_complete(root: Path, args: Optional[dict] = None) -> bool:
    """True if ``root`` holds a finished demo of this version (with ``args`` if given)."""
    man = _read_manifest(root)
    if man is None or man.get("version") != DEMO_VERSION:
        return False
    if args is not None and man.get("args") != args:
        return False
    try:
        return all((Path(root) / p).is_file() for s in man["samples"] for p in s["files"].values())
    except (KeyError, TypeError, AttributeError):
        return False


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def generate_demo(out_dir: str | Path, classes: Optional[Sequence[str]] = None, n_train: int = 20,
                  n_val: int = 4, n_test_good: int = 8, n_per_defect: int = 4, size: int = 256,
                  seed: int = 0, progress: Optional[ProgressFn] = None) -> Path:
    """Write the demo dataset to ``out_dir`` (MVTec 3D-AD layout) and return its path.

    ``<out_dir>/<class>/{train,validation,test}/<label>/{rgb,xyz,gt}/NNN.{png,tiff,png}`` plus
    ``demo.json`` (version, arguments, classes, defect kinds and every sample's parameters).
    Folders with a count of 0 are not created.  The tree is built in a hidden sibling folder and
    renamed into place, so ``out_dir`` is either absent, the previous demo, or complete.  An existing
    ``out_dir`` is replaced only if it is empty or a demo dataset.

    ``progress(fraction, message)`` is called after each sample.
    """
    args = _normalize_args(classes, n_train, n_val, n_test_good, n_per_defect, size, seed)
    out = Path(out_dir).expanduser().absolute()
    if out.exists():
        if not out.is_dir():
            raise InputError(out, "exists and is not a folder; not overwriting it with the demo dataset")
        if any(out.iterdir()) and _read_manifest(out) is None:
            raise InputError(out, "exists, is not empty and is not a demo dataset; not overwriting it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out.parent, f"cannot create the folder ({e.strerror or e})") from None
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    plan = list(_plan(args))
    try:
        tmp.mkdir()
        samples = []
        for k, (cname, split, label, i) in enumerate(plan):
            samples.append(_render_and_write(tmp, args, cname, split, label, i))
            if progress is not None:
                progress((k + 1) / len(plan), f"demo: {cname}/{split}/{label}/{i:03d}")
        manifest = {
            "format": _FORMAT, "version": DEMO_VERSION, "args": args, "classes": args["classes"],
            "defect_kinds": list(DEFECT_KINDS),
            "defect_groups": {"geometry": list(GEOMETRY_DEFECTS), "texture": list(TEXTURE_DEFECTS),
                              "both": list(MIXED_DEFECTS)},
            "class_descriptions": {c: _MODELS[c].description for c in args["classes"]},
            "units": "mm; xyz missing points are stored as (0, 0, 0)",
            "samples": samples,
        }
        with open(tmp / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(_jsonable(manifest), fh, indent=1, sort_keys=True)
            fh.write("\n")
        _install(tmp, out, args)
    except OSError as e:
        _remove(tmp)
        raise InputError(getattr(e, "filename", None) or out, f"could not write the demo dataset ({e.strerror or e})") from None
    except BaseException:
        _remove(tmp)
        raise
    return out


def _install(tmp: Path, out: Path, args: dict) -> None:
    """Rename the finished ``tmp`` tree to ``out``, tolerating a concurrent writer."""
    for _ in range(3):
        try:
            os.rename(tmp, out)
            return
        except OSError:
            if not out.exists():
                raise
        if _is_complete(out, args):       # another process finished the same demo first
            _remove(tmp)
            return
        old = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            else:
                os.rename(out, old)
        except OSError:
            continue                      # raced with another process: look again
        try:
            os.rename(tmp, out)
            return
        except OSError:
            continue
        finally:
            _remove(old)
    raise OSError(f"could not move the generated demo into place at {out}")


# =============================================================================== cache
def default_cache_dir() -> Path:
    """The application cache: ``$MMAD_CACHE`` if set, else ``~/.cache/mmad-inspector``."""
    env = os.environ.get("MMAD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmad-inspector"


@contextlib.contextmanager
def _file_lock(path: Path):
    """An advisory inter-process lock (POSIX flock / Windows msvcrt); no-op where unavailable."""
    fh = open(path, "a+b")
    locked = None
    try:
        try:
            import fcntl
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            locked = "fcntl"
        except ImportError:
            try:
                import msvcrt
                while True:
                    try:
                        msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
                        locked = "msvcrt"
                        break
                    except OSError:
                        time.sleep(0.5)
            except ImportError:
                pass
        yield
    finally:
        try:
            if locked == "fcntl":
                import fcntl
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            elif locked == "msvcrt":
                import msvcrt
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        finally:
            fh.close()


def ensure_demo(root: str | Path | None = None, progress: Optional[ProgressFn] = None, **kw) -> Path:
    """Return ``<root>/demo-v<DEMO_VERSION>``, generating it only if missing, incomplete or made
    with other arguments (``kw`` are :func:`generate_demo`'s).  ``root`` defaults to
    :func:`default_cache_dir`.  Safe when several processes call it at once (a lock file serialises
    generation; a finished tree is never rewritten)."""
    base = Path(root).expanduser() if root is not None else default_cache_dir()
    target = base / f"demo-v{DEMO_VERSION}"
    args = _normalize_args(**kw)
    if _is_complete(target, args):
        return target
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(base, f"cannot create the cache folder ({e.strerror or e})") from None
    with _file_lock(base / f".demo-v{DEMO_VERSION}.lock"):
        if _is_complete(target, args):    # generated by another process while we waited
            return target
        return generate_demo(target, progress=progress, **kw)


# =============================================================================== CLI
def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.demo", description="Generate the MMAD Inspector demo dataset.")
    p.add_argument("out", type=Path, help="output folder (the dataset root)")
    p.add_argument("--classes", nargs="+", default=None, choices=DEMO_CLASSES, help="part classes (default: all)")
    p.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    p.add_argument("--n-train", type=int, default=20, help="good training parts per class (default 20)")
    p.add_argument("--n-val", type=int, default=4, help="good validation parts per class (default 4)")
    p.add_argument("--n-test-good", type=int, default=8, help="good test parts per class (default 8)")
    p.add_argument("--n-per-defect", type=int, default=4, help="test parts per defect kind and class (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    ns = p.parse_args(argv)

    def report(frac: float, msg: str) -> None:
        if not ns.quiet:
            print(f"\r[{frac * 100:5.1f}%] {msg:<48}", end="", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    try:
        out = generate_demo(ns.out, ns.classes, ns.n_train, ns.n_val, ns.n_test_good, ns.n_per_defect,
                            ns.size, ns.seed, progress=report)
    except (InputError, ValueError) as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    n = len(_read_manifest(out)["samples"])
    if not ns.quiet:
        print(file=sys.stderr)
    print(f"wrote {n} samples to {out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
