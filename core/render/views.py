"""Render a point cloud into K shaded depth views with a numpy z-buffer (no GL).

Each view rotates the cloud about its centre (PointAD's MVTec views by default: about x by
[-45, -15, 0, 15, 45] degrees, about y by [-30, -15, 15, 30]), projects it orthographically onto a
``size x size`` image (one scale for every view, so the part keeps its size), and splats each point
as a square of ``2r+1`` pixels.  The camera looks down the -z axis: for each pixel the point with the
largest rotated z wins (PointAD's visibility rule).  Shading: Lambert on normals estimated from the
depth image, grey part on a white background.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

#: PointAD's MVTec 3D-AD views: (axis, degrees)
MVTEC_VIEWS: tuple[tuple[str, float], ...] = tuple(
    [("x", a) for a in (-45, -15, 0, 15, 45)] + [("y", a) for a in (-30, -15, 15, 30)])


def rotation(axis: str, degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    raise ValueError(f"unknown axis {axis!r}")


def view_rotations(views: Sequence[tuple[str, float]] = MVTEC_VIEWS) -> np.ndarray:
    return np.stack([rotation(a, d) for a, d in views]).astype(np.float64)


@dataclass
class Views:
    """K rendered views of N points.

    images:  K x S x S x 3 uint8 shaded renders (white background)
    index:   K x S x S int32 point index seen at each pixel (-1: background)
    depth:   K x S x S float32 rotated z of that point (-inf: background)
    pixel:   K x N x 2 int32 (row, col) where each point's centre projects
    z:       K x N float32 rotated z of each point
    visible: K x N bool, the point is on the visible surface of the view
    """
    images: np.ndarray
    index: np.ndarray
    depth: np.ndarray
    pixel: np.ndarray
    z: np.ndarray
    visible: np.ndarray
    radius: int

    @property
    def k(self) -> int:
        return int(self.index.shape[0])

    @property
    def size(self) -> int:
        return int(self.index.shape[1])

    def thumbnails(self, size: int = 96) -> np.ndarray:
        """K x size x size x 3 uint8 small copies (for a strip in the GUI)."""
        import cv2
        return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in self.images])

    def strip(self, labels: Sequence[str], size: int = 96) -> "ViewStrip":
        """Small copies of the views with their part masks, for showing how a 3D map was made."""
        import cv2
        masks = np.stack([cv2.resize((ix >= 0).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
                          for ix in self.index])
        return ViewStrip(self.thumbnails(size), masks, tuple(labels))


@dataclass
class ViewStrip:
    """What a person needs to see how a view-based 3D map was made: the K rendered views (small),
    where the part is in each, the views' names, and (after scoring) each view's anomaly map.

    images: K x t x t x 3 uint8; masks: K x t x t bool (the part); labels: K names ("x -45°");
    maps: K x t x t float32 per-view scores at the same size, or None before scoring.
    """
    images: np.ndarray
    masks: np.ndarray
    labels: tuple[str, ...]
    maps: Optional[np.ndarray] = None

    @property
    def k(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:3])

    def with_maps(self, maps: np.ndarray) -> "ViewStrip":
        """A copy holding ``maps`` (K x h x w, resized to the strip's size), NaN off the part."""
        m = np.asarray(maps, np.float32)
        if m.shape[0] != self.k:
            raise ValueError(f"{m.shape[0]} view maps for {self.k} views")
        m = resize_maps(m, self.size)
        return ViewStrip(self.images, self.masks, self.labels, np.where(self.masks, m, np.nan).astype(np.float32))


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """K x H x W maps -> K x size[0] x size[1] float32 (area average; as they are when already that size)."""
    m = np.asarray(maps, np.float32)
    if m.shape[1:] == tuple(size):
        return m
    import cv2
    return np.stack([cv2.resize(v, (size[1], size[0]), interpolation=cv2.INTER_AREA) for v in m])


def view_label(axis: str, degrees: float) -> str:
    """A view's name as shown under its picture: "x -45°", "y +15°", "front"."""
    return "front" if not degrees else f"{axis} {degrees:+g}°"


def auto_radius(n_points: int, size: int, fill: float = 0.45) -> int:
    """Splat radius so that N points cover about ``fill`` of the image: spacing ~ sqrt(area / N)."""
    if n_points <= 0:
        return 0
    spacing = np.sqrt(fill * size * size / n_points)
    return int(np.clip(np.round((spacing - 1) / 2), 0, 8))


def _project(points: np.ndarray, rots: np.ndarray, size: int, margin: float = 0.05):
    c = points.mean(0)
    p = (points - c).astype(np.float32)
    radius = float(np.sqrt((p ** 2).sum(1).max())) if len(p) else 1.0
    radius = radius if radius > 0 else 1.0
    scale = (size * (1 - 2 * margin)) / (2 * radius)       # pixels per unit, same for every view
    k = len(rots)
    m = rots.transpose(2, 0, 1).reshape(3, 3 * k)          # column (v, i) = row i of view v's rotation
    rp = (p @ m.astype(np.float32)).reshape(len(p), k, 3).transpose(1, 0, 2)  # K x N x 3
    half, s = np.float32(size / 2), np.float32(scale)

    def pix(a):   # floor, clipped to the image, as int64 (in place on float32 temporaries)
        a = np.floor(a, out=a)
        return np.clip(a, 0, size - 1, out=a).astype(np.int64)
    col = pix(half + rp[..., 0] * s)
    row = pix(half - rp[..., 1] * s)   # y up on screen
    return row, col, rp[..., 2], scale


def zbuffer(row: np.ndarray, col: np.ndarray, z: np.ndarray, size: int, radius: int):
    """One view: for each pixel the largest z among the points whose splat covers it, and that
    point's index.  Returns (depth S x S with -inf background, index S x S with -1)."""
    n = len(z)
    offs = np.arange(-radius, radius + 1)
    dr, dc = np.meshgrid(offs, offs, indexing="ij")
    rr = (row[:, None] + dr.ravel()[None]).ravel()
    cc = (col[:, None] + dc.ravel()[None]).ravel()
    pid = np.repeat(np.arange(n), dr.size)
    ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
    rr, cc, pid = rr[ok], cc[ok], pid[ok]
    flat = rr * size + cc
    # sort by pixel, then nearest first (largest z), then lowest index: the first of each pixel wins
    order = np.lexsort((-z[pid], flat))      # stable: ties keep the lowest index
    fs = flat[order]
    first = np.ones(len(fs), bool)
    first[1:] = fs[1:] != fs[:-1]
    win = order[first]
    depth = np.full(size * size, -np.inf)
    index = np.full(size * size, -1, np.int64)
    depth[flat[win]] = z[pid[win]]
    index[flat[win]] = pid[win]
    return depth.reshape(size, size), index.reshape(size, size)


def shade(depth: np.ndarray, scale: float) -> np.ndarray:
    """Lambert shading of a depth image (-inf background -> white), grey 0.7 albedo."""
    fg = np.isfinite(depth)
    d = np.where(fg, depth, np.nan) * scale    # depth in pixel units
    if fg.any():
        fill = np.nanmin(d)
        d = np.where(fg, d, fill)
    else:
        d = np.zeros_like(depth)
    gy, gx = np.gradient(d)
    gy = -gy                                   # rows go down, y goes up
    n = np.stack([-gx, -gy, np.ones_like(d)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    light = np.array([-0.3, 0.4, 1.0])
    light /= np.linalg.norm(light)
    lam = np.clip(n @ light, 0, 1)
    val = 0.7 * (0.25 + 0.75 * lam)
    img = np.where(fg, val, 1.0)
    return np.repeat((np.clip(img, 0, 1) * 255).astype(np.uint8)[..., None], 3, -1)


def render_views(points: np.ndarray, rotations: Optional[np.ndarray] = None, size: int = 224,
                 radius: Optional[int] = None, depth_tol: Optional[float] = None,
                 max_splat: Optional[int] = None) -> Views:
    """Render ``points`` (N x 3, finite) into ``len(rotations)`` views of ``size`` pixels.

    A point is *visible* in a view when its rotated z is within ``depth_tol`` (default: 1.5 pixels, in
    world units) of the z-buffer at its centre pixel, so dense surfaces where several points share a
    pixel are all seen; points hidden behind a nearer surface are not.

    ``max_splat`` (default ``2 * size**2``): a denser cloud builds its z-buffer from an evenly strided
    subset of that many points (a view cannot show more); projection and visibility still use every point.
    """
    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise ValueError("render_views needs an N x 3 cloud with N > 0")
    rots = view_rotations() if rotations is None else np.asarray(rotations, np.float64)
    n = len(pts)
    cap = 2 * size * size if max_splat is None else int(max_splat)
    sub = np.arange(n) if n <= cap else np.linspace(0, n - 1, cap).astype(np.int64)
    r = auto_radius(len(sub), size) if radius is None else int(radius)
    row, col, z, scale = _project(pts, rots, size)
    tol = (1.5 * (r + 1) / scale) if depth_tol is None else float(depth_tol)
    k = len(rots)
    depth = np.empty((k, size, size), np.float32)
    index = np.empty((k, size, size), np.int32)
    images = np.empty((k, size, size, 3), np.uint8)
    visible = np.empty((k, len(pts)), bool)
    for v in range(k):
        d, ix = zbuffer(row[v, sub], col[v, sub], z[v, sub], size, r)
        depth[v], index[v] = d, np.where(ix >= 0, sub[np.maximum(ix, 0)], -1)
        images[v] = shade(d, scale)
        visible[v] = z[v] >= d[row[v], col[v]] - tol
    return Views(images=images, index=index, depth=depth, pixel=np.stack([row, col], -1).astype(np.int32),
                 z=z.astype(np.float32), visible=visible, radius=r)
