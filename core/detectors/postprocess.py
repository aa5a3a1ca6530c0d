"""Post-processing shared by every detector: the one smoothing unit, smoothing of a fused map, the
image score, per-point sampling, and the declarations of the parameters they read.

**Smoothing unit.** ``sigma_pct`` is the Gaussian sigma in percent of the image's longer side.
Every detector resamples the image to a square of its own working resolution (memory-bank's
``working_size``, the trained detectors' feature grid, the CLIP input size) and the samples of a
dataset come at their own resolution, so a sigma in any of those pixels means a different blur per
detector and per dataset; a fraction of the image side is the one length they all share (as
memory-bank's ``position_radius``).  Percent keeps the slider's values readable (1.5, not 0.015).
A map is smoothed with ``sigma_pct / 100 * max(map height, width)`` of its own pixels, so the
sample-grid map and the patch-grid calibration maps of one image get the same blur.

**Fused map -> result** (:func:`finish`): NaN-aware smoothing that fills undefined pixels from
their defined neighbourhood (:func:`smooth_fill`), the image score from the smoothed values at the
pixels the fused map defines (:func:`core.fusion.image_score`: the max, or the mean of a top
fraction), and the per-point scores of an organized cloud sampled from the map
(:func:`sample_points`).  The decision threshold stays the detector's (it may be calibrated).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np

from ..fusion import gaussian_blur, image_score, nan_gaussian
from .base import STAGE_FUSION, Param

__all__ = ["Finished", "component_score", "finish", "image_top_fraction_param", "rgb_weight_param",
           "sample_points", "sigma_param", "sigma_px", "smooth_fill", "smooth_maps"]

SIGMA_MAX = 25.0       # % of the image side: wider blurs erase any defect a detector can localise


# ---------------------------------------------------------------------------------- parameters
def sigma_param(default: float, stage: str = STAGE_FUSION, what: str = "the fused anomaly map") -> Param:
    """``sigma_pct``: the Gaussian smoothing of ``what``, in % of the image's longer side."""
    return Param("sigma_pct", float(default), "float", "smoothing sigma (% of side)", 0.0, SIGMA_MAX, 0.25,
                 stage=stage,
                 help=f"Gaussian smoothing of {what}: sigma in percent of the image's longer side "
                      f"(0: none; e.g. 1.5 on an 800 px image is 12 px)")


def rgb_weight_param(how: str, step: float = 0.05) -> Param:
    """``rgb_weight``: the weight of the RGB map against the 3D map, which gets ``1 - rgb_weight``;
    ``how`` says how the detector combines them."""
    return Param("rgb_weight", 0.5, "float", "RGB weight", 0.0, 1.0, step, stage=STAGE_FUSION,
                 help="weight of the RGB map against the 3D map, which gets 1 - rgb_weight "
                      f"(1: RGB only, 0: 3D only): {how}")


def image_top_fraction_param() -> Param:
    return Param("image_top_fraction", 0.0, "float", min=0.0, max=0.5, step=0.001, stage=STAGE_FUSION,
                 help="image score = mean of this top fraction of the smoothed map (0: its maximum)")


# ---------------------------------------------------------------------------------- smoothing
def sigma_px(sigma_pct: float, shape: Optional[Sequence[int]]) -> float:
    """``sigma_pct`` (% of the longer side) in pixels of a map of ``shape`` (0 without a shape)."""
    if not shape:
        return 0.0
    return float(sigma_pct) / 100.0 * float(max(shape[0], shape[1]))


def smooth_fill(m: np.ndarray, sigma_pct: float) -> np.ndarray:
    """NaN-aware Gaussian smoothing (normalized convolution) that also fills undefined pixels from
    their defined neighbourhood; pixels with no defined neighbour within ~3 sigma get the smallest
    defined value (the least anomalous: "no evidence"); a map with no defined pixel gives zeros."""
    m = np.asarray(m, np.float32)
    if not np.isfinite(m).any():
        return np.zeros_like(m)
    out = nan_gaussian(m, sigma_px(sigma_pct, m.shape), fill_holes=True, min_weight=1e-3)
    rest = ~np.isfinite(out)
    if rest.any():
        out[rest] = float(np.nanmin(m))
    return out


def smooth_maps(maps: np.ndarray, sigma_pct: float) -> np.ndarray:
    """Gaussian smoothing of each finite map of a (B, H, W) stack (reflect border)."""
    maps = np.asarray(maps, np.float32)
    if sigma_pct <= 0:
        return maps
    return np.stack([gaussian_blur(m, sigma_px(sigma_pct, m.shape)) for m in maps])


def component_score(m: np.ndarray, sigma_pct: float) -> float:
    """A component map's image score: the max of the map smoothed (NaN-aware) with ``sigma_pct``."""
    return image_score(nan_gaussian(m, sigma_px(sigma_pct, np.shape(m))))


# ---------------------------------------------------------------------------------- fused map -> result
def sample_points(pixel_map: Optional[np.ndarray], valid: Optional[np.ndarray],
                  interpolation: int = cv2.INTER_NEAREST) -> Optional[np.ndarray]:
    """Per-point scores of an organized cloud (row-major order of its valid pixels, as
    :meth:`core.sample.Sample.valid_points`) from a pixel map resized to the cloud's grid
    (undefined pixels read as 0).  None without a map or without a valid mask."""
    if pixel_map is None or valid is None:
        return None
    m = np.nan_to_num(np.asarray(pixel_map, np.float32), nan=0.0)
    if m.shape != valid.shape:
        m = cv2.resize(m, (valid.shape[1], valid.shape[0]), interpolation=interpolation)
    return m[valid].astype(np.float32)


@dataclass
class Finished:
    pixel_map: np.ndarray          # smoothed, every pixel defined
    point_scores: Optional[np.ndarray]
    image_score: float


def finish(fused: np.ndarray, sigma_pct: float, top_fraction: float, valid: Optional[np.ndarray]) -> Finished:
    """A fused map -> smoothed and filled pixel map, image score (of the pixels ``fused``
    defines), per-point scores (nearest pixel of the organized grid ``valid``)."""
    defined = np.isfinite(fused)
    pixel = smooth_fill(fused, sigma_pct).astype(np.float32)
    score = image_score(np.where(defined, pixel, np.nan), top_fraction)
    return Finished(pixel, sample_points(pixel, valid), float(score))
