"""The inspector: one sample and its detector result in the two linked views.

:class:`InspectorView` takes a :class:`core.sample.Sample` (:meth:`~InspectorView.show_sample`) and
a :class:`core.detectors.base.DetectorResult` (:meth:`~InspectorView.show_result`) and shows them:
the RGB image with the anomaly heatmap (:class:`ImageView`), the shared colour bar and the 3D
cloud coloured by per-point score (:class:`CloudView`), with the threshold, the ground-truth
toggle and 2D <-> 3D linking (hovering / clicking a pixel marks its 3D point, picking a point
marks its pixel).  It knows nothing of the session: the controllers feed it (:attr:`InspectorView.key`
is the key of the sample selected for it, set as soon as it is selected).

Its view-option widgets (overlay opacity, "fade low scores", colormap, ground truth, point size,
fit / reset buttons) are built here and placed in the window's toolbar by the window, as are the
modality badge (:attr:`InspectorView.badge`: what the result used, e.g. "RGB ✓ 3D ✓ fused at image
level") and the strip of per-modality maps (:attr:`InspectorView.map_strip`, RGB / 3D / fused side
by side, toggled by :meth:`InspectorView.toggle_components`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QLabel, QSlider, QSpinBox, QSplitter, QToolButton, QVBoxLayout,
                               QWidget)

from core.colormaps import score_range
from core.detectors.base import DetectorResult
from core.sample import Sample
from core.session import display_image, pixel_to_point, point_to_pixel

from .views import COLORMAPS, CloudView, ColorBar, ImageView
from .views.image_view import DEFAULT_ALPHA_GAMMA
from .views.map_strip import MapStrip
from .settings import POINT_SIZE_RANGE

__all__ = ["InspectorView", "ViewPane", "HOVER_INTERVAL_MS", "CLOUD_BLEND_GAMMA", "modality_text"]

HOVER_INTERVAL_MS = 60     # hover → 3D marker updates are coalesced to this period
CLOUD_BLEND_GAMMA = 1.0    # score-weighted point colours when "Fade low scores" is on
_NAV_KEYS = {Qt.Key.Key_Down: 1, Qt.Key.Key_Right: 1, Qt.Key.Key_Up: -1, Qt.Key.Key_Left: -1,
             Qt.Key.Key_PageDown: 10, Qt.Key.Key_PageUp: -10}


def modality_text(res: DetectorResult) -> str:
    """The result's own words for the modalities it used, else what its components show."""
    if res.modalities:
        return res.modalities
    names = {n.lower() for n in list(res.components.maps) + list(res.components.point_maps)}
    names |= {n.split("_", 1)[0] for n in names}     # "rgb_text", "3d_visual" name their modality first
    if "3d" in names:
        names.add("geometry")
    has_rgb = bool(names & {"rgb", "image", "color"})
    has_3d = bool(names & {"geometry", "points", "xyz", "depth"})
    if not names:
        return ""
    return f"RGB {'✓' if has_rgb else '✗'} 3D {'✓' if has_3d else '✗'}"


