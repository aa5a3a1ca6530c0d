"""A row of the rendered views a view-based 3D detector scored (CLIP on point clouds): each shaded
view with its own anomaly map over the part, under one shared colour range, and the view's name,
so one can see how the 3D map was made (which view saw the defect, which views missed it)."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from core.colormaps import heatmap_overlay, percentile_range

from .picture import FitPicture

__all__ = ["ViewStripRow", "view_pictures"]

#: heatmap opacity over the shaded views
VIEW_OPACITY = 0.65


def view_pictures(strip: Any, cmap: str) -> tuple[list[np.ndarray], tuple[float, float]]:
    """RGB pictures (K x t x t x 3 uint8) of a :class:`core.render.ViewStrip`: the shaded view with
    its map coloured over the views' shared range (the plain render before scoring), and that range."""
    maps = getattr(strip, "maps", None)
    if maps is None:
        return [np.ascontiguousarray(im) for im in strip.images], (0.0, 1.0)
    lo, hi = percentile_range(maps)
    return [np.ascontiguousarray(heatmap_overlay(im, m, lo, hi, VIEW_OPACITY, cmap))
            for im, m in zip(strip.images, maps)], (lo, hi)


class _ViewPicture(QWidget):
    """One rendered view and its name under it."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.picture = FitPicture(40)
        self.caption = QLabel()
        self.caption.setObjectName("viewCaption")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.picture, 1)
        lay.addWidget(self.caption)

    @property
    def rgb(self) -> Optional[np.ndarray]:
        return self.picture.rgb

    def set_picture(self, rgb: np.ndarray, label: str) -> None:
        self.picture.set_rgb(rgb)
        self.caption.setText(label)


class ViewStripRow(QWidget):
    """The rendered views of a result (:attr:`DetectorResult.views`); hidden when it has none."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setObjectName("viewStrip")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 2, 0, 0)
        lay.setSpacing(3)
        self.title = QLabel()
        self.title.setObjectName("viewCaption")
        self.title.setWordWrap(True)
        self.title.setFixedWidth(118)
        lay.addWidget(self.title)
        self._lay = lay
        self.pictures: list[_ViewPicture] = []
        self.strip: Any = None
        self.cmap = "inferno"
        self.setVisible(False)

    def labels(self) -> list[str]:
        return list(self.strip.labels) if self.strip is not None else []

    def set_strip(self, strip: Any, cmap: Optional[str] = None) -> None:
        """Show a ViewStrip (None hides the row)."""
        self.strip = strip
        if cmap is not None:
            self.cmap = cmap
        if strip is None or getattr(strip, "k", 0) == 0:
            self.setVisible(False)
            return
        pics, (lo, hi) = view_pictures(strip, self.cmap)
        while len(self.pictures) < len(pics):
            p = _ViewPicture()
            self.pictures.append(p)
            self._lay.addWidget(p, 1)
        for p, rgb, label in zip(self.pictures, pics, strip.labels):
            p.set_picture(rgb, label)
            p.setVisible(True)
        for p in self.pictures[len(pics):]:
            p.setVisible(False)
        scored = strip.maps is not None
        self.title.setText(f"3D as {strip.k} rendered views" + (f"\nscored {lo:.3g} – {hi:.3g},\nback-projected "
                                                                 "to the points" if scored else "\n(not scored yet)"))
        self.setToolTip("The point cloud was rendered into these views (shaded depth), each view was scored "
                        "as an image, and each point took the mean score of the views that see it.")
        self.setVisible(True)
