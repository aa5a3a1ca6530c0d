"""A strip of small maps side by side: each per-modality component map of a result (RGB, 3D,
other detector components) and the fused map, each coloured over its own range (shown in its
caption), so one can see which modality found what; below them, for view-based 3D detectors, the
rendered views with their own maps (:mod:`.view_strip`)."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from core.colormaps import percentile_range

from .colormap import NAN_COLOR, apply_colormap
from .picture import FitPicture
from .view_strip import ViewStripRow

__all__ = ["MapStrip", "MapThumb", "component_title"]

_TITLES = {"rgb": "RGB", "image": "RGB", "color": "RGB", "geometry": "3D", "points": "3D", "xyz": "3D",
           "depth": "3D", "fused": "Fused"}


def component_title(name: str) -> str:
    """A short caption for a component name ("rgb" -> "RGB", "geometry" -> "3D")."""
    return _TITLES.get(name.lower(), name.replace("_", " "))


def map_range(m: np.ndarray) -> tuple[float, float]:
    """The 1st-99.5th percentile of the finite values (0, 1 without any)."""
    return percentile_range(m)


class MapThumb(QWidget):
    """One small coloured map with a caption; the picture keeps its aspect ratio."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        self.caption = QLabel()
        self.caption.setObjectName("viewCaption")
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.picture = FitPicture(60)
        lay.addWidget(self.caption)
        lay.addWidget(self.picture, 1)

    @property
    def rgb(self) -> Optional[np.ndarray]:
        return self.picture.rgb

    def set_map(self, title: str, m: Optional[np.ndarray], cmap: str) -> None:
        if m is None:
            self.caption.setText(title)
            self.picture.set_rgb(None)
            self.picture.setText("per-point scores only\n(see the 3D view)")
            return
        m = np.asarray(m, np.float32)
        lo, hi = map_range(m)
        rgb = apply_colormap(m, lo, hi, cmap)
        rgb[~np.isfinite(m)] = NAN_COLOR
        self.picture.set_rgb(rgb)
        self.caption.setText(f"{title} · {lo:.3g} – {hi:.3g}")


class MapStrip(QWidget):
    """Component maps of a :class:`core.detectors.base.DetectorResult` and its fused map, side by side."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setObjectName("mapStrip")
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        self._lay = QHBoxLayout()
        self._lay.setContentsMargins(0, 2, 0, 0)
        self._lay.setSpacing(6)
        outer.addLayout(self._lay, 3)
        #: the rendered views of view-based 3D detectors (CLIP), under the maps
        self.views = ViewStripRow()
        outer.addWidget(self.views, 2)
        self.thumbs: list[MapThumb] = []
        self.empty = QLabel("Per-modality maps appear here once the sample is analysed.")
        self.empty.setObjectName("hint")
        self._lay.addWidget(self.empty)
        self.setMinimumHeight(110)
        self.cmap = "inferno"
        self._result: Any = None
        self._titles: list[str] = []

    def titles(self) -> list[str]:
        """Captions of the maps shown, in order ("RGB", "3D", "Fused")."""
        return list(self._titles)

    def set_colormap(self, name: str) -> None:
        self.cmap = name
        if self._result is not None:
            self.set_result(self._result)

    def set_result(self, res: Any) -> None:
        """Show ``res.components.maps`` (and point-only components) and ``res.pixel_map``; None clears."""
        self._result = res
        items: list[tuple[str, Optional[np.ndarray]]] = []
        if res is not None:
            comps = res.components
            for name, m in comps.maps.items():
                if m is not None and np.ndim(m) == 2:
                    items.append((component_title(name), m))
            for name in comps.point_maps:
                if name not in comps.maps:
                    items.append((component_title(name), None))
            if res.pixel_map is not None:
                items.append(("Fused", res.pixel_map))
        while len(self.thumbs) < len(items):
            t = MapThumb()
            self.thumbs.append(t)
            self._lay.addWidget(t, 1)
        for t, (title, m) in zip(self.thumbs, items):
            t.set_map(title, m, self.cmap)
            t.setVisible(True)
        for t in self.thumbs[len(items):]:
            t.setVisible(False)
        self.empty.setVisible(not items)
        self._titles = [title for title, _m in items]
        self.views.set_strip(getattr(res, "views", None), self.cmap)