class ViewPane(QWidget):
    """A view with a small caption above it."""

    def __init__(self, title: str, view: QWidget, parent: Optional[QWidget] = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        self.caption = QLabel(title)
        self.caption.setObjectName("viewCaption")
        lay.addWidget(self.caption)
        lay.addWidget(view, 1)
        self.view = view


class _KeyForwarder(QObject):
    """Navigation keys pressed over the views become ``InspectorView.navigate(step)``."""

    def __init__(self, inspector: "InspectorView"):
        super().__init__(inspector)
        self.inspector = inspector

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.KeyPress:
            step = _NAV_KEYS.get(event.key())
            if step is not None:
                self.inspector.navigate.emit(step)
                return True
        return False


class InspectorView(QSplitter):
    """Image | colour bar | cloud.  Signals: ``hoverText(str)`` (for a status bar),
    ``navigate(step)`` (arrow keys over the views), ``resultShown()``."""

    hoverText = Signal(str)
    navigate = Signal(int)
    resultShown = Signal()

    def __init__(self, options: dict, weighted: bool = True, parent: Optional[QWidget] = None):
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setObjectName("viewSplitter")
        self.key: Optional[str] = None            # the selected sample's key (set before it has loaded)
        self.sample: Optional[Sample] = None
        self.result: Optional[DetectorResult] = None
        self.clicked_point: Optional[int] = None
        self._hover: Optional[tuple[int, int]] = None
        self._build_options(options, weighted)
        self.image_view = ImageView()
        self.image_view.setObjectName("imageView")
        self.cloud_view = CloudView()
        self.cloud_view.setObjectName("cloudView")
        self.colorbar = ColorBar(name=self.cmap_combo.currentText())
        self.colorbar.setObjectName("colorBar")
        self.image_pane = ViewPane("RGB · anomaly heatmap", self.image_view)
        hint = self.cloud_view.backend_hint
        self.cloud_pane = ViewPane("3D · per-point score" + (f" ({hint})" if hint else " (interactive)"),
                                   self.cloud_view)
        for w in (self.image_pane, self.colorbar, self.cloud_pane):
            self.addWidget(w)
        self.setCollapsible(1, False)
        for i, f in enumerate((1, 0, 1)):
            self.setStretchFactor(i, f)
        self.colorbar.setMaximumWidth(max(self.colorbar.sizeHint().width(), 56))
        self.badge = QLabel()
        self.badge.setObjectName("modalityBadge")
        self.badge.setToolTip("The modalities the detector used for this sample")
        self.badge.setVisible(False)
        self.map_strip = MapStrip()
        self.map_strip.setVisible(False)
        self._keys = _KeyForwarder(self)
        for w in (self.image_view, self.cloud_view):
            w.installEventFilter(self._keys)
        self._hover_timer = QTimer(self)
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(HOVER_INTERVAL_MS)
        self._hover_timer.timeout.connect(self._apply_hover)
        self._connect()

    def _build_options(self, opts: dict, weighted: bool) -> None:
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setObjectName("opacitySlider")
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setFixedWidth(110)
        self.opacity_slider.setValue(int(round(opts["opacity"] * 100)))
        self.opacity_slider.setToolTip("Heatmap opacity")
        self.cmap_combo = QComboBox()
        self.cmap_combo.setObjectName("colormapCombo")
        self.cmap_combo.addItems(list(COLORMAPS))
        if opts["colormap"] in COLORMAPS:
            self.cmap_combo.setCurrentText(opts["colormap"])
        self.weighted_check = QCheckBox("Fade low scores")
        self.weighted_check.setObjectName("weightedOverlay")
        self.weighted_check.setToolTip("Blend the heatmap in proportion to the score, so the photo stays readable "
                                       "where scores are low and the anomalous region stands out. Off: one "
                                       "opacity for the whole map.")
        self.weighted_check.setChecked(bool(weighted))
        self.gt_check = QCheckBox("Ground truth")
        self.gt_check.setObjectName("gtToggle")
        self.gt_check.setToolTip("Outline the ground-truth defect (mask / labelled points) when the dataset has it (G)")
        self.gt_check.setChecked(opts["show_gt"])
        self.point_size = QSpinBox()
        self.point_size.setRange(*POINT_SIZE_RANGE)
        self.point_size.setValue(opts["point_size"])
        self.fit_btn = QToolButton()
        self.fit_btn.setText("Fit image")
        self.fit_btn.setToolTip("Fit the image to the view (double-click the image does the same)")
        self.reset3d_btn = QToolButton()
        self.reset3d_btn.setText("Reset 3D")
        self.reset3d_btn.setToolTip("Reset the 3D camera")

    def toggle_components(self) -> None:
        """Show / hide the strip of per-modality maps."""
        self.set_components_visible(not self.components_visible())

    def set_components_visible(self, on: bool) -> None:
        self.map_strip.setVisible(bool(on))
        self.map_strip.set_result(self.result)

    def components_visible(self) -> bool:
        parent = self.map_strip.parentWidget()
        return self.map_strip.isVisibleTo(parent) if parent is not None else self.map_strip.isVisible()

    def _show_badge(self, res: Optional[DetectorResult]) -> None:
        text = modality_text(res) if res is not None else ""
        self.badge.setText(text)
        self.badge.setVisible(bool(text))

    def option_widgets(self) -> list[QWidget]:
        """The view-option widgets with their labels, in toolbar order."""
        return [QLabel(" Overlay "), self.opacity_slider, QLabel(" "), self.weighted_check, QLabel("  "),
                self.cmap_combo, QLabel("  "), self.gt_check, QLabel("   Point size "), self.point_size, QLabel("  "),
                self.fit_btn, self.reset3d_btn]

    def options(self) -> dict:
        """The current view options (for the settings)."""
        return dict(colormap=self.cmap_combo.currentText(), opacity=self.opacity_slider.value() / 100.0,
                    show_gt=self.gt_check.isChecked(), point_size=self.point_size.value())

    def _connect(self) -> None:
        self.opacity_slider.valueChanged.connect(lambda v: self.image_view.set_opacity(v / 100.0))
        self.weighted_check.toggled.connect(self.set_weighted_overlay)
        self.cmap_combo.currentTextChanged.connect(self.set_colormap)
        self.gt_check.toggled.connect(self.set_show_gt)
        self.point_size.valueChanged.connect(self.cloud_view.set_point_size)
        self.fit_btn.clicked.connect(self.image_view.fit_view)
        self.reset3d_btn.clicked.connect(self.reset_3d_view)
        self.image_view.pixelHovered.connect(self._on_pixel_hovered)
        self.image_view.pixelClicked.connect(self._on_pixel_clicked)
        self.image_view.hoverLeft.connect(self._on_hover_left)
        self.cloud_view.pointPicked.connect(self._on_point_picked)
        self.image_view.set_opacity(self.opacity_slider.value() / 100.0)
        self.set_weighted_overlay(self.weighted_check.isChecked())
        self.set_colormap(self.cmap_combo.currentText())
        self.cloud_view.set_point_size(self.point_size.value())
        self.set_show_gt(self.gt_check.isChecked())

    def fit_sizes(self) -> None:
        """Split the width evenly between the two views (first show)."""
        w = max(self.width(), 400)
        cb = self.colorbar.maximumWidth()
        self.setSizes([(w - cb) // 2, cb, (w - cb) - (w - cb) // 2])

    # ------------------------------------------------------------------ content
    def set_placeholder(self, text: Optional[str]) -> None:
        """Text in both views while there is nothing to show (None: their defaults)."""
        self.image_view.set_placeholder(text)
        self.cloud_view.set_placeholder(None if text is None else text.split("\n")[0])

    def clear(self) -> None:
        """No sample."""
        self.sample = None
        self.image_view.set_image(None)
        self.image_view.set_heatmap(None, 0.0, 1.0)
        self.image_view.set_gt(None)
        self.image_view.set_marker(None)
        self.cloud_view.set_cloud(None)
        self.cloud_view.set_gt(None)
        self.result = None
        self._show_badge(None)
        self.map_strip.set_result(None)

    def clear_result(self) -> None:
        """Keep the sample, drop the result's colours."""
        self.result = None
        self.image_view.set_heatmap(None, 0.0, 1.0)
        self.image_view.set_threshold(None)
        self.cloud_view.set_scores(None, 0.0, 1.0)
        self.colorbar.set_threshold(None)
        self._show_badge(None)
        self.map_strip.set_result(None)

    def show_sample(self, sample: Sample) -> None:
        """Show a sample's image / depth and cloud (its own colours) and its ground truth."""
        self.sample = sample
        self.result = None
        self.clicked_point = None
        self._show_badge(None)
        self.map_strip.set_result(None)
        img = display_image(sample)
        self.image_view.set_image(img)
        self.image_view.set_heatmap(None, 0.0, 1.0)
        self.image_view.set_marker(None)
        gt_mask = sample.pixel_gt() if img is not None else None
        self.image_view.set_gt(gt_mask if gt_mask is not None and gt_mask.shape == img.shape[:2] else None)
        if sample.has_points:
            self.cloud_view.set_cloud(sample.valid_points(), sample.valid_colors())
            self.cloud_view.set_gt(sample.point_gt())
        else:
            self.cloud_view.set_cloud(None)
            self.cloud_view.set_gt(None)
        has_gt = sample.gt_mask is not None or sample.point_labels is not None
        self.gt_check.setEnabled(has_gt or sample.pixel_gt() is not None)
        self.image_pane.caption.setText("RGB · anomaly heatmap" if sample.has_rgb else
                                        "Depth (no RGB image) · anomaly heatmap" if img is not None else "No RGB image")
        n = sample.n_points
        shown = self.cloud_view.max_display_points
        hint = self.cloud_view.backend_hint
        self.cloud_pane.caption.setText(
            (f"3D · {n:,} points" + (f" (showing {shown:,})" if n > shown else "") + (f" · {hint}" if hint else ""))
            if n else "No point cloud")
        self.image_view.fit_view()
        self.reset_3d_view()

    def show_result(self, res: DetectorResult) -> None:
        """Colour both views by the result over :func:`core.colormaps.score_range`, with its threshold."""
        sample = self.sample
        if sample is None:
            return
        self.result = res
        vmin, vmax = score_range(res)
        t = res.threshold
        pm = res.pixel_map
        shape = self.image_view.image_shape
        # heatmap + contour and colours + emphasis are each computed once (threshold in the same call)
        if pm is not None and (shape is None or tuple(pm.shape[:2]) == tuple(shape)):
            self.image_view.set_heatmap(pm, vmin, vmax, threshold=t)
        else:
            self.image_view.set_heatmap(None, vmin, vmax, threshold=t)
        # (the view's point count: Sample.n_points recounts the valid mask, ~10 ms at 800 x 800)
        if sample.has_points and res.point_scores is not None and len(res.point_scores) == self.cloud_view.n_points:
            self.cloud_view.set_scores(res.point_scores, vmin, vmax, threshold=t)
        else:
            self.cloud_view.set_scores(None, vmin, vmax, threshold=t)
        self.colorbar.set_range(vmin, vmax)
        self.colorbar.set_threshold(t)
        self._show_badge(res)
        if self.components_visible():
            self.map_strip.set_result(res)
        self.resultShown.emit()

    # ------------------------------------------------------------------ view options
    def reset_3d_view(self) -> None:
        """The default camera: the sensor's view tilted by ~35 degrees so relief reads as 3D."""
        self.cloud_view.reset_view()
        h = max(self.cloud_view.height(), 1)
        self.cloud_view.orbit(0.0, -35.0 * h / 200.0)   # CloudView.orbit: 200 deg per view height
        self.cloud_view.zoom(1.25)

    def set_colormap(self, name: str) -> None:
        self.map_strip.set_colormap(name)
        self.image_view.set_colormap(name)
        self.cloud_view.set_colormap(name)
        self.colorbar.set_colormap(name)

    def set_weighted_overlay(self, on: bool) -> None:
        """Score-weighted overlays: the photo / the part's own colours show where scores are low."""
        self.image_view.set_alpha_gamma(DEFAULT_ALPHA_GAMMA if on else 0.0)
        # 3D: a gentler ramp at full strength (no photo underneath to compare with)
        self.cloud_view.set_score_blend(CLOUD_BLEND_GAMMA if on else 0.0, 1.0)

    def set_show_gt(self, on: bool) -> None:
        self.image_view.set_show_gt(on)
        self.cloud_view.set_show_gt(on)

    # ------------------------------------------------------------------ 2D <-> 3D linking
    def _on_pixel_hovered(self, row: int, col: int) -> None:
        self._hover = (row, col)
        if not self._hover_timer.isActive():
            self._hover_timer.start()

    def _apply_hover(self) -> None:
        s = self.sample
        if s is None or self._hover is None:
            return
        r, c = self._hover
        idx = pixel_to_point(s, r, c)
        text = [f"pixel ({r}, {c})"]
        res = self.result
        if res is not None and res.pixel_map is not None and 0 <= r < res.pixel_map.shape[0] \
                and 0 <= c < res.pixel_map.shape[1]:
            v = res.pixel_map[r, c]
            text.append(f"score {v:.3f}" if np.isfinite(v) else "score n/a")
        if idx is not None:
            text.append(f"point #{idx}")
            self.cloud_view.mark_point(idx)
        elif s.organized:
            text.append("no 3D point here")
            self.cloud_view.mark_point(self.clicked_point)
        self.hoverText.emit("  ·  ".join(text))

    def _on_hover_left(self) -> None:
        self._hover = None
        self._hover_timer.stop()
        self.cloud_view.mark_point(self.clicked_point)

    def _on_pixel_clicked(self, row: int, col: int) -> None:
        s = self.sample
        if s is None:
            return
        self.image_view.set_marker((row, col))
        self.clicked_point = pixel_to_point(s, row, col)
        self.cloud_view.mark_point(self.clicked_point)

    def _on_point_picked(self, index: int) -> None:
        s = self.sample
        if s is None:
            return
        self.clicked_point = index
        self.cloud_view.mark_point(index)
        rc = point_to_pixel(s, index)
        self.image_view.set_marker(rc)
        text = [f"point #{index}"]
        res = self.result
        if res is not None and res.point_scores is not None and index < len(res.point_scores):
            text.append(f"score {res.point_scores[index]:.3f}")
        if rc is not None:
            text.append(f"pixel ({rc[0]}, {rc[1]})")
        self.hoverText.emit("  ·  ".join(text))
