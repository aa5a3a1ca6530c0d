"""Rendering of one demo sample: RGB, organized xyz and ground truth (:func:`render_part`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ._common import (PROJECTOR_AZIMUTH, PROJECTOR_ELEVATION, STEEP_COS, Z_NOMINAL, TexGrid, make_rng, smoothstep,
                      value_noise)
from .defects import DefectParams, defect_field
from .parts import PartParams, part_model



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
    m = part_model(part.class_name)
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    f = size * Z_NOMINAL / m.fov_mm
    px_mm = Z_NOMINAL / f
    c = np.arange(size, dtype=np.float32) + 0.5 - size / 2.0
    a, b = np.meshgrid(c / f, c / f)  # ray slopes x/z (cols), y/z (rows)

    # ---- textures in the part frame
    grid = TexGrid(m.extent, min(8.0, 1.5 / px_mm))
    tex = m.textures(make_rng(part.seed, 1), part.shape, grid)
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
            field_ = defect_field(defect, u, v, px_mm)
            h = np.maximum(h + field_.dh * (d > 0), 0.0)
        z = (part.plane_z - h) / denom
    h = h.astype(np.float32)
    inside = smoothstep(-0.5 * px_mm, 0.5 * px_mm, d)
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
    trng = make_rng(part.seed, 2)
    bg_tex = 1.0 + 0.06 * value_noise(trng, (size, size), 0.6) + 0.05 * value_noise(trng, (size, size), size / 10.0)
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
    srng = make_rng(part.seed, 3)
    img = img + srng.standard_normal(img.shape, dtype=np.float32) * (0.005 + 0.012 * np.sqrt(img))
    rgb = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)

    # ---- depth sensor: noise along the ray and missing points
    nrng = make_rng(part.seed, 4)
    noise = part.depth_noise * (0.85 * nrng.standard_normal((size, size), dtype=np.float32)
                                + 0.5 * value_noise(nrng, (size, size), 2.0))
    zn = (z + noise).astype(np.float32)
    missing = np.einsum("ijk,ijk->ij", n_geo, view) < STEEP_COS
    proj = _cast_shadow(h, px_mm, PROJECTOR_AZIMUTH, PROJECTOR_ELEVATION, softness_mm=0.05)
    missing |= cv2.dilate((proj > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if m.spec_dropout is not None:
        missing |= (np.einsum("ijk,ijk->ij", n_geo, half) > m.spec_dropout) & object_mask
    drng = make_rng(part.seed, 5)
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


