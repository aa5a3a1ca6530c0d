"""RGB and 3D features on one common patch grid, with a validity mask (as CFM / M3DM align them).

* **RGB**: the weight-free patch descriptors of :func:`core.features.rgb.rgb_descriptors`
  (colour + differential texture, pooled over three windows) on a ``gh x gw`` patch grid of the
  image resized to ``working_size`` (``gh = ceil(working_size / stride)``);
* **3D**: FPFH + local shape (:func:`core.features.geometry.geometry_descriptors`)
  of the voxel-downsampled object points (the background plane removed).  Each pixel of the
  organized cloud takes the descriptor of its voxel; the pixels are then *area-averaged* onto the
  same patch grid (a patch is the mean descriptor of the object pixels that fall in it).  A patch
  is **valid** when at least ``min_coverage`` of its pixels hold an object point.

The working voxel of a sample comes from its own point spacing (``target_points`` working voxels
per object), so nothing depends on the unit of the coordinates.  Organized clouds only: an
unorganized cloud has no pixel grid to align with (:class:`~core.errors.InputError`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

import cv2
import numpy as np
from scipy import sparse

from ..errors import InputError
from ..preprocess import point_spacing, remove_background_plane, voxel_downsample
from ..sample import Sample
from .geometry import geometry_descriptors
from .rgb import rgb_descriptors

#: bumped whenever what the features mean changes: a checkpoint trained on other features is refused
FEATURE_VERSION = "grid-handcrafted/2"   # 2: the real-parts RGB descriptors of memory-bank v2
D_RGB = 123  # memory-bank RGB descriptors (HOG/Hessian on normalised lightness + Lab), see test_trained
D_GEO = 37   # 33 FPFH + 2 x (surface variation, signed height)


@dataclass(frozen=True)
class FeatureConfig:
    working_size: int = 256
    stride: int = 8
    target_points: int = 3000
    normal_radius_factor: float = 5.0
    fpfh_radius_factor: float = 12.0
    min_coverage: float = 0.5
    remove_background: bool = True
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"version": FEATURE_VERSION, "d_rgb": D_RGB, "d_geo": D_GEO, **asdict(self)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "FeatureConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    @property
    def grid(self) -> tuple[int, int]:
        n = int(math.ceil(self.working_size / self.stride))
        return n, n


@dataclass
class GridFeatures:
    """One sample's features on the common ``grid`` (row-major, G = gh * gw locations).

    rgb:   G x D_RGB float32, or None without an image
    geo:   G x D_GEO float32 (0 where not valid), or None without an organized cloud
    valid: G bool, patches with a 3D descriptor (None without a cloud)
    """
    grid: tuple[int, int]
    rgb: Optional[np.ndarray] = None
    geo: Optional[np.ndarray] = None
    valid: Optional[np.ndarray] = None
    geometry_note: str = ""

    @property
    def n(self) -> int:
        return self.grid[0] * self.grid[1]


def _rgb_features(sample: Sample, cfg: FeatureConfig) -> np.ndarray:
    d, g, _ = rgb_descriptors(sample.rgb, size=cfg.working_size, stride=cfg.stride)
    if tuple(g) != cfg.grid:   # pragma: no cover - guarded by FeatureConfig.grid
        raise RuntimeError(f"RGB grid {g} != {cfg.grid}")
    return d


def _geo_features(sample: Sample, cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """(G x D_GEO pooled descriptors, G bool valid) of an organized cloud."""
    src = sample.paths.get("points") or sample.key
    h, w = sample.points.shape[:2]
    valid = sample.valid_mask()
    obj = valid
    if cfg.remove_background:
        try:
            _, plane, o = remove_background_plane(sample.points, seed=cfg.seed)
        except ValueError as e:
            raise InputError(src, f"cannot prepare the point cloud: {e}") from None
        if plane is not None:
            obj = o & valid
    rows, cols = np.nonzero(obj)
    pts = sample.points[rows, cols].astype(np.float64)
    if len(pts) < 20:
        raise InputError(src, f"the point cloud has too few object points ({len(pts)}) to describe")
    voxel = point_spacing(pts, seed=cfg.seed) * max(1.0, math.sqrt(len(pts) / cfg.target_points))
    work, owner = voxel_downsample(pts, voxel)
    if len(work) < 5:
        raise InputError(src, f"the point cloud has too few working points ({len(work)}) to describe")
    desc, _ = geometry_descriptors(work, voxel, cfg.normal_radius_factor, cfg.fpfh_radius_factor, orient="auto")
    gh, gw = cfg.grid
    cell = (rows * gh // h) * gw + (cols * gw // w)
    # sum of the pixels' (= their voxels') descriptors per cell: a sparse cell x voxel count matrix
    a = sparse.coo_matrix((np.ones(len(cell)), (cell, owner)), shape=(gh * gw, len(work))).tocsr()
    sums = np.asarray(a @ desc.astype(np.float64))
    count = np.bincount(cell, minlength=gh * gw).astype(np.float64)
    total = np.bincount((np.arange(h)[:, None] * gh // h * gw + np.arange(w)[None, :] * gw // w).ravel(),
                        minlength=gh * gw).astype(np.float64)
    ok = count >= cfg.min_coverage * np.maximum(total, 1)
    feats = np.where(ok[:, None], sums / np.maximum(count, 1)[:, None], 0.0).astype(np.float32)
    return feats, ok


def grid_features(sample: Sample, cfg: FeatureConfig = FeatureConfig(), use_rgb: bool = True,
                  use_geo: bool = True) -> GridFeatures:
    """The sample's RGB and 3D features on the common grid of ``cfg``."""
    src = sample.paths.get("rgb") or sample.paths.get("points") or sample.key
    out = GridFeatures(grid=cfg.grid)
    if use_rgb and sample.has_rgb:
        out.rgb = _rgb_features(sample, cfg)
    if use_geo and sample.has_points:
        if not sample.organized:
            out.geometry_note = "the point cloud is not organized (no pixel grid to align it with): 3D unused"
        else:
            try:
                out.geo, out.valid = _geo_features(sample, cfg)
            except InputError as e:
                if out.rgb is None:
                    raise
                out.geometry_note = e.problem
    if out.rgb is None and out.geo is None:
        raise InputError(src, "the sample has neither an RGB image nor an organized point cloud to describe"
                         + (f" ({out.geometry_note})" if out.geometry_note else ""))
    return out


def upsample_map(values: np.ndarray, grid: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """A G-vector of per-patch values (NaN = undefined) -> H x W float32 map (bilinear, NaN-aware:
    a pixel is undefined where its nearest patch is)."""
    v = np.asarray(values, np.float32).reshape(grid)
    ok = np.isfinite(v)
    num = cv2.resize(np.where(ok, v, 0).astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    den = cv2.resize(ok.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    near = cv2.resize(ok.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
    return np.where(near & (den > 1e-6), num / np.maximum(den, 1e-6), np.nan).astype(np.float32)
