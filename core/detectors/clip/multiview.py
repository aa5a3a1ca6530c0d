"""3D through views: the view sets and the render -> score -> back-project plumbing for CLIP."""
from __future__ import annotations

import numpy as np

from ...render import BackProjection, render_views, view_label, view_rotations
from ...render.views import MVTEC_VIEWS

VIEW_SETS = {
    "mvtec": MVTEC_VIEWS,                                                       # PointAD, MVTec 3D-AD
    "real3d": tuple(("x", a) for a in (-144, -108, -72, -36, 0, 36, 72, 108, 144)),   # PointAD, Real3D-AD
    "front": (("x", 0.0),),
}


def prepare(points: np.ndarray, view_set: str, size: int, thumb: int = 96):
    """Render ``points`` into the views of ``view_set`` at ``size`` px.

    Returns (images K x S x S x 3 uint8, BackProjection, :class:`~core.render.views.ViewStrip` of
    ``thumb`` px for the GUI)."""
    if view_set not in VIEW_SETS:
        raise ValueError(f"unknown view set {view_set!r} (one of {', '.join(VIEW_SETS)})")
    pts = np.asarray(points, np.float32)
    views = render_views(pts, view_rotations(VIEW_SETS[view_set]), size=size)
    strip = views.strip([view_label(a, d) for a, d in VIEW_SETS[view_set]], thumb)
    return views.images, BackProjection.from_views(views, pts), strip
