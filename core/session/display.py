"""Display helpers shared by the GUI and the CLI (Qt-free): what picture to show for a sample,
pixel <-> point lookups, the shared score range and thumbnails."""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..datasets.base import Dataset, SampleRef
from ..colormaps import score_range  # noqa: F401 - the one rule for GUI and CLI, re-exported here
from ..sample import Sample


def display_image(sample: Sample) -> Optional[np.ndarray]:
    """The picture to show for a sample: its RGB, else a shaded depth image of an organized cloud."""
    if sample.rgb is not None:
        return sample.rgb
    if not sample.organized:
        return None
    z = sample.points[..., 2].astype(np.float32)  # type: ignore[index]
    ok = np.isfinite(z)
    if not ok.any():
        return None
    lo, hi = np.percentile(z[ok], [1, 99])
    g = np.zeros(z.shape, np.float32)
    g[ok] = 1.0 - np.clip((z[ok] - lo) / max(hi - lo, 1e-9), 0, 1)   # near = bright
    # cheap Lambert shading from the depth gradient makes the shape readable
    zf = np.where(ok, z, np.nanmedian(z[ok]))
    gy, gx = np.gradient(zf / max(hi - lo, 1e-9) * 40.0)
    shade = 1.0 / np.sqrt(1.0 + gx * gx + gy * gy)
    img = (40 + 200 * (0.35 * g + 0.65 * shade)) * ok
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def pixel_to_point(sample: Sample, row: int, col: int) -> Optional[int]:
    """Index (into ``sample.valid_points()``) of the 3D point under a pixel, or None."""
    if not sample.organized:
        return None
    h, w = sample.points.shape[:2]  # type: ignore[union-attr]
    if not (0 <= row < h and 0 <= col < w):
        return None
    flat = row * w + col
    idx = sample.valid_index()
    i = int(np.searchsorted(idx, flat))
    return i if i < idx.size and idx[i] == flat else None


def point_to_pixel(sample: Sample, index: int) -> Optional[tuple[int, int]]:
    """(row, col) of a point of an organized cloud, or None for unorganized clouds / bad index."""
    if not sample.organized:
        return None
    idx = sample.valid_index()
    if not 0 <= index < idx.size:
        return None
    w = sample.points.shape[1]  # type: ignore[union-attr]
    r, c = divmod(int(idx[index]), w)
    return r, c


def thumbnail(dataset: Dataset, ref: SampleRef, size: int = 96, sample: Optional[Sample] = None) -> np.ndarray:
    """A size x size RGB thumbnail (letterboxed): the RGB image if any, else the shaded depth/cloud.

    Reads only the RGB file when there is one (fast); raises :class:`SampleLoadError` on a bad file.
    """
    img = None
    rgb_path = ref.paths.get("rgb") if sample is None else None
    if rgb_path is not None:
        from .. import io as _io  # the loaders' readers
        img = _io.read_rgb(rgb_path)
    else:
        s = sample if sample is not None else dataset.load(ref)
        img = display_image(s)
        if img is None and s.has_points:
            img = _cloud_silhouette(s.valid_points(), s.valid_colors(), size)
    out = np.full((size, size, 3), 40, np.uint8)
    if img is None:
        return out
    h, w = img.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    small = cv2.resize(np.ascontiguousarray(img), (nw, nh), interpolation=cv2.INTER_AREA)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


def _cloud_silhouette(points: np.ndarray, colors: Optional[np.ndarray], size: int) -> Optional[np.ndarray]:
    """Top view (x, y) of an unorganized cloud, coloured by height (or its colours)."""
    if points.size == 0:
        return None
    xy = points[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    span = float(max((hi - lo).max(), 1e-9))
    ij = ((xy - lo) / span * (size - 1)).astype(int)
    img = np.full((size, size, 3), 40, np.uint8)
    if colors is None:
        z = points[:, 2]
        zz = ((z - z.min()) / max(float(np.ptp(z)), 1e-9) * 180 + 60).astype(np.uint8)
        cols = np.repeat(zz[:, None], 3, axis=1)
    else:
        cols = colors
    order = np.argsort(points[:, 2])
    img[size - 1 - ij[order, 1], ij[order, 0]] = cols[order]
    return img
