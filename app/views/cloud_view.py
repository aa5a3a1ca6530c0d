"""3D view: the point cloud coloured by RGB, by anomaly score or by ground truth.

:class:`CloudView` draws through one of two render backends, chosen when it is built (see
:mod:`app.views.cloud_backends`: a pyvistaqt ``QtInteractor`` on a real window system, an
off-screen ``pyvista.Plotter`` shown in a QLabel under ``QT_QPA_PLATFORM=offscreen`` or with
``MMAD_FORCE_OFFSCREEN_3D``); picking is in :mod:`app.views.picking`.  The view itself holds the
data, the colours, the actors, the camera and the render throttle, the same for both.

Large clouds are *displayed* decimated to :attr:`CloudView.max_display_points` (a fixed,
deterministic random subset); scores, labels, picks and marks always refer to indices of the full
cloud.  Re-colouring (scores, colormap, GT toggle) writes the colour array of the existing mesh in
place and re-renders: no actor is rebuilt.

*Preview mode* (:meth:`CloudView.set_preview`), meant for the duration of a slider drag, shows a
smaller fixed subset of the display points (:attr:`CloudView.preview_points`, deterministic) so
that each re-coloured frame renders several times faster; only that subset is re-coloured while
it is on, and the full display subset is brought up to date when preview ends.

Renders are throttled on the leading edge: a change renders on the next event-loop turn unless a
frame was drawn less than ``_FRAME_INTERVAL_MS`` ago, so bursts of changes coalesce into one
frame per turn and at most ~30 frames per second.

Multisampling is turned off: it does nothing for points and made each software-rendered (llvmpipe)
frame about 3-4 times slower on this project's machines.
"""
from __future__ import annotations

import time
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import QSize, QTimer, Signal
from PySide6.QtWidgets import QApplication, QSizePolicy, QVBoxLayout, QWidget

from core.errors import InputError

from .cloud_backends import DEFAULT_SIZE, INTERACTIVE_PLATFORMS, RenderBackend, make_backend
from .colormap import alpha_ramp, contrast_color, lut, score_colors
from .picking import PickScene, project

__all__ = ["CloudView", "GT_POINT_COLOR", "NON_GT_POINT_COLOR", "INTERACTIVE_PLATFORMS"]

#: Colours of ground-truth anomalous / other points while the GT is shown.
GT_POINT_COLOR = (0, 220, 0)
NON_GT_POINT_COLOR = (110, 110, 110)
_BACKGROUND = (0.11, 0.11, 0.12)
_FRAME_INTERVAL_MS = 33  # ~30 fps render throttle
_KEEP = object()  # "leave unchanged" marker for keyword arguments
#: Text shown while the view has no cloud (see ``CloudView.set_placeholder``).
NO_CLOUD_TEXT = "no point cloud"


