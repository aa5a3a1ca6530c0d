"""2D view: the RGB image with the anomaly heatmap blended over it.

:class:`ImageView` is a :class:`QGraphicsView` holding one pixmap (the blended image) and vector
overlays: the threshold contour of the heatmap, the ground-truth outline and a crosshair marker.
The overlays are :class:`QPainterPath` items drawn with cosmetic pens, so they stay one or two
screen pixels wide at any zoom.

The overlay is *score-weighted*: a pixel of score ``s`` is blended with weight

    ``alpha(s) = opacity * t(s) ** gamma``,  ``t(s) = clip((s - vmin) / (vmax - vmin), 0, 1)``

(``t`` quantised to the colormap's 256 entries, see :func:`~app.views.colormap.alpha_ramp`), so
the photo stays readable where scores are low and the anomalous region stands out in full colour.
NaN pixels get no overlay.  ``set_alpha_gamma(0)`` gives the classic uniform blend.

Blending is split so that a slider move costs as little as possible:

* ``set_image`` / ``set_heatmap`` / ``set_colormap`` / ``set_alpha_gamma`` colour-map the heatmap
  once into an *overlay* image plus a per-pixel weight map (one index computation, two table
  lookups);
* ``set_opacity`` (slider) is then one ``cv2.blendLinear`` of two uint8 images into a
  preallocated buffer that a :class:`QImage` wraps (about 2 ms for 800 x 800 here).

A new heatmap of the same size (a fusion slider) only redoes the overlay, the blend and the
threshold contour: the ground-truth outline and the view geometry are kept.

Coordinates: scene units are image pixels, pixel ``(row, col)`` covers the scene square
``[col, col + 1) x [row, row + 1)``.
"""
from __future__ import annotations

from typing import Any, Optional

import cv2
import numpy as np
from PySide6.QtCore import QByteArray, QDataStream, QIODevice, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QWidget,
)

from core.errors import InputError

from .colormap import alpha_ramp, colormap_indices, contrast_color, lut

__all__ = ["ImageView", "GT_COLOR", "DEFAULT_ALPHA_GAMMA"]

