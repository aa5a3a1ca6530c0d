"""The two render backends of :class:`app.views.cloud_view.CloudView`, behind one small protocol.

:class:`InteractorBackend`
    a :class:`pyvistaqt.QtInteractor` (a QOpenGLWidget) with VTK's own trackball camera, used when
    Qt runs on a real window system (xcb, wayland, windows, cocoa);
:class:`OffscreenBackend`
    a :class:`pyvista.Plotter` rendering off screen, its frames shown in a :class:`QLabel`, with
    the camera driven from Qt mouse events (left drag: orbit, wheel: zoom, right/middle drag: pan).
    Used under ``QT_QPA_PLATFORM=offscreen`` (where a QOpenGLWidget draws nothing) or when the
    environment variable ``MMAD_FORCE_OFFSCREEN_3D`` is set.

:func:`make_backend` picks one.  The view talks to a backend only through :class:`RenderBackend`.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Optional, Protocol

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from .picking import PickScene, pick_projected, pick_vtk

__all__ = ["INTERACTIVE_PLATFORMS", "InteractorBackend", "OffscreenBackend", "RenderBackend", "make_backend"]

#: Qt platforms on which a QOpenGLWidget (QtInteractor) actually draws.
INTERACTIVE_PLATFORMS = ("xcb", "wayland", "windows", "cocoa")
DEFAULT_SIZE = (640, 480)
CLICK_SLOP = 4


class CameraControls(Protocol):
    """What a backend's input handling may ask of the view."""

    def orbit(self, dx: float, dy: float) -> None: ...
    def pan(self, dx: float, dy: float) -> None: ...
    def zoom(self, factor: float) -> None: ...
    def reset_view(self) -> None: ...
    def click(self, x: float, y: float) -> None: ...


class RenderBackend(Protocol):
    """One way of getting the VTK scene on screen."""

    name: str          #: "interactor" or "offscreen"
    hint: str          #: shown in the view's caption ("" when the view is a normal 3D widget)
    eager: bool        #: present at once when no throttle wait is due (else on the next turn)
    plotter: Any       #: the pyvista plotter
    widget: QWidget    #: what the view puts in its layout

    def present(self) -> None:
        """Show the current scene (interactor: schedule the widget's repaint; off-screen: render)."""

    def render_sync(self) -> None:
        """Render synchronously now (measurements, read-backs)."""

    def grab(self) -> np.ndarray:
        """Render now and return the frame, H x W x 3 uint8."""

    def resize(self, w: int, h: int) -> bool:
        """Match the render window to the view's device-pixel size; True if it changed."""

    def pick(self, scene: PickScene, xd: float, yd: float) -> Optional[int]:
        """Full-cloud index of the point at device pixel (xd, yd), or None."""

    def close(self) -> None: ...


def use_interactor() -> bool:
    if os.environ.get("MMAD_FORCE_OFFSCREEN_3D"):
        return False
    name = QGuiApplication.platformName().lower()
    return any(name == p or name.startswith(p + "-") for p in INTERACTIVE_PLATFORMS)