class CloudView(QWidget):
    """Point-cloud view with score colouring, GT display, point marking and picking.

    Parameters
    ----------
    parent
        Parent widget.
    max_display_points
        Clouds with more points are displayed as a deterministic subset of this size.
    """

    #: Index (into the full cloud) of a point the user clicked.
    pointPicked = Signal(int)
    #: Duration in milliseconds of each completed render.
    frameRendered = Signal(float)

    def __init__(self, parent: Optional[QWidget] = None, max_display_points: int = 300_000,
                 preview_points: int = 60_000):
        super().__init__(parent)
        import pyvista as pv  # noqa: PLC0415  (heavy: only when a view is built)

        self._pv = pv
        self.max_display_points = int(max_display_points)
        #: Points shown while :meth:`set_preview` is on (when the display subset is larger);
        #: takes effect at the next :meth:`set_cloud`.
        self.preview_points = int(preview_points)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(64, 64)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self._closed = False
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(_FRAME_INTERVAL_MS)
        self._render_timer.timeout.connect(self._render_now)
        self._backend: RenderBackend = make_backend(self, self, self._render_timer.stop, self._note_frame)
        self._plotter = self._backend.plotter
        layout.addWidget(self._backend.widget)
        self._plotter.render_window.SetMultiSamples(0)
        self._plotter.set_background(_BACKGROUND)
        self._renderer = self._plotter.renderer

        from vtkmodules.vtkRenderingCore import vtkTextActor  # noqa: PLC0415

        self._text = vtkTextActor()
        tp = self._text.GetTextProperty()
        tp.SetJustificationToCentered()
        tp.SetVerticalJustificationToCentered()
        tp.SetFontSize(18)
        tp.SetColor(0.8, 0.8, 0.8)
        self._text.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        self._text.SetPosition(0.5, 0.5)
        self._renderer.AddViewProp(self._text)
        # Data (full resolution).
        self._points: Optional[np.ndarray] = None  # N x 3 float32
        self._colors: Optional[np.ndarray] = None  # N x 3 uint8
        self._scores: Optional[np.ndarray] = None  # N float32
        self._vmin, self._vmax = 0.0, 1.0
        self._gt: Optional[np.ndarray] = None  # N bool
        self._show_gt = False
        self._threshold: Optional[float] = None
        self._cmap = "inferno"
        self._blend_gamma = 0.0     # score-weighted blending (see set_score_blend); off by default
        self._blend_opacity = 1.0
        self._point_size = 3.0
        self._marked: Optional[int] = None
        # Display.
        self._display_idx = np.zeros(0, np.intp)
        self._mesh = None
        self._actor = None
        self._emph_mesh = pv.PolyData()
        self._emph_actor = None
        # Preview subset: positions into the display subset, its mesh and actor.
        self._preview_pos: Optional[np.ndarray] = None
        self._preview_mesh = None
        self._preview_actor = None
        self._preview = False
        self._full_dirty = False  # the full mesh's colours lag behind (updated when preview ends)
        self._marker_mesh = pv.Sphere(radius=1.0, theta_resolution=16, phi_resolution=12)
        self._marker_actor = self._plotter.add_mesh(
            self._marker_mesh, color=contrast_color(self._cmap), lighting=True, reset_camera=False,
            name="marker", pickable=False)
        self._marker_actor.SetVisibility(False)
        self._diag = 1.0

        # Rendering state.
        self._last_frame_ms = float("nan")
        self._last_frame_end = -1e9  # perf_counter() at the end of the latest render
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._shutdown)

        self._placeholder = NO_CLOUD_TEXT
        self._show_message(self._placeholder)
        self.reset_view()

    # ------------------------------------------------------------------ properties
    @property
    def backend(self) -> str:
        """``"interactor"`` or ``"offscreen"``."""
        return self._backend.name

    @property
    def backend_hint(self) -> str:
        """A caption hint for the backend ("" for the interactive widget)."""
        return self._backend.hint

    @property
    def plotter(self):
        """The underlying pyvista plotter (a QtInteractor or an off-screen Plotter)."""
        return self._plotter

    @property
    def n_points(self) -> int:
        """Points in the full cloud (0 without a cloud)."""
        return 0 if self._points is None else int(self._points.shape[0])

    @property
    def display_indices(self) -> np.ndarray:
        """Full-cloud indices of the displayed points, in display order (read-only)."""
        v = self._display_idx.view()
        v.setflags(write=False)
        return v

    @property
    def preview_active(self) -> bool:
        """True while the preview subset is on screen (preview on and the cloud large enough)."""
        return self._preview and self._preview_actor is not None

    @property
    def displayed_count(self) -> int:
        """Points drawn right now (the preview subset while it is on screen)."""
        if self.preview_active:
            return int(self._preview_pos.size)
        return int(self._display_idx.size)

    @property
    def marked_index(self) -> Optional[int]:
        return self._marked

    @property
    def colormap(self) -> str:
        return self._cmap

    @property
    def threshold(self) -> Optional[float]:
        return self._threshold

    @property
    def point_size(self) -> float:
        return self._point_size

    @property
    def last_frame_ms(self) -> float:
        """Duration of the latest render in milliseconds (NaN before the first)."""
        return self._last_frame_ms

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(*DEFAULT_SIZE)

    # ------------------------------------------------------------------ data
    def set_cloud(self, points: Optional[np.ndarray], colors: Optional[np.ndarray] = None) -> None:
        """Show an N x 3 cloud, optionally with N x 3 uint8 colours; None shows "no point cloud".

        Scores, GT labels and the marked point of the previous cloud are cleared.  Points with a
        non-finite coordinate are kept in the index space but never displayed.
        """
        self._scores = None
        self._gt = None
        self._marked = None
        if points is None:
            self._points = None
            self._colors = None
            self._rebuild_display()
            return
        pts = np.asarray(points)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise InputError(None, f"the point cloud must be an N x 3 array, got shape {pts.shape}")
        if not np.issubdtype(pts.dtype, np.number):
            raise InputError(None, f"the point cloud must hold numbers, got {pts.dtype}")
        pts = np.ascontiguousarray(pts, dtype=np.float32)
        if colors is not None:
            col = np.asarray(colors)
            if col.shape != pts.shape:
                raise InputError(None, f"the point colours have shape {col.shape} but the cloud has {pts.shape}")
            if col.dtype != np.uint8:
                raise InputError(None, f"the point colours must be 8-bit (uint8), got {col.dtype}")
            colors = np.ascontiguousarray(col)
        self._points = pts
        self._colors = colors
        self._rebuild_display()

    def set_scores(self, scores: Optional[np.ndarray], vmin: float = 0.0, vmax: float = 1.0,
                   threshold: Any = _KEEP) -> None:
        """Colour the points by per-point ``scores`` (N floats, full cloud) over [vmin, vmax].

        NaN scores are drawn grey; None returns to the cloud's own colours.  ``threshold``
        (optional) sets the emphasis level in the same call, so colours are computed once (see
        :meth:`set_threshold`).
        """
        if scores is not None:
            s = np.asarray(scores, dtype=np.float32).reshape(-1)
            if self._points is None:
                raise InputError(None, "scores were given but no point cloud is shown")
            if s.shape[0] != self.n_points:
                raise InputError(None, f"there are {s.shape[0]} scores but the point cloud has "
                                       f"{self.n_points} points")
            if not (np.isfinite(vmin) and np.isfinite(vmax)):
                raise InputError(None, f"the score colour range must be finite, got {vmin} .. {vmax}")
            scores = s
        self._scores = scores
        self._vmin, self._vmax = float(vmin), float(vmax)
        if threshold is not _KEEP:
            self._threshold = None if threshold is None or not np.isfinite(threshold) else float(threshold)
        self._refresh_colors()

    def set_score_blend(self, gamma: float = 0.0, opacity: float = 1.0) -> None:
        """Blend score colours over the cloud's own colours with weight ``opacity * t ** gamma``
        (``t``: the score normalised to [vmin, vmax]), like :class:`ImageView`'s overlay, so the
        part stays readable where scores are low.  ``gamma=0, opacity=1`` (the default): plain
        colormap colours, NaN scores grey."""
        alpha_ramp(gamma)  # validates
        self._blend_gamma = float(gamma)
        self._blend_opacity = float(min(max(opacity, 0.0), 1.0))
        self._refresh_colors()

    def set_colormap(self, name: str) -> None:
        lut(name)  # validates the name
        self._cmap = name
        self._marker_actor.GetProperty().SetColor(*(c / 255.0 for c in contrast_color(name)))
        self._refresh_colors()

    def set_threshold(self, t: Optional[float]) -> None:
        """Points with a score >= ``t`` are drawn larger (None or NaN: no emphasis)."""
        t = None if t is None or not np.isfinite(t) else float(t)
        if t == self._threshold:
            return
        self._threshold = t
        self._refresh_colors()

    def set_placeholder(self, text: Optional[str]) -> None:
        """Text shown while there is no cloud (None: the default "no point cloud")."""
        self._placeholder = NO_CLOUD_TEXT if text is None else str(text)
        if self._points is None or self._points.shape[0] == 0:
            self._show_message(self._placeholder)
            self._schedule_render()

    def set_preview(self, on: bool) -> None:
        """Show only the preview subset (:attr:`preview_points`) while ``on``; e.g. during a drag.

        Has a visible effect only for clouds whose display subset is larger than the preview
        subset.  Turning it off re-colours the full display subset if needed and shows it again.
        """
        on = bool(on)
        if on == self._preview:
            return
        self._preview = on
        if self._preview_actor is None:
            return
        if on:
            self._refresh_colors(render=False)  # the preview mesh may hold older colours
        elif self._full_dirty:
            self._refresh_colors(render=False)
        self._actor.SetVisibility(not on)
        self._preview_actor.SetVisibility(on)
        self._schedule_render()

    def set_gt(self, labels: Optional[np.ndarray]) -> None:
        """Per-point ground truth (N, nonzero = anomalous, full cloud); None: no GT."""
        if labels is not None:
            lab = np.asarray(labels).reshape(-1)
            if self._points is None:
                raise InputError(None, "ground-truth labels were given but no point cloud is shown")
            if lab.shape[0] != self.n_points:
                raise InputError(None, f"there are {lab.shape[0]} ground-truth labels but the point cloud has "
                                       f"{self.n_points} points")
            labels = lab.astype(bool)
        self._gt = labels
        self._refresh_colors()

    def set_show_gt(self, show: bool) -> None:
        """While on (and labels are set), GT points are green and the others grey."""
        self._show_gt = bool(show)
        self._refresh_colors()

    def mark_point(self, index: Optional[int]) -> None:
        """Highlight point ``index`` of the full cloud with a sphere (shown even when decimated)."""
        if index is not None:
            index = int(index)
            if not 0 <= index < self.n_points:
                raise IndexError(f"point index {index} is outside the cloud (0 .. {self.n_points - 1})")
            if not np.isfinite(self._points[index]).all():
                index = None  # a missing point has no position to mark
        self._marked = index
        if index is None:
            self._marker_actor.SetVisibility(False)
        else:
            self._marker_actor.SetPosition(*self._points[index].astype(np.float64))
            self._marker_actor.SetVisibility(True)
        self._schedule_render()

    def marked_position(self) -> Optional[np.ndarray]:
        """World position of the marker sphere, or None."""
        if self._marked is None:
            return None
        return np.array(self._marker_actor.GetPosition(), np.float64)

    def set_point_size(self, px: float) -> None:
        self._point_size = float(max(px, 1.0))
        for actor in (self._actor, self._preview_actor):
            if actor is not None:
                actor.GetProperty().SetPointSize(self._point_size)
        if self._emph_actor is not None:
            self._emph_actor.GetProperty().SetPointSize(self._emph_size())
        self._schedule_render()

    def reset_view(self) -> None:
        """Look at the whole cloud from the sensor side (along +z, image rows downwards)."""
        cam = self._renderer.GetActiveCamera()
        if self._mesh is not None and self._mesh.n_points > 0:
            b = self._mesh.bounds
            center = np.array([(b[0] + b[1]) / 2, (b[2] + b[3]) / 2, (b[4] + b[5]) / 2])
        else:
            center = np.zeros(3)
        cam.SetFocalPoint(*center)
        cam.SetPosition(*(center - np.array([0.0, 0.0, 1.0])))
        cam.SetViewUp(0.0, -1.0, 0.0)
        if self._mesh is not None and self._mesh.n_points > 0:
            self._renderer.ResetCamera(self._mesh.bounds)
        else:
            self._renderer.ResetCamera()
        self._renderer.ResetCameraClippingRange()
        self._schedule_render()

    # ------------------------------------------------------------------ read-back
    def point_colors(self) -> np.ndarray:
        """N_displayed x 3 uint8 copy of the colours of the display subset (display order).

        Always those of the full display subset, brought up to date first if a preview subset
        is on screen (see :meth:`set_preview`).
        """
        if self._mesh is None:
            return np.zeros((0, 3), np.uint8)
        if self._full_dirty:
            # (stays "dirty": the emphasis still follows the preview until preview ends)
            self._write_colors(self._mesh, self._display_idx, emphasis=False)
        return np.array(self._mesh.point_data["rgb"], dtype=np.uint8, copy=True)

    def render_now(self) -> float:
        """Render now (skipping the throttle) and return the frame time in milliseconds."""
        self._render_timer.stop()
        if not self._closed:
            self._renderer.ResetCameraClippingRange()
            self._backend.render_sync()
        return self._last_frame_ms

    def render_image(self) -> np.ndarray:
        """Render now and return the frame as H x W x 3 uint8 (both backends)."""
        self._render_timer.stop()
        if not self._closed:
            self._renderer.ResetCameraClippingRange()
        return self._backend.grab()

    # ------------------------------------------------------------------ picking
    def pick(self, x: float, y: float) -> Optional[int]:
        """Full-cloud index of the displayed point at widget position (x, y), or None.

        The backend picks (:mod:`app.views.picking`): VTK's point picker on the interactor, the
        projected points with a z-buffer visibility test off screen.
        """
        if self._mesh is None or self._mesh.n_points == 0:
            return None
        dpr = self.devicePixelRatioF()
        if self.preview_active:
            actor, shown = self._preview_actor, self._display_idx[self._preview_pos]
        else:
            actor, shown = self._actor, self._display_idx
        scene = PickScene(self._points, self._display_idx, actor, shown, self._diag, dpr)
        return self._backend.pick(scene, x * dpr, y * dpr)

    def click(self, x: float, y: float) -> None:
        """A click at widget position (x, y) (from the backend's input): emit ``pointPicked``."""
        idx = self.pick(x, y)
        if idx is not None:
            self.pointPicked.emit(idx)

    def project(self, full_indices: np.ndarray) -> np.ndarray:
        """Widget coordinates (x, y) of points of the full cloud under the current camera (K x 2)."""
        idx = np.asarray(full_indices, np.intp).reshape(-1)
        xy, _, _ = project(self._renderer, self._plotter.render_window, self._points[idx])
        return xy / self.devicePixelRatioF()

    # ------------------------------------------------------------------ display internals
    def _show_message(self, text: str) -> None:
        self._text.SetInput(text)
        self._text.SetVisibility(bool(text))

    def _emph_size(self) -> float:
        return self._point_size * 2.0 + 1.0

    def _rebuild_display(self) -> None:
        """(Re)build the cloud mesh and actors after the geometry changed."""
        pv = self._pv
        for name in ("cloud", "emphasis", "preview"):
            self._plotter.remove_actor(name, reset_camera=False, render=False)
        self._mesh = None
        self._actor = None
        self._emph_actor = None
        self._preview_pos = None
        self._preview_mesh = None
        self._preview_actor = None
        self._full_dirty = False
        self._marker_actor.SetVisibility(False)
        self._display_idx = np.zeros(0, np.intp)
        if self._points is None or self._points.shape[0] == 0:
            self._show_message(self._placeholder)
            self.reset_view()
            return
        finite = np.flatnonzero(np.isfinite(self._points).all(axis=1))
        if finite.size == 0:
            self._show_message("the point cloud has no valid (finite) points")
            self.reset_view()
            return
        self._show_message("")
        if finite.size > self.max_display_points > 0:
            rng = np.random.default_rng(0)
            finite = np.sort(rng.choice(finite, size=self.max_display_points, replace=False))
        self._display_idx = finite
        pts = self._points[finite]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        self._diag = float(max(np.linalg.norm(hi - lo), 1e-9))
        self._mesh = pv.PolyData(pts)
        self._mesh.point_data["rgb"] = np.zeros((pts.shape[0], 3), np.uint8)
        self._actor = self._plotter.add_mesh(
            self._mesh, scalars="rgb", rgb=True, style="points", point_size=self._point_size,
            render_points_as_spheres=False, lighting=False, show_scalar_bar=False,
            reset_camera=False, name="cloud")
        if finite.size > self.preview_points > 0:
            rng = np.random.default_rng(1)
            self._preview_pos = np.sort(rng.choice(finite.size, size=self.preview_points, replace=False))
            self._preview_mesh = pv.PolyData(pts[self._preview_pos])
            self._preview_mesh.point_data["rgb"] = np.zeros((self._preview_pos.size, 3), np.uint8)
            self._preview_actor = self._plotter.add_mesh(
                self._preview_mesh, scalars="rgb", rgb=True, style="points", point_size=self._point_size,
                render_points_as_spheres=False, lighting=False, show_scalar_bar=False,
                reset_camera=False, name="preview")
            self._actor.SetVisibility(not self._preview)
            self._preview_actor.SetVisibility(self._preview)
        self._emph_mesh = pv.PolyData()
        self._emph_actor = None
        r = 0.012 * self._diag
        self._marker_mesh.copy_from(pv.Sphere(radius=r, theta_resolution=16, phi_resolution=12))
        self._refresh_colors(render=False)
        self.reset_view()

    def _display_colors(self, idx: np.ndarray) -> np.ndarray:
        """Colours of the full-cloud points ``idx`` from the current mode (GT, scores, RGB or height)."""
        if self._show_gt and self._gt is not None:
            out = np.empty((idx.size, 3), np.uint8)
            g = self._gt[idx]
            out[g] = GT_POINT_COLOR
            out[~g] = NON_GT_POINT_COLOR
            return out
        if self._scores is not None:
            blend = self._blend_gamma > 0.0 or self._blend_opacity < 1.0
            return score_colors(self._scores[idx], self._vmin, self._vmax, self._cmap,
                                base=self._own_colors(idx) if blend else None, gamma=self._blend_gamma,
                                opacity=self._blend_opacity)
        return self._own_colors(idx)

    def _own_colors(self, idx: np.ndarray) -> np.ndarray:
        """The cloud's own colours of points ``idx``, else a grey ramp along z."""
        if self._colors is not None:
            return self._colors[idx]
        # No colour information: a grey ramp along z shows the shape without suggesting scores.
        z = self._points[idx, 2]
        lo, hi = float(z.min()), float(z.max())
        t = np.zeros_like(z) if hi <= lo else (z - lo) / (hi - lo)
        g = (220.0 - 120.0 * t).astype(np.uint8)
        return np.repeat(g[:, None], 3, axis=1)

    def _refresh_colors(self, render: bool = True) -> None:
        """Write the colours of the points on screen into their mesh (in place) and update the
        emphasis.  While the preview subset is on screen only it is re-coloured."""
        if self._mesh is None:
            if render:
                self._schedule_render()
            return
        if self.preview_active:
            self._write_colors(self._preview_mesh, self._display_idx[self._preview_pos], emphasis=True)
            self._full_dirty = True
        else:
            self._write_colors(self._mesh, self._display_idx, emphasis=True)
            self._full_dirty = False
        if render:
            self._schedule_render()

    def _write_colors(self, mesh, idx: np.ndarray, emphasis: bool) -> None:
        colors = self._display_colors(idx)
        arr = mesh.point_data["rgb"]
        arr[...] = colors
        mesh.GetPointData().GetArray("rgb").Modified()
        mesh.Modified()
        if emphasis:
            self._update_emphasis(mesh, idx, colors)

    def _update_emphasis(self, mesh, idx: np.ndarray, colors: np.ndarray) -> None:
        """Larger points for shown points scoring >= threshold (a second, small actor)."""
        sel = None
        if self._threshold is not None and self._scores is not None and not (self._show_gt and self._gt is not None):
            s = self._scores[idx]
            with np.errstate(invalid="ignore"):
                sel = np.flatnonzero(s >= self._threshold)
        if sel is None or sel.size == 0:
            if self._emph_actor is not None:
                self._emph_actor.SetVisibility(False)
            return
        new = self._pv.PolyData(mesh.points[sel])
        new.point_data["rgb"] = colors[sel]
        self._emph_mesh.copy_from(new)
        if self._emph_actor is None:
            self._emph_actor = self._plotter.add_mesh(
                self._emph_mesh, scalars="rgb", rgb=True, style="points", point_size=self._emph_size(),
                render_points_as_spheres=False, lighting=False, show_scalar_bar=False,
                reset_camera=False, name="emphasis", pickable=False)
        self._emph_actor.SetVisibility(True)

    # ------------------------------------------------------------------ rendering
    def _schedule_render(self) -> None:
        """Render on the next event-loop turn, or when ``_FRAME_INTERVAL_MS`` have passed since
        the previous frame ended (leading-edge throttle: an isolated change is drawn at once,
        a burst of changes in one turn gives one frame).

        Interactor backend, when no wait is needed: ``update()`` the widget right away (Qt
        merges repeated updates), so it repaints in the same window paint as the other widgets
        changed in this turn instead of in a second one.
        """
        if self._closed or self._render_timer.isActive():
            return
        since_ms = (time.perf_counter() - self._last_frame_end) * 1000.0
        delay = int(max(0.0, _FRAME_INTERVAL_MS - since_ms))
        if delay == 0 and self._backend.eager:
            self._render_now()
        else:
            self._render_timer.start(delay)

    def _note_frame(self, t0: float) -> None:
        self._last_frame_end = time.perf_counter()
        self._last_frame_ms = (self._last_frame_end - t0) * 1000.0
        self.frameRendered.emit(self._last_frame_ms)

    def _render_now(self) -> None:
        """Present the scene now (cancels a pending throttled render)."""
        self._render_timer.stop()
        if self._closed:
            return
        self._renderer.ResetCameraClippingRange()  # camera moves and new geometry change it
        self._backend.present()

    def _sync_window_size(self) -> None:
        if self._closed:
            return
        dpr = self.devicePixelRatioF()
        w = max(int(round(self.width() * dpr)), 16)
        h = max(int(round(self.height() * dpr)), 16)
        if self._backend.resize(w, h):
            self._schedule_render()

    # ------------------------------------------------------------------ Qt events
    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._sync_window_size()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self._sync_window_size()
        self._schedule_render()

    # ------------------------------------------------------------------ camera moves (off-screen input, tests)
    def orbit(self, dx: float, dy: float) -> None:
        """Rotate the camera about the focal point for a drag of (dx, dy) widget pixels."""
        cam = self._renderer.GetActiveCamera()
        w, h = max(self.width(), 1), max(self.height(), 1)
        cam.Azimuth(-dx * 200.0 / w)  # VTK trackball factors: 20 deg per window x motion factor 10
        cam.Elevation(dy * 200.0 / h)
        cam.OrthogonalizeViewUp()
        self._schedule_render()

    def pan(self, dx: float, dy: float) -> None:
        """Translate the camera so the scene follows a drag of (dx, dy) widget pixels."""
        cam = self._renderer.GetActiveCamera()
        h = max(self.height(), 1)
        if cam.GetParallelProjection():
            per_px = 2.0 * cam.GetParallelScale() / h
        else:
            per_px = 2.0 * cam.GetDistance() * np.tan(np.radians(cam.GetViewAngle()) / 2.0) / h
        fwd = np.array(cam.GetDirectionOfProjection())
        up = np.array(cam.GetViewUp())
        right = np.cross(fwd, up)
        right /= max(np.linalg.norm(right), 1e-12)
        up = np.cross(right, fwd)
        shift = (-dx * right + dy * up) * per_px
        cam.SetFocalPoint(*(np.array(cam.GetFocalPoint()) + shift))
        cam.SetPosition(*(np.array(cam.GetPosition()) + shift))
        self._schedule_render()

    def zoom(self, factor: float) -> None:
        """Move the camera towards the focal point by ``factor`` (> 1 zooms in)."""
        if factor <= 0:
            return
        self._renderer.GetActiveCamera().Dolly(float(factor))
        self._renderer.ResetCameraClippingRange()
        self._schedule_render()

    # ------------------------------------------------------------------ teardown
    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._render_timer.stop()
        try:
            self._backend.close()
        except Exception:  # already torn down by Qt  # noqa: BLE001 - must never fail the caller
            pass

    def closeEvent(self, event) -> None:  # noqa: N802
        self._shutdown()
        super().closeEvent(event)
