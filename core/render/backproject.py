"""Back-project per-view score maps to the points (PointAD's rule, with a nearest-neighbour fill).

score(point) = mean over the views where the point is visible of the view's map at the point's
pixel; a point seen in no view takes the score of its nearest seen neighbour (in 3D).

:class:`BackProjection` is the part that depends on the geometry only (pixel of each point, visibility,
which seen point stands in for each unseen one): computed once per sample, it is small and can be
cached, so scores re-derived after a prompt edit are back-projected in milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .views import Views


@dataclass
class BackProjection:
    flat: np.ndarray      # K x N int32 flat pixel index of each point in each view
    visible: np.ndarray   # K x N bool
    unseen: np.ndarray    # int32 indices of the points seen in no view
    donor: np.ndarray     # int32, for each unseen point the index of its nearest seen point
    size: int

    @classmethod
    def from_views(cls, views: Views, points: np.ndarray) -> "BackProjection":
        flat = (views.pixel[..., 0].astype(np.int64) * views.size + views.pixel[..., 1]).astype(np.int32)
        seen = views.visible.any(0)
        unseen = np.flatnonzero(~seen).astype(np.int32)
        donor = np.zeros(len(unseen), np.int32)
        if len(unseen) and seen.any():
            from scipy.spatial import cKDTree
            pts = np.asarray(points, np.float64)
            seen_idx = np.flatnonzero(seen)
            _, nn = cKDTree(pts[seen_idx]).query(pts[unseen], k=1)
            donor = seen_idx[nn].astype(np.int32)
        return cls(flat=flat, visible=views.visible.copy(), unseen=unseen, donor=donor, size=views.size)

    @property
    def k(self) -> int:
        return int(self.flat.shape[0])

    def apply(self, view_maps: np.ndarray) -> np.ndarray:
        """``view_maps``: K x S x S -> N float32 point scores."""
        m = np.asarray(view_maps, np.float32)
        if m.shape != (self.k, self.size, self.size):
            raise ValueError(f"view maps of shape {m.shape}, expected {(self.k, self.size, self.size)}")
        vals = np.take_along_axis(m.reshape(self.k, -1), self.flat.astype(np.int64), axis=1)
        vis = self.visible
        cnt = vis.sum(0)
        out = (np.where(vis, vals, 0).sum(0) / np.maximum(cnt, 1)).astype(np.float32)
        if len(self.unseen):
            out[self.unseen] = out[self.donor] if (cnt > 0).any() else 0.0
        return out


def backproject(view_maps: np.ndarray, views: Views, points: np.ndarray) -> np.ndarray:
    """``view_maps``: K x S x S float maps on the views' pixel grid -> N float32 point scores."""
    return BackProjection.from_views(views, points).apply(view_maps)