#: Colour of the ground-truth outline.
GT_COLOR = (0, 255, 0)
_NO_RGB_BACKGROUND = 40  # grey level behind a heatmap shown without an RGB image
_MIN_ZOOM = 0.02  # view pixels per image pixel
_MAX_ZOOM = 64.0
_CLICK_SLOP = 4  # px a press may move and still count as a click
#: Text shown while the view has nothing to show (see ``ImageView.set_placeholder``).
NO_IMAGE_TEXT = "no RGB image"
#: Default exponent of the score-weighted overlay (see the module docstring).
DEFAULT_ALPHA_GAMMA = 1.5
_KEEP = object()  # "leave unchanged" marker for keyword arguments
#: Vertex budget of the threshold contour (see ``_contours``); smooth maps stay far below it.
MAX_CONTOUR_POINTS = 20_000
#: ... and its budget of separate contours (the longest are kept).
MAX_CONTOURS = 800


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        raise InputError(None, f"the RGB image must be 8-bit (uint8), got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(None, f"the RGB image must be H x W x 3, got shape {a.shape}")
    return np.ascontiguousarray(a)


def _fit_map(m: np.ndarray, shape: tuple[int, int], what: str, nearest: bool) -> np.ndarray:
    """Resize a 2D map to ``shape`` (bilinear, or nearest when asked or when it holds NaN)."""
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0:
        raise InputError(None, f"the {what} must be a non-empty H x W array, got shape {m.shape}")
    if m.shape == tuple(shape):
        return m
    interp = cv2.INTER_NEAREST if nearest or not np.isfinite(m).all() else cv2.INTER_LINEAR
    return cv2.resize(m, (int(shape[1]), int(shape[0])), interpolation=interp)


def _contours(mask: np.ndarray, max_points: Optional[int] = None,
              max_contours: Optional[int] = None) -> list[np.ndarray]:
    """Outer and inner boundaries of a bool mask as cv2 contours (k x 1 x 2, x/y).

    With a budget (``max_points`` vertices, ``max_contours`` contours), the boundary of a
    speckled, noisy mask is cut down to its longest contours that fit, kept in their original
    order: painting tens of thousands of tiny contours takes seconds and shows nothing readable.
    """
    if not mask.any():
        return []
    found, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    found = list(found)
    lens = np.fromiter((len(c) for c in found), np.int64, count=len(found))
    over_points = max_points is not None and int(lens.sum()) > max_points
    over_count = max_contours is not None and len(found) > max_contours
    if over_points or over_count:
        order = np.argsort(-lens, kind="stable")
        if over_points:
            order = order[np.cumsum(lens[order]) <= max_points]
        if max_contours is not None:
            order = order[:max_contours]
        found = [found[i] for i in np.sort(order)]
    return found


def _contour_path(contours: list[np.ndarray]) -> QPainterPath:
    """A QPainterPath of closed polygons through the pixel centres of cv2 contours.

    Noisy maps give tens of thousands of tiny contours; building them point by point through the
    Python bindings takes about half a second for an 800 x 800 map.  Instead the whole path is
    written with numpy in QDataStream's documented QPainterPath format (element count; per
    element: type, x, y; start of the last subpath; fill rule) and read back in one call, which
    is more than ten times faster.
    """
    if not contours:
        return QPainterPath()
    lens = np.fromiter((len(c) for c in contours), np.int64, count=len(contours))
    starts = np.concatenate([[0], np.cumsum(lens + 1)[:-1]])  # each polygon gets a closing point
    n = int(lens.sum() + len(contours))
    closing = starts + lens
    rec = np.empty(n, dtype=[("type", ">i4"), ("x", ">f8"), ("y", ">f8")])
    keep = np.ones(n, bool)
    keep[closing] = False
    xy = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64) + 0.5
    rec["x"][keep] = xy[:, 0]
    rec["y"][keep] = xy[:, 1]
    rec["x"][closing] = rec["x"][starts]
    rec["y"][closing] = rec["y"][starts]
    move, line = int(QPainterPath.ElementType.MoveToElement.value), int(QPainterPath.ElementType.LineToElement.value)
    rec["type"] = line
    rec["type"][starts] = move
    # Drop what QPainterPath.lineTo / moveTo would drop: repeated points and lone moves
    # (one-pixel contours), so the result equals the path built through the Qt API.
    same = np.zeros(n, bool)
    same[1:] = (rec["x"][1:] == rec["x"][:-1]) & (rec["y"][1:] == rec["y"][:-1])
    rec = rec[~(same & (rec["type"] == line))]
    is_move = rec["type"] == move
    next_is_move = np.zeros(rec.shape[0], bool)  # (Qt keeps a trailing lone move)
    next_is_move[:-1] = is_move[1:]
    rec = rec[~(is_move & next_is_move)]
    n = int(rec.shape[0])
    if n == 0:
        return QPainterPath()
    last_start = int(np.flatnonzero(rec["type"] == move)[-1])
    blob = np.array([n], ">i4").tobytes() + rec.tobytes() + np.array([last_start, 0], ">i4").tobytes()
    data = QByteArray(blob)  # must outlive the stream
    stream = QDataStream(data, QIODevice.ReadOnly)
    path = QPainterPath()
    stream >> path
    if stream.status() == QDataStream.Status.Ok and path.elementCount() == n:
        return path
    # Should the format ever change: the slow, element-by-element construction.
    path = QPainterPath()
    for c in contours:
        pts = c.reshape(-1, 2).astype(np.float64) + 0.5
        poly = QPolygonF([QPointF(x, y) for x, y in pts])
        poly.append(QPointF(pts[0, 0], pts[0, 1]))
        path.addPolygon(poly)
    return path


def _cosmetic_pen(rgb: tuple[int, int, int], width: float) -> QPen:
    pen = QPen(QColor(*rgb), width)
    pen.setCosmetic(True)
    pen.setJoinStyle(Qt.RoundJoin)
    return pen


