"""Defect parameters (:func:`sample_defect`) and the defect fields the renderer applies."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..io.json_files import to_jsonable
from ._common import DEFECT_KINDS, GT_GEOMETRY_FRACTION, make_rng, polyline_distance, random_waves, smoothstep
from .parts import PartParams, part_model



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
        return to_jsonable(dataclasses.asdict(self))

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
    m = part_model(part.class_name)
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
    r = make_rng(defect.seed, 7)
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


def defect_field(defect: DefectParams, u: np.ndarray, v: np.ndarray, px_mm: float) -> _DefectField:
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
        dist, pos = polyline_distance(uu, vv, details)
        # never thinner than about a pixel, so the defect exists at any resolution
        hw = max(0.5 * defect.width, 0.55 * px_mm)
        taper = 0.35 + 0.65 * np.sqrt(np.clip(np.sin(np.pi * pos), 0.0, 1.0))
        hw_local = hw * taper
        if kind == "crack":
            wob = random_waves(defect.seed, 5, (0.6, 2.0))(uu, vv)
            hw_local = hw_local * (1.0 + 0.25 * wob)
            depth = defect.depth * taper
            g = np.clip(1.0 - dist / np.maximum(hw_local, 1e-3), 0.0, 1.0)
            d_ = -depth * g ** 0.7
            c_ = smoothstep(1.6, 1.0, dist / np.maximum(hw_local, 1e-3))     # dark, crumbly edges
            r_ = (g > 0) | (c_ > 0.5)
        else:
            d_ = np.zeros_like(uu)
            c_ = smoothstep(1.3, 0.7, dist / np.maximum(hw_local, 1e-3))
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
            r_ = prof > GT_GEOMETRY_FRACTION
        elif kind == "hole":
            wall = smoothstep(1.0, 0.86, rn)
            d_ = -defect.depth * wall + 0.08 * np.exp(-((rn - 1.12) / 0.1) ** 2)   # cavity + small burr
            c_ = smoothstep(1.12, 0.9, rn)
            r_ = rn < 1.05
        else:  # stain
            fine = random_waves(defect.seed, 8, (0.5, 2.0))(uu, vv)
            edge = rn + 0.05 * fine
            blotch = 0.82 + 0.18 * random_waves(defect.seed + 1, 6, (1.0, 4.0))(uu, vv)
            c_ = smoothstep(1.0, 0.82, edge) * blotch
            d_ = np.zeros_like(uu)
            r_ = smoothstep(1.0, 0.82, edge) > 0.5
    dh[sel], cov[sel], region[sel] = d_, c_, r_
    return _DefectField(dh, cov, region)


