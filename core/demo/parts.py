"""Part models of the demo (shape height fields, materials, textures) and :func:`sample_part`."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..io.json_files import to_jsonable
from ._common import DEMO_CLASSES, Z_NOMINAL, TexGrid, smoothstep

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

    def textures(self, rng: np.random.Generator, shape: dict, grid: TexGrid) -> dict:
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
        rim = 1.0 - 0.32 * smoothstep(s["radius"] - 6.0, s["radius"], r)      # browner rim
        shade = rim * (1.0 + 0.07 * low + 0.04 * mid)
        dark = smoothstep(1.5, 2.4, spk)                                     # dark crumbs
        light = smoothstep(2.1, 2.9, sug)                                    # sugar grains
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
        h = (s["thickness"] - bev * np.clip(1.0 - d / bev, 0.0, 1.0)) * smoothstep(-0.05, 0.05, d)
        return h.astype(np.float32), d.astype(np.float32)

    def top_distance(self, u, v, s):
        return self._sdf(np.asarray(u, np.float32), np.asarray(v, np.float32), s) - s["bevel"] - 0.5

    def textures(self, rng, s, g):
        brushed = g.noise(rng, (5.0, 0.03)) * 0.65 + g.noise(rng, (1.2, 0.06)) * 0.35
        low = g.noise(rng, 5.0)
        base = np.array([0.27, 0.28, 0.29], np.float32) * s["shade"]
        d = self._sdf(g.u, g.v, s)
        chamfer = 1.0 + 0.12 * smoothstep(s["bevel"], 0.6 * s["bevel"], d)  # freshly cut, brighter
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
        h = h * smoothstep(-0.05, 0.05, d)
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
        h = h * smoothstep(-0.05, 0.05, d)
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


PART_MODELS: dict[str, _PartModel] = {m.name: m for m in (_Cookie(), _Bracket(), _Tube(), _Gasket())}
assert tuple(PART_MODELS) == DEMO_CLASSES


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
        return to_jsonable(dataclasses.asdict(self))

def part_model(class_name: str) -> _PartModel:
    try:
        return PART_MODELS[class_name]
    except KeyError:
        raise ValueError(f"unknown demo class {class_name!r}; choose from {', '.join(DEMO_CLASSES)}") from None


def sample_part(class_name: str, rng: np.random.Generator | int) -> PartParams:
    """Draw a good part of ``class_name`` (pose, size, shape, lighting, plane, noise)."""
    m = part_model(class_name)
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
        plane_z=float(Z_NOMINAL + rng.uniform(-3.0, 3.0)),
        plane_slope=(float(math.tan(tilt) * math.cos(tilt_dir)), float(math.tan(tilt) * math.sin(tilt_dir))),
        light_azimuth=float(m.light_azimuth + rng.uniform(-25.0, 25.0)),
        light_elevation=float(rng.uniform(50.0, 68.0)),
        light_intensity=float(rng.uniform(0.8, 1.2)),
        ambient=float(rng.uniform(0.50, 0.62)),
        white_balance=(float(wb[0]), float(wb[1]), float(wb[2])),
        depth_noise=float(rng.uniform(*m.depth_noise)),
    )


