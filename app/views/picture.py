"""A label that shows an RGB array scaled to its size, keeping the aspect ratio (the small
pictures of the modality-map strip and of the rendered-view strip)."""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

__all__ = ["FitPicture"]


class FitPicture(QLabel):
    """:meth:`set_rgb` an H x W x 3 uint8 array (None clears); :attr:`rgb` is what is shown."""

    def __init__(self, min_side: int = 60, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(min_side, min_side)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.rgb: Optional[np.ndarray] = None
        self._pix: Optional[QPixmap] = None

    def set_rgb(self, rgb: Optional[np.ndarray]) -> None:
        if rgb is None:
            self.rgb, self._pix = None, None
            self.setPixmap(QPixmap())
            return
        self.rgb = np.ascontiguousarray(rgb)
        h, w = self.rgb.shape[:2]
        self._pix = QPixmap.fromImage(QImage(self.rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())
        self.setText("")
        self._fit()

    def _fit(self) -> None:
        if self._pix is not None:
            self.setPixmap(self._pix.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                            Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()
