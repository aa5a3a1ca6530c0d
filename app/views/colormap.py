"""The colour bar widget; the lookup tables it shares with both views live in :mod:`core.colormaps`.

Both views map anomaly scores through the same 256-entry lookup tables (re-exported here), so one
:class:`ColorBar` describes both, and the CLI's PNGs use the same colours.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from core.colormaps import (COLORMAPS, NAN_COLOR, alpha_ramp, apply_colormap, check_colormap,  # noqa: F401
                            colorbar_image, colormap_indices, contrast_color, lut, score_colors, score_range)

__all__ = [
    "COLORMAPS",
    "NAN_COLOR",
    "alpha_ramp",
    "apply_colormap",
    "colormap_indices",
    "colorbar_image",
    "contrast_color",
    "lut",
    "ColorBar",
]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


class ColorBar(QWidget):
    """A vertical colour bar with its ``vmin``/``vmax`` labels and an optional threshold tick.

    Meant to sit between the image and cloud views, which map their scores with the same
    colormap and range.
    """

    _BAR_WIDTH = 14
    _MARGIN = 4

    def __init__(self, parent: Optional[QWidget] = None, name: str = "inferno"):
        super().__init__(parent)
        self._name = check_colormap(name)
        self._vmin = 0.0
        self._vmax = 1.0
        self._threshold: Optional[float] = None
        self._image_buf: Optional[np.ndarray] = None  # keeps the QImage's memory alive
        self._qimage: Optional[QImage] = None
        self.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Expanding)
        self._rebuild()

    # ------------------------------------------------------------------ API
    @property
    def colormap(self) -> str:
        return self._name

    @property
    def range(self) -> tuple[float, float]:
        return self._vmin, self._vmax

    @property
    def threshold(self) -> Optional[float]:
        return self._threshold

    def set_colormap(self, name: str) -> None:
        self._name = check_colormap(name)
        self._rebuild()
        self.update()

    def set_range(self, vmin: float, vmax: float) -> None:
        self._vmin = float(vmin)
        self._vmax = float(vmax)
        self.updateGeometry()
        self.update()

    def set_threshold(self, t: Optional[float]) -> None:
        self._threshold = None if t is None or not np.isfinite(t) else float(t)
        self.update()

    # ------------------------------------------------------------------ Qt
    def _rebuild(self) -> None:
        self._image_buf = colorbar_image(self._name, 256, self._BAR_WIDTH)
        h, w = self._image_buf.shape[:2]
        self._qimage = QImage(self._image_buf.data, w, h, 3 * w, QImage.Format_RGB888)

    def _label_width(self) -> int:
        fm = QFontMetrics(self.font())
        labels = [_fmt(self._vmin), _fmt(self._vmax)]
        if self._threshold is not None:
            labels.append(_fmt(self._threshold))
        return max(fm.horizontalAdvance(s) for s in labels) + 6

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        return QSize(self._BAR_WIDTH + 2 * self._MARGIN + self._label_width() + 8, 200)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(self._BAR_WIDTH + 2 * self._MARGIN + self._label_width(), 60)

    def _value_to_y(self, v: float, top: float, bottom: float) -> float:
        span = self._vmax - self._vmin
        t = 0.5 if span <= 0 else (v - self._vmin) / span
        t = min(max(t, 0.0), 1.0)
        return bottom - t * (bottom - top)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        fm = QFontMetrics(self.font())
        half = fm.height() / 2.0
        top = int(round(self._MARGIN + half))
        bottom = max(int(round(self.height() - self._MARGIN - half)), top + 1)
        bar = QRect(self._MARGIN, top, self._BAR_WIDTH, bottom - top)
        # A 1-px frame around (not over) the bar, so that every colour of the bar stays visible.
        p.fillRect(bar.adjusted(-1, -1, 1, 1), self.palette().windowText().color())
        p.drawImage(bar, self._qimage)
        p.setPen(QPen(self.palette().windowText().color()))
        x_text = bar.right() + 6
        p.drawText(QRectF(x_text, top - half, self.width() - x_text, 2 * half), Qt.AlignVCenter | Qt.AlignLeft,
                   _fmt(self._vmax))
        p.drawText(QRectF(x_text, bottom - half, self.width() - x_text, 2 * half), Qt.AlignVCenter | Qt.AlignLeft,
                   _fmt(self._vmin))
        if self._threshold is not None:
            y = self._value_to_y(self._threshold, top, bottom)
            r, g, b = contrast_color(self._name)
            p.setPen(QPen(QColor(r, g, b), 2))
            p.drawLine(bar.left() - 3, int(round(y)), bar.right() + 3, int(round(y)))
            p.setPen(QPen(self.palette().windowText().color()))
            # Keep the threshold label clear of the end labels.
            y_lab = min(max(y, top + 2 * half), bottom - 2 * half) if bottom - top > 4 * half else y
            p.drawText(QRectF(x_text, y_lab - half, self.width() - x_text, 2 * half),
                       Qt.AlignVCenter | Qt.AlignLeft, _fmt(self._threshold))
        p.end()
