"""Picking and projection for the 3D view: which displayed point lies under a widget position.

Two strategies, one per render backend (see :mod:`app.views.cloud_backends`):

* :func:`pick_projected` (off-screen backend): the displayed points are projected with the camera
  matrices; among those within a few pixels of the click the ones in front (not hidden in the last
  frame's z-buffer) win, then the nearest on screen;
* :func:`pick_vtk` (interactor backend): VTK's ``vtkPointPicker`` on the actor on screen.

Coordinates given to the pickers are *device* pixels from the top-left of the render window.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

__all__ = ["PICK_RADIUS_PX", "PickScene", "pick_projected", "pick_vtk", "project", "vtk_matrix_to_numpy"]

#: Pick tolerance around the click, in logical pixels.
PICK_RADIUS_PX = 6.0


@dataclass
class PickScene:
    """What a picker needs to know about the view: the full cloud, the displayed subset and the
    actor on screen (the preview subset's while it is shown)."""

    points: np.ndarray          # N x 3, the full cloud
    display_idx: np.ndarray     # full-cloud indices of the displayed points
    actor: Any                  # the VTK actor of the points on screen
    shown_idx: np.ndarray       # full-cloud indices of the points of ``actor``, in its order
    diag: float                 # diagonal of the displayed points' bounding box
    dpr: float                  # device pixels per widget pixel


def vtk_matrix_to_numpy(m) -> np.ndarray:
    return np.array([[m.GetElement(i, j) for j in range(4)] for i in range(4)], np.float64)


def window_size(render_window) -> tuple[int, int]:
    w, h = render_window.GetSize()
    return int(w), int(h)


def project(renderer, render_window, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Device-pixel (x, y) from the top-left, window depth in [0, 1] and view distance of ``pts``."""
    w, h = window_size(render_window)
    cam = renderer.GetActiveCamera()
    m = vtk_matrix_to_numpy(cam.GetCompositeProjectionTransformMatrix(w / max(h, 1), -1.0, 1.0))
    hom = np.empty((pts.shape[0], 4), np.float64)
    hom[:, :3] = pts
    hom[:, 3] = 1.0
    clip = hom @ m.T
    wc = clip[:, 3:4]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndc = clip[:, :3] / wc
    x = (ndc[:, 0] + 1.0) * 0.5 * w
    y = h - (ndc[:, 1] + 1.0) * 0.5 * h
    depth = (ndc[:, 2] + 1.0) * 0.5
    view = hom @ vtk_matrix_to_numpy(cam.GetViewTransformMatrix()).T
    dist = -view[:, 2]
    return np.stack([x, y], axis=1), depth, dist


def pick_projected(scene: PickScene, renderer, render_window, xd: float, yd: float) -> Optional[int]:
    """Full-cloud index of the displayed point at device pixel (xd, yd), or None (see module doc)."""
    pts = scene.points[scene.display_idx]
    xy, depth, dist = project(renderer, render_window, pts)
    # Pixel (i, j) spans [i, i + 1): compare with the click pixel's centre.
    d2 = (xy[:, 0] - (np.floor(xd) + 0.5)) ** 2 + (xy[:, 1] - (np.floor(yd) + 0.5)) ** 2
    radius = PICK_RADIUS_PX * scene.dpr
    cand = np.flatnonzero((d2 <= radius * radius) & (dist > 0) & (depth >= 0) & (depth <= 1))
    if cand.size == 0:
        return None
    vis = visible(render_window, xy[cand], depth[cand])
    if vis is not None and vis.any():
        cand = cand[vis]
    else:
        near = dist[cand].min()
        cand = cand[dist[cand] <= near + 0.02 * scene.diag]
    best = cand[np.argmin(d2[cand])]
    return int(scene.display_idx[best])


def visible(render_window, xy: np.ndarray, depth: np.ndarray) -> Optional[np.ndarray]:
    """Which projected points are not behind the last frame's z-buffer (None: unavailable)."""
    from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: PLC0415
    from vtkmodules.vtkCommonCore import vtkFloatArray  # noqa: PLC0415

    w, h = window_size(render_window)
    col = np.clip(np.floor(xy[:, 0]).astype(np.intp), 0, w - 1)
    row = np.clip(np.floor(xy[:, 1]).astype(np.intp), 0, h - 1)
    x0, x1 = int(col.min()), int(col.max())
    r0, r1 = int(row.min()), int(row.max())
    y0, y1 = h - 1 - r1, h - 1 - r0      # VTK rows count from the bottom
    arr = vtkFloatArray()
    if not render_window.GetZbufferData(x0, y0, x1, y1, arr):
        return None
    z = vtk_to_numpy(arr).reshape(y1 - y0 + 1, x1 - x0 + 1)
    zb = z[(h - 1 - row) - y0, col - x0]
    # A point's own pixel holds its depth (or something nearer): allow a small tolerance.
    return depth <= zb + 1e-4


def pick_vtk(scene: PickScene, renderer, render_window, xd: float, yd: float) -> Optional[int]:
    """Full-cloud index of the point VTK's point picker finds at device pixel (xd, yd), or None."""
    from vtkmodules.vtkRenderingCore import vtkPointPicker  # noqa: PLC0415

    w, h = window_size(render_window)
    picker = vtkPointPicker()
    picker.SetTolerance(PICK_RADIUS_PX / max(np.hypot(w, h), 1.0))
    picker.PickFromListOn()
    picker.AddPickList(scene.actor)
    if not picker.Pick(float(xd), float(h - 1 - yd), 0.0, renderer):
        return None
    pid = picker.GetPointId()
    if pid < 0 or pid >= scene.shown_idx.size:
        return None
    return int(scene.shown_idx[pid])
