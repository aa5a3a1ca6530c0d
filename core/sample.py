"""The multimodal sample: RGB image + point cloud + optional ground truth.

Conventions
-----------
* ``rgb``: H x W x 3 uint8, or None for 3D-only samples.
* ``points``: either an *organized* cloud H x W x 3 float32 (one point per pixel, as MVTec 3D-AD
  stores it; missing points are NaN here, the loaders turn the on-disk zeros into NaN), or an
  *unorganized* cloud N x 3 float32 (no missing points). None for RGB-only samples.
* ``point_colors``: N x 3 uint8 for unorganized clouds that carry colour, else None.
* ``gt_mask``: H x W bool pixel ground truth (at the RGB / organized grid resolution), or None.
* ``point_labels``: N bool per-point ground truth for unorganized clouds, or None.  For organized
  clouds the per-point labels are derived from ``gt_mask`` (see :meth:`Sample.point_gt`).

Per-point quantities of an organized cloud are ordered as its *valid* pixels in row-major order:
``sample.valid_points()`` returns them and ``sample.valid_index()`` their flat pixel indices.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

GOOD = "good"


@dataclass
class Sample:
    id: str
    class_name: str = ""
    label: str = GOOD
    split: str = "test"
    rgb: Optional[np.ndarray] = None
    points: Optional[np.ndarray] = None
    point_colors: Optional[np.ndarray] = None
    gt_mask: Optional[np.ndarray] = None
    point_labels: Optional[np.ndarray] = None
    paths: dict[str, Path] = field(default_factory=dict)

    # ------------------------------------------------------------------ basic properties
    @property
    def key(self) -> str:
        """A dataset-unique name: class/split/label/id."""
        return "/".join(p for p in (self.class_name, self.split, self.label, self.id) if p)

    @property
    def has_rgb(self) -> bool:
        return self.rgb is not None

    @property
    def has_points(self) -> bool:
        return self.points is not None

    @property
    def organized(self) -> bool:
        return self.points is not None and self.points.ndim == 3

    @property
    def is_anomalous(self) -> bool:
        return self.label != GOOD

    @property
    def grid_shape(self) -> Optional[tuple[int, int]]:
        """(H, W) of the pixel grid: the RGB image, else the organized cloud, else None."""
        if self.rgb is not None:
            return tuple(self.rgb.shape[:2])  # type: ignore[return-value]
        if self.organized:
            return tuple(self.points.shape[:2])  # type: ignore[return-value,union-attr]
        return None

    def valid_mask(self) -> Optional[np.ndarray]:
        """H x W bool of pixels that hold a 3D point (organized clouds only)."""
        if not self.organized:
            return None
        return np.isfinite(self.points).all(axis=-1)

    def valid_index(self) -> np.ndarray:
        """Flat pixel indices of the valid points of an organized cloud (row-major)."""
        vm = self.valid_mask()
        if vm is None:
            raise ValueError("valid_index() needs an organized cloud")
        return np.flatnonzero(vm.ravel())

    def valid_points(self) -> np.ndarray:
        """N x 3 float32 of the points that exist (organized: valid pixels in row-major order)."""
        if self.points is None:
            return np.zeros((0, 3), np.float32)
        if self.organized:
            return self.points.reshape(-1, 3)[self.valid_index()].astype(np.float32, copy=False)
        return self.points.astype(np.float32, copy=False)

    @property
    def n_points(self) -> int:
        if self.points is None:
            return 0
        if self.organized:
            return int(self.valid_mask().sum())
        return int(self.points.shape[0])

    def valid_colors(self) -> Optional[np.ndarray]:
        """N x 3 uint8 colours of the valid points: from RGB for organized clouds, else point_colors."""
        if self.organized and self.rgb is not None:
            return self.rgb.reshape(-1, 3)[self.valid_index()]
        return self.point_colors

    def point_gt(self) -> Optional[np.ndarray]:
        """N bool per-point ground truth aligned with :meth:`valid_points`, or None."""
        if self.point_labels is not None:
            return self.point_labels.astype(bool)
        if self.organized and self.gt_mask is not None:
            return self.gt_mask.ravel()[self.valid_index()].astype(bool)
        if self.points is not None and not self.is_anomalous and self.gt_mask is None:
            return np.zeros(self.n_points, bool)
        return None

    def pixel_gt(self) -> Optional[np.ndarray]:
        """H x W bool pixel ground truth; all-False for a good sample without a mask file."""
        if self.gt_mask is not None:
            return self.gt_mask.astype(bool)
        shape = self.grid_shape
        if shape is not None and not self.is_anomalous:
            return np.zeros(shape, bool)
        return None


# ---------------------------------------------------------------------- map <-> points
def resize_map(m: np.ndarray, shape: tuple[int, int], interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Resize a float map to (H, W); identity when the shape already matches."""
    m = np.asarray(m, dtype=np.float32)
    if m.shape[:2] == tuple(shape):
        return m
    return cv2.resize(m, (int(shape[1]), int(shape[0])), interpolation=interpolation)


def map_to_points(pixel_map: np.ndarray, sample: Sample) -> np.ndarray:
    """Per-point scores (aligned with ``sample.valid_points()``) sampled from a pixel map.

    The map is resized (bilinear) to the organized grid first.  Only organized clouds have a
    pixel <-> point correspondence; an unorganized cloud raises ValueError.
    """
    if not sample.organized:
        raise ValueError("map_to_points needs an organized cloud (pixel grid)")
    grid = sample.points.shape[:2]  # type: ignore[union-attr]
    return resize_map(pixel_map, grid).ravel()[sample.valid_index()]


def points_to_map(scores: np.ndarray, sample: Sample, shape: Optional[tuple[int, int]] = None,
                  fill: float = np.nan) -> np.ndarray:
    """Scatter per-point scores of an organized cloud back to its pixel grid (missing = ``fill``),
    optionally resized to ``shape`` (nearest, so missing pixels stay missing)."""
    if not sample.organized:
        raise ValueError("points_to_map needs an organized cloud (pixel grid)")
    h, w = sample.points.shape[:2]  # type: ignore[union-attr]
    out = np.full(h * w, fill, np.float32)
    out[sample.valid_index()] = np.asarray(scores, np.float32)
    out = out.reshape(h, w)
    if shape is not None and tuple(shape) != (h, w):
        out = cv2.resize(out, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST)
    return out