class ImageView(QGraphicsView):
    """RGB image + heatmap overlay with threshold contour, GT outline and a crosshair marker.

    Mouse: wheel zooms around the cursor, left drag pans, double click fits the image, a click
    (press and release without moving) emits :attr:`pixelClicked`, moving over the image emits
    :attr:`pixelHovered` whenever the pixel under the cursor changes.
    """

    #: (row, col) of the image pixel under the cursor; emitted when it changes.
    pixelHovered = Signal(int, int)
    #: (row, col) of a clicked image pixel.
    pixelClicked = Signal(int, int)
    #: The cursor left the image (or the view).
    hoverLeft = Signal()
    #: The viewport finished painting (benchmarks and tests use it to time repaints).
    painted = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setFrameShape(QFrame.NoFrame)
        self.setBackgroundBrush(QColor(30, 30, 30))
        self.setRenderHint(QPainter.Antialiasing, True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setTransformationAnchor(QGraphicsView.AnchorViewCenter)
        self.setResizeAnchor(QGraphicsView.AnchorViewCenter)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.viewport().setMouseTracking(True)
        self.viewport().setCursor(Qt.CrossCursor)

        self._pixmap_item = QGraphicsPixmapItem()
        self._pixmap_item.setTransformationMode(Qt.FastTransformation)  # crisp pixels when zoomed
        self._pixmap_item.setShapeMode(QGraphicsPixmapItem.BoundingRectShape)
        self._threshold_item = QGraphicsPathItem()
        self._gt_item = QGraphicsPathItem()
        self._marker_items = (QGraphicsPathItem(), QGraphicsPathItem())
        # reviewer's region marks: false positives (dashed light blue), true defects (dashed red)
        self._mark_items = {"false_positive": QGraphicsPathItem(), "true_defect": QGraphicsPathItem()}
        for kind, color in (("false_positive", (120, 200, 255)), ("true_defect", (255, 70, 70))):
            pen = _cosmetic_pen(color, 2.5)
            pen.setStyle(Qt.PenStyle.DashLine)
            self._mark_items[kind].setPen(pen)
        for z, item in enumerate((self._pixmap_item, self._gt_item, self._threshold_item,
                                  *self._mark_items.values(), *self._marker_items)):
            item.setZValue(z)
            self.scene().addItem(item)
        self._gt_item.setPen(_cosmetic_pen(GT_COLOR, 2.0))
        # Contours of real maps have thousands of segments.  Stroked straight into the view
        # (antialiased, under the view's clip) an 800 x 800 map's contour took ~400 ms per
        # paint here; rasterised into a per-item device-resolution cache it takes a few ms, and
        # repaints that do not change the contour (hover, crosshair) reuse the cache.
        for item in (self._threshold_item, self._gt_item):
            item.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        cross = QPainterPath()
        for (x0, y0), (x1, y1) in (((-12, 0), (-3, 0)), ((3, 0), (12, 0)), ((0, -12), (0, -3)), ((0, 3), (0, 12))):
            cross.moveTo(x0, y0)
            cross.lineTo(x1, y1)
        cross.addEllipse(QPointF(0, 0), 2.0, 2.0)
        for item, color, width in zip(self._marker_items, ((0, 0, 0), (255, 255, 255)), (4.0, 1.5)):
            item.setPath(cross)
            item.setPen(_cosmetic_pen(color, width))
            item.setFlag(QGraphicsItem.ItemIgnoresTransformations, True)
            item.setVisible(False)

        # Inputs.
        self._rgb: Optional[np.ndarray] = None
        self._heat_raw: Optional[np.ndarray] = None
        self._vmin = 0.0
        self._vmax = 1.0
        self._opacity = 0.5
        self._gamma = DEFAULT_ALPHA_GAMMA
        self._cmap = "inferno"
        self._threshold: Optional[float] = None
        self._gt_raw: Optional[np.ndarray] = None
        self._show_gt = True
        self._marker: Optional[tuple[int, int]] = None
        self._placeholder = NO_IMAGE_TEXT
        # Derived (see _rebuild_layers / _recomposite).
        self._shape: Optional[tuple[int, int]] = None
        self._heat: Optional[np.ndarray] = None
        self._base: Optional[np.ndarray] = None
        self._overlay: Optional[np.ndarray] = None
        self._weight: Optional[np.ndarray] = None  # H x W float32 overlay weight in [0, 1]
        self._alpha: Optional[np.ndarray] = None   # H x W float32 scratch: weight * opacity
        self._alpha_bg: Optional[np.ndarray] = None  # ... and 1 - that
        self._buf: Optional[np.ndarray] = None
        self._qimage: Optional[QImage] = None  # wraps self._buf: keep both alive together
        self._threshold_contours: list[np.ndarray] = []
        self._gt_contours: list[np.ndarray] = []
        self._user_zoomed = False
        self._press_pos = None
        self._last_hover: Optional[tuple[int, int]] = None

    # ------------------------------------------------------------------ public API
    @property
    def image_shape(self) -> Optional[tuple[int, int]]:
        """(H, W) of the displayed grid, or None when nothing is shown."""
        return self._shape

    @property
    def opacity(self) -> float:
        return self._opacity

    @property
    def alpha_gamma(self) -> float:
        """Exponent of the score-weighted overlay (0: uniform overlay)."""
        return self._gamma

    @property
    def colormap(self) -> str:
        return self._cmap

    @property
    def threshold(self) -> Optional[float]:
        return self._threshold

    @property
    def marker(self) -> Optional[tuple[int, int]]:
        return self._marker

    def set_image(self, rgb: Optional[np.ndarray]) -> None:
        """Show an H x W x 3 uint8 image (H x W grey and H x W x 4 are accepted); None: none."""
        self._rgb = None if rgb is None else _as_rgb(rgb)
        self._rebuild_layers()

    def set_heatmap(self, m: Optional[np.ndarray], vmin: float = 0.0, vmax: float = 1.0,
                    threshold: Any = _KEEP) -> None:
        """Overlay an H x W float map coloured over [vmin, vmax]; NaN pixels get no overlay.

        A map of another size than the image is resized to it (bilinear; nearest when it holds
        NaN).  None removes the overlay.  ``threshold`` (optional) sets the contour level in the
        same call, so the contour is traced once (see :meth:`set_threshold`).
        """
        if not (np.isfinite(vmin) and np.isfinite(vmax)):
            raise InputError(None, f"the heatmap colour range must be finite, got {vmin} .. {vmax}")
        self._heat_raw = None if m is None else np.asarray(m, dtype=np.float32)
        if self._heat_raw is not None and self._heat_raw.ndim != 2:
            bad = self._heat_raw.shape
            self._heat_raw = None
            raise InputError(None, f"the heatmap must be an H x W array, got shape {bad}")
        self._vmin = float(vmin)
        self._vmax = float(vmax)
        if threshold is not _KEEP:
            self._threshold = None if threshold is None or not np.isfinite(threshold) else float(threshold)
        if self._grid_shape() != self._shape or self._buf is None:
            self._rebuild_layers()
            return
        # Same grid (e.g. a fusion slider): the image, GT outline and view geometry stay.
        self._heat = None if self._heat_raw is None else _fit_map(self._heat_raw, self._shape, "heatmap",
                                                                  nearest=False)
        self._rebuild_overlay()
        self._recomposite()
        self._update_threshold_contour()

    def set_opacity(self, a: float) -> None:
        """Peak heatmap opacity in [0, 1] (0: the plain image; 1: the plain colour at the top of
        the range -- lower scores are blended less, see :meth:`set_alpha_gamma`)."""
        self._opacity = float(min(max(a, 0.0), 1.0))
        self._recomposite()

    def set_alpha_gamma(self, gamma: float) -> None:
        """How fast the overlay fades with the score: weight ``t ** gamma`` of the normalised
        score ``t`` (0: a uniform overlay; 1: linear; larger: only high scores show)."""
        alpha_ramp(gamma)  # validates
        self._gamma = float(gamma)
        self._rebuild_overlay()
        self._recomposite()

    def set_colormap(self, name: str) -> None:
        lut(name)  # validates the name
        self._cmap = name
        self._threshold_item.setPen(_cosmetic_pen(contrast_color(name), 2.0))
        self._rebuild_overlay()
        self._recomposite()

    def set_threshold(self, t: Optional[float]) -> None:
        """Draw the contour of ``heatmap >= t`` (None or NaN: no contour)."""
        self._threshold = None if t is None or not np.isfinite(t) else float(t)
        self._update_threshold_contour()

    def set_gt(self, mask: Optional[np.ndarray]) -> None:
        """Ground-truth mask (H x W, nonzero = anomalous) drawn as a green outline."""
        self._gt_raw = None if mask is None else np.asarray(mask)
        if self._gt_raw is not None and self._gt_raw.ndim != 2:
            bad = self._gt_raw.shape
            self._gt_raw = None
            raise InputError(None, f"the ground-truth mask must be an H x W array, got shape {bad}")
        self._update_gt_contour()

    def set_show_gt(self, show: bool) -> None:
        self._show_gt = bool(show)
        self._gt_item.setVisible(self._show_gt)

    def set_marker(self, rc: Optional[tuple[int, int]]) -> None:
        """Crosshair at pixel (row, col); None hides it."""
        self._marker = None if rc is None else (int(rc[0]), int(rc[1]))
        visible = self._marker is not None and self._shape is not None
        for item in self._marker_items:
            item.setVisible(visible)
            if visible:
                item.setPos(self._marker[1] + 0.5, self._marker[0] + 0.5)

    def set_marks(self, marks: dict) -> None:
        """Draw the reviewer's region marks: ``{"false_positive": [polygon, ...], "true_defect": [...]}``
        with polygons as ``[[x, y], ...]`` pixel vertices (bounding boxes given as 4 corners)."""
        for kind, item in self._mark_items.items():
            polys = [np.asarray(p, np.float64).reshape(-1, 2) for p in marks.get(kind, []) if len(p) >= 3]
            item.setPath(_contour_path(polys))

    def marks_drawn(self) -> dict:
        return {k: item.path().elementCount() for k, item in self._mark_items.items()}

    def set_placeholder(self, text: Optional[str]) -> None:
        """Text shown centred while there is neither an image nor a heatmap (None: the default
        "no RGB image"), e.g. "loading…" while a sample is read."""
        self._placeholder = NO_IMAGE_TEXT if text is None else str(text)
        self.viewport().update()

    def fit_view(self) -> None:
        """Zoom and centre so that the whole image fits the view."""
        self._user_zoomed = False
        if self._shape is None:
            self.resetTransform()
            return
        h, w = self._shape
        self.fitInView(QRectF(0, 0, w, h), Qt.KeepAspectRatio)

    def zoom(self) -> float:
        """Current scale: view pixels per image pixel."""
        return float(self.transform().m11())

    def composited(self) -> Optional[np.ndarray]:
        """H x W x 3 uint8 copy of what the view shows at 1:1 (None when nothing is shown).

        That is the blended image (exactly the pixmap's pixels), with the threshold contour and (when shown) the GT outline
        burnt in one pixel wide in their display colours; the crosshair is not included.
        """
        if self._buf is None:
            return None
        out = self._buf.copy()
        if self._show_gt and self._gt_contours:
            cv2.drawContours(out, self._gt_contours, -1, GT_COLOR, 1)
        if self._threshold_contours:
            cv2.drawContours(out, self._threshold_contours, -1, contrast_color(self._cmap), 1)
        return out

    def blended(self) -> Optional[np.ndarray]:
        """The image + heatmap blend only (no contours), as a read-only view of the buffer."""
        if self._buf is None:
            return None
        v = self._buf.view()
        v.setflags(write=False)
        return v

    def overlay_alpha(self) -> Optional[np.ndarray]:
        """H x W float32 copy of the per-pixel overlay weight used by the blend (opacity included;
        None without a heatmap)."""
        if self._weight is None:
            return None
        return self._weight * np.float32(self._opacity)

    # ------------------------------------------------------------------ layers
    def _grid_shape(self) -> Optional[tuple[int, int]]:
        """(H, W) of the displayed grid for the current inputs."""
        if self._rgb is not None:
            return int(self._rgb.shape[0]), int(self._rgb.shape[1])
        if self._heat_raw is not None:
            return int(self._heat_raw.shape[0]), int(self._heat_raw.shape[1])
        return None

    def _rebuild_layers(self) -> None:
        """Recompute everything that depends on the image / heatmap shapes."""
        shape = self._grid_shape()
        self._heat = None if self._heat_raw is None or shape is None else _fit_map(
            self._heat_raw, shape, "heatmap", nearest=False)
        old_shape = self._shape
        self._shape = None if shape is None else (int(shape[0]), int(shape[1]))
        if self._rgb is not None:
            self._base = self._rgb
        elif self._shape is not None:
            self._base = np.full((*self._shape, 3), _NO_RGB_BACKGROUND, np.uint8)
        else:
            self._base = None
        self._buf = None if self._shape is None else np.empty((*self._shape, 3), np.uint8)
        self._alpha = None if self._shape is None else np.empty(self._shape, np.float32)
        self._alpha_bg = None if self._shape is None else np.empty(self._shape, np.float32)
        self._rebuild_overlay()
        self._recomposite()
        self._update_threshold_contour()
        self._update_gt_contour()
        self.set_marker(self._marker)
        if self._shape is not None:
            h, w = self._shape
            self.scene().setSceneRect(QRectF(-w, -h, 3 * w, 3 * h))  # room to pan past the edges
        if self._shape != old_shape or not self._user_zoomed:
            self.fit_view()
        self.viewport().update()

    def _rebuild_overlay(self) -> None:
        """Colour-map the heatmap and compute the per-pixel overlay weight.

        NaN pixels take the base image and weight 0, so blending leaves them as they are.
        """
        if self._heat is None or self._base is None:
            self._overlay = None
            self._weight = None
            return
        idx = colormap_indices(self._heat, self._vmin, self._vmax)
        colored = np.take(lut(self._cmap), idx, axis=0)
        weight = np.take(alpha_ramp(self._gamma), idx)
        invalid = ~np.isfinite(self._heat)
        if invalid.any():
            colored[invalid] = self._base[invalid]
            weight[invalid] = 0.0
        self._overlay = colored
        self._weight = weight

    def _recomposite(self) -> None:
        """Blend base and overlay at the current opacity into the display buffer."""
        if self._buf is None:
            self._qimage = None
            self._pixmap_item.setPixmap(QPixmap())
            return
        if self._overlay is None or (self._rgb is not None and self._opacity == 0.0):
            np.copyto(self._buf, self._base)
        elif self._rgb is None:
            np.copyto(self._buf, self._overlay)  # heatmap only: nothing to blend with
        else:
            a = np.multiply(self._weight, np.float32(self._opacity), out=self._alpha)
            np.subtract(np.float32(1.0), a, out=self._alpha_bg)
            # dst = (w1 * base + w2 * overlay) / (w1 + w2), rounded; written in place (the QImage
            # below wraps self._buf).
            out = cv2.blendLinear(self._base, self._overlay, self._alpha_bg, a, dst=self._buf)
            if out is not None and out.ctypes.data != self._buf.ctypes.data:
                np.copyto(self._buf, out)
        h, w = self._shape
        self._qimage = QImage(self._buf.data, w, h, 3 * w, QImage.Format_RGB888)
        self._pixmap_item.setPixmap(QPixmap.fromImage(self._qimage))

    def _update_threshold_contour(self) -> None:
        if self._heat is None or self._threshold is None:
            self._threshold_contours = []
        else:
            with np.errstate(invalid="ignore"):
                self._threshold_contours = _contours(self._heat >= self._threshold, MAX_CONTOUR_POINTS,
                                                     MAX_CONTOURS)
        self._threshold_item.setPen(_cosmetic_pen(contrast_color(self._cmap), 2.0))
        self._threshold_item.setPath(_contour_path(self._threshold_contours))

    def _update_gt_contour(self) -> None:
        if self._gt_raw is None or self._shape is None:
            self._gt_contours = []
        else:
            gt = _fit_map(self._gt_raw.astype(np.uint8), self._shape, "ground-truth mask", nearest=True)
            self._gt_contours = _contours(gt > 0)
        self._gt_item.setPath(_contour_path(self._gt_contours))
        self._gt_item.setVisible(self._show_gt)

    # ------------------------------------------------------------------ mouse / painting
    def _pixel_at(self, pos) -> Optional[tuple[int, int]]:
        if self._shape is None:
            return None
        p = self.mapToScene(pos.toPoint() if hasattr(pos, "toPoint") else pos)
        r, c = int(np.floor(p.y())), int(np.floor(p.x()))
        if 0 <= r < self._shape[0] and 0 <= c < self._shape[1]:
            return r, c
        return None

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if steps == 0 or self._shape is None:
            return
        self.zoom_at(event.position(), 1.25 ** steps)
        event.accept()

    def zoom_at(self, pos, factor: float) -> None:
        """Scale by ``factor`` keeping the scene point under viewport position ``pos`` in place.

        Done by hand rather than with ``AnchorUnderMouse``, which follows the global cursor
        position and so ignores synthetic events (and the offscreen platform).
        """
        if self._shape is None or factor <= 0:
            return
        z = self.zoom()
        factor = min(max(z * factor, _MIN_ZOOM), _MAX_ZOOM) / z
        vp = pos.toPoint() if hasattr(pos, "toPoint") else pos
        anchor = self.mapToScene(vp)
        self._user_zoomed = True
        self.scale(factor, factor)
        drift = self.mapFromScene(anchor) - vp
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + drift.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + drift.y())

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.LeftButton:
            self._press_pos = event.position()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        super().mouseMoveEvent(event)
        if self._press_pos is not None:
            d = event.position() - self._press_pos
            if abs(d.x()) + abs(d.y()) > _CLICK_SLOP:
                self._user_zoomed = True  # panned away from the fitted view
        rc = self._pixel_at(event.position())
        if rc != self._last_hover:
            self._last_hover = rc
            if rc is None:
                self.hoverLeft.emit()
            else:
                self.pixelHovered.emit(*rc)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        super().mouseReleaseEvent(event)
        if event.button() == Qt.LeftButton and self._press_pos is not None:
            d = event.position() - self._press_pos
            self._press_pos = None
            if abs(d.x()) + abs(d.y()) <= _CLICK_SLOP:
                rc = self._pixel_at(event.position())
                if rc is not None:
                    self.pixelClicked.emit(*rc)
        self.viewport().setCursor(Qt.CrossCursor)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        self.fit_view()
        event.accept()

    def leaveEvent(self, event) -> None:  # noqa: N802
        if self._last_hover is not None:
            self._last_hover = None
            self.hoverLeft.emit()
        super().leaveEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if not self._user_zoomed:
            self.fit_view()

    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        self.painted.emit()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        if self._rgb is not None:
            return
        painter.save()
        painter.resetTransform()
        painter.setPen(QColor(200, 200, 200))
        vp = QRectF(self.viewport().rect())
        if self._shape is None:
            painter.drawText(vp, Qt.AlignCenter | Qt.TextWordWrap, self._placeholder)
        else:
            painter.drawText(vp.adjusted(8, 6, -8, -6), Qt.AlignTop | Qt.AlignLeft, "no RGB image (heatmap only)")
        painter.restore()