def ensure_headless_gl_env() -> None:
    """Let VTK pick EGL directly when there is no display (avoids a fallback warning)."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def _is_click(press: Optional[QPointF], release: QPointF) -> bool:
    if press is None:
        return False
    d = release - press
    return abs(d.x()) + abs(d.y()) <= CLICK_SLOP


class _InteractorClicks(QObject):
    """Watches left clicks on the VTK widget (VTK still gets every event) and reports them."""

    def __init__(self, target: QWidget, controls: CameraControls):
        super().__init__(target)
        self._controls = controls
        self._press: Optional[QPointF] = None
        target.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        et = event.type()
        if et == QEvent.MouseButtonPress and event.button() == Qt.LeftButton:
            self._press = event.position()
        elif et == QEvent.MouseButtonRelease and event.button() == Qt.LeftButton and self._press is not None:
            press, self._press = self._press, None
            if _is_click(press, event.position()):
                self._controls.click(event.position().x(), event.position().y())
        return False


class _OffscreenMouse(QObject):
    """Qt mouse events on the view drive the camera: left drag orbits, right/middle drag pans,
    the wheel zooms, a double click resets, a click picks."""

    def __init__(self, target: QWidget, controls: CameraControls):
        super().__init__(target)
        self._controls = controls
        self._button = None
        self._last: Optional[QPointF] = None
        self._press: Optional[QPointF] = None
        target.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        et = event.type()
        c = self._controls
        if et == QEvent.MouseButtonPress:
            self._button, self._last, self._press = event.button(), event.position(), event.position()
        elif et == QEvent.MouseMove:
            if self._last is None:
                return False
            pos = event.position()
            dx, dy = pos.x() - self._last.x(), pos.y() - self._last.y()
            self._last = pos
            if self._button == Qt.LeftButton:
                c.orbit(dx, dy)
            elif self._button in (Qt.RightButton, Qt.MiddleButton):
                c.pan(dx, dy)
        elif et == QEvent.MouseButtonRelease:
            if event.button() == Qt.LeftButton and _is_click(self._press, event.position()):
                c.click(event.position().x(), event.position().y())
            self._button = self._last = self._press = None
        elif et == QEvent.Wheel:
            steps = event.angleDelta().y() / 120.0
            if steps:
                c.zoom(1.1 ** steps)
        elif et == QEvent.MouseButtonDblClick:
            c.reset_view()
        else:
            return False
        event.accept()
        return True


class InteractorBackend:
    """A pyvistaqt QtInteractor; renders in its own paintGL (timed by render-window observers)."""

    name = "interactor"
    hint = ""
    eager = True

    def __init__(self, view: QWidget, controls: CameraControls, on_start: Callable[[], None],
                 on_frame: Callable[[float], None]):
        from pyvistaqt import QtInteractor  # noqa: PLC0415

        self.plotter = QtInteractor(view, auto_update=False, multi_samples=0)
        self.widget = self.plotter
        self._clicks = _InteractorClicks(self.plotter, controls)
        self._on_start, self._on_frame = on_start, on_frame
        self._t0 = 0.0
        rw = self.plotter.render_window
        rw.AddObserver("StartEvent", self._render_started)
        rw.AddObserver("EndEvent", self._render_ended)

    def _render_started(self, *_: Any) -> None:
        self._t0 = time.perf_counter()
        self._on_start()            # this render draws the current state: a pending one is moot

    def _render_ended(self, *_: Any) -> None:
        if self._t0:
            self._on_frame(self._t0)
            self._t0 = 0.0

    def present(self) -> None:
        # Its paintGL always renders the VTK scene: rendering here as well would draw twice.
        QWidget.update(self.plotter)   # (QWidget's, not pyvista's BasePlotter.update)

    def render_sync(self) -> None:
        # The widget's next paintGL renders once more to show it: for measurements and
        # read-backs, not the interactive path.
        self.plotter.render()

    def grab(self) -> np.ndarray:
        self.plotter.render()
        img = self.plotter.screenshot(None, return_img=True)
        return np.ascontiguousarray(np.asarray(img)[..., :3], dtype=np.uint8)

    def resize(self, w: int, h: int) -> bool:
        return False                   # the widget sizes its own render window

    def pick(self, scene: PickScene, xd: float, yd: float) -> Optional[int]:
        return pick_vtk(scene, self.plotter.renderer, self.plotter.render_window, xd, yd)

    def close(self) -> None:
        self.plotter.close()


class OffscreenBackend:
    """An off-screen pyvista Plotter whose frames are shown in a QLabel."""

    name = "offscreen"
    hint = "off-screen render, drag to orbit"
    eager = False

    def __init__(self, view: QWidget, controls: CameraControls, on_start: Callable[[], None],
                 on_frame: Callable[[float], None]):
        import pyvista as pv  # noqa: PLC0415
        from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter  # noqa: PLC0415

        ensure_headless_gl_env()
        self._view = view
        self.plotter = pv.Plotter(off_screen=True, window_size=list(DEFAULT_SIZE))
        self.widget = self._label = QLabel(view)
        self._label.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self._label.setAttribute(Qt.WA_TransparentForMouseEvents, True)
        self._label.setMinimumSize(1, 1)
        self._label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)
        self._mouse = _OffscreenMouse(view, controls)
        self._on_frame = on_frame
        self._grabber = vtkWindowToImageFilter()
        self._grabber.SetInput(self.plotter.render_window)
        self._grabber.SetInputBufferTypeToRGB()
        self._grabber.ReadFrontBufferOff()
        self._grabber.ShouldRerenderOff()
        self._frame: Optional[np.ndarray] = None     # last frame (keeps the QImage's memory)
        self._qimage: Optional[QImage] = None
        self._closed = False

    def present(self) -> None:
        from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: PLC0415

        t0 = time.perf_counter()
        self.plotter.render_window.Render()
        self._grabber.Modified()
        self._grabber.Update()
        img = self._grabber.GetOutput()
        w, h, _ = img.GetDimensions()
        frame = vtk_to_numpy(img.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]
        self._frame = np.ascontiguousarray(frame)
        self._qimage = QImage(self._frame.data, w, h, 3 * w, QImage.Format_RGB888)
        pix = QPixmap.fromImage(self._qimage)
        pix.setDevicePixelRatio(self._view.devicePixelRatioF())
        self._label.setPixmap(pix)
        self._on_frame(t0)

    def render_sync(self) -> None:
        self.present()

    def grab(self) -> np.ndarray:
        if not self._closed or self._frame is None:
            self.present()
        return self._frame.copy()     # closed: the last frame

    def resize(self, w: int, h: int) -> bool:
        if (w, h) == tuple(int(v) for v in self.plotter.render_window.GetSize()):
            return False
        self.plotter.render_window.SetSize(w, h)
        return True

    def pick(self, scene: PickScene, xd: float, yd: float) -> Optional[int]:
        return pick_projected(scene, self.plotter.renderer, self.plotter.render_window, xd, yd)

    def close(self) -> None:
        self._closed = True
        self.plotter.close()


def make_backend(view: QWidget, controls: CameraControls, on_start: Callable[[], None],
                 on_frame: Callable[[float], None]) -> RenderBackend:
    """The interactor on a real window system, else the off-screen backend."""
    cls = InteractorBackend if use_interactor() else OffscreenBackend
    return cls(view, controls, on_start, on_frame)
