"""The inspection workbench main window.

Layout (the default; docks can be moved and the layout is remembered):

* centre: a message banner, a view toolbar (overlay opacity, colormap, ground truth, point size)
  and a split view: the RGB image with the anomaly heatmap | the shared colour bar | the 3D point
  cloud coloured by per-point score;
* left: the sample browser (table / thumbnails, filters) and the review panel;
* right: the detector panel (parameters, device, run / cancel, progress), then the fusion, prompt
  and few-shot panels as tabs.

All state lives in a Qt-free :class:`core.session.Session`; this module only wires widgets to it.
Long work (fit, extract, batch runs, demo generation) runs in a :class:`app.workers.JobRunner`
thread; sample loading and thumbnails in :class:`app.workers.BackgroundLoader` pools; a fusion
slider re-fuses the cached components on the GUI thread (milliseconds) and repaints both views.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDockWidget, QFileDialog, QFrame, QHBoxLayout, QLabel,
                               QMainWindow, QMessageBox, QProgressBar, QScrollArea, QSizePolicy, QSlider,
                               QSpinBox, QSplitter, QToolButton, QVBoxLayout, QWidget)

from core.detectors import registry
from core.detectors.base import DetectorResult
from core.errors import InputError
from core.review import CONFIRMED, REJECTED, UNSURE, ReviewStore, ReviewWriteError
from core.sample import Sample
from core.session import (Analysis, ProcessBackend, RunSummary, Session, describe_error, display_image,
                          pixel_to_point, point_to_pixel, score_range, thumbnail)

from .panels import (BrowserPanel, DetectorPanel, FewShotPanel, FusionPanel, MessageBanner, PromptPanel,
                     ReviewPanel)
from .panels.browser import THUMB_SIZE
from .panels.detector import cuda_available
from .panels.review import VerdictRetry
from .settings import Settings
from .views import COLORMAPS, CloudView, ColorBar, ImageView
from .views.image_view import DEFAULT_ALPHA_GAMMA
from .workers import BackgroundLoader, JobRunner, format_eta

log = logging.getLogger(__name__)

DEFAULT_DETECTOR = "memory-bank"
APP_TITLE = "MMAD Inspector"
HOVER_INTERVAL_MS = 60     # hover → 3D marker updates are coalesced to this period
REFUSE_SLICE_MS = 25       # re-fusing the other cached samples yields to the event loop this often
CLOUD_BLEND_GAMMA = 1.0    # score-weighted point colours when "Fade low scores" is on
PREVIEW_HOLD_MS = 200      # the 3D view shows its decimated preview subset until sliders rest this long

STYLESHEET_PATH = Path(__file__).resolve().parent.parent / "resources" / "style.qss"


class _KeyForwarder(QObject):
    """Forwards navigation keys pressed over the views to the browser."""

    def __init__(self, window: "MainWindow"):
        super().__init__(window)
        self.window = window

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.KeyPress:
            step = {Qt.Key.Key_Down: 1, Qt.Key.Key_Right: 1, Qt.Key.Key_Up: -1, Qt.Key.Key_Left: -1,
                    Qt.Key.Key_PageDown: 10, Qt.Key.Key_PageUp: -10}.get(event.key())
            if step is not None:
                self.window.browser.select_next(step)
                return True
        return False


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


class MainWindow(QMainWindow):
    """The workbench.  ``MainWindow(settings, session)``; then :meth:`open_folder` or :meth:`open_demo`.

    Signals (useful to scripts and tests): ``sampleShown(key)`` once a sample is displayed,
    ``resultShown(key)`` once its result is painted in both views, ``datasetOpened(path)``.
    """

    sampleShown = Signal(str)
    resultShown = Signal(str)
    datasetOpened = Signal(str)

    def __init__(self, settings: Optional[Settings] = None, session: Optional[Session] = None,
                 restore_layout: bool = True):
        super().__init__()
        self.settings = settings if settings is not None else Settings()
        # detectors run in a worker process by default: their native code cannot stall the GUI
        self.session = session if session is not None else Session(backend=ProcessBackend())
        self.reviews: Optional[ReviewStore] = None
        self.verdict_retry = VerdictRetry(self)     # unsaved verdicts (disk full...): kept and retried
        self.verdict_retry.message.connect(lambda level, text: self.banner.show_message(level, text))
        self.runner = JobRunner(self)
        self.loader = BackgroundLoader(self)
        self._opts = self.settings.view_options()
        self._current_key: Optional[str] = None
        self._current_sample: Optional[Sample] = None
        self._current_result: Optional[DetectorResult] = None
        self._clicked_point: Optional[int] = None
        self._job_kind = ""
        self._pending_run = False
        self._thumbs: dict[str, np.ndarray] = {}
        self._fewshot_class: Optional[str] = None
        self._refuse_queue: list[str] = []
        self._hover: Optional[tuple[int, int]] = None
        self._preview_wanted = False
        self.last_fusion_ms: Optional[float] = None
        self.last_cancel_ms: Optional[float] = None

        self._split_initialized = False
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self._build_central()
        self._build_docks()
        self._build_actions()
        self._build_toolbar()
        self._build_status()
        self._connect()
        self._init_detector()
        start = getattr(self.session.backend, "start", None)
        if start is not None:      # the worker process imports the detector libraries meanwhile
            QTimer.singleShot(0, start)
        self.resize(1500, 920)
        if restore_layout:
            self.settings.restore_window(self)
            state = self.settings.value("window/splitter")
            if state is not None and self.splitter.restoreState(state):
                self._split_initialized = True

    # ================================================================== construction
    def _build_central(self) -> None:
        central = QWidget()
        central.setObjectName("central")
        lay = QVBoxLayout(central)
        lay.setContentsMargins(6, 6, 6, 4)
        lay.setSpacing(6)
        self.banner = MessageBanner()
        lay.addWidget(self.banner)

        bar = QHBoxLayout()
        bar.setSpacing(10)
        self.sample_title = QLabel("No sample")
        self.sample_title.setObjectName("sampleTitle")
        self.sample_title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.sample_title.setMinimumWidth(120)
        bar.addWidget(self.sample_title, 1)
        self.sample_info = QLabel()
        self.sample_info.setObjectName("sampleInfo")
        bar.addWidget(self.sample_info)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setObjectName("opacitySlider")
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setFixedWidth(110)
        self.opacity_slider.setValue(int(round(self._opts["opacity"] * 100)))
        self.opacity_slider.setToolTip("Heatmap opacity")
        self.cmap_combo = QComboBox()
        self.cmap_combo.setObjectName("colormapCombo")
        self.cmap_combo.addItems(list(COLORMAPS))
        if self._opts["colormap"] in COLORMAPS:
            self.cmap_combo.setCurrentText(self._opts["colormap"])
        self.weighted_check = QCheckBox("Fade low scores")
        self.weighted_check.setObjectName("weightedOverlay")
        self.weighted_check.setToolTip("Blend the heatmap in proportion to the score, so the photo stays readable "
                                       "where scores are low and the anomalous region stands out. Off: one "
                                       "opacity for the whole map.")
        self.weighted_check.setChecked(bool(self.settings.value("view/weighted_overlay", True, bool)))
        self.gt_check = QCheckBox("Ground truth")
        self.gt_check.setObjectName("gtToggle")
        self.gt_check.setToolTip("Outline the ground-truth defect (mask / labelled points) when the dataset has it (G)")
        self.gt_check.setChecked(self._opts["show_gt"])
        self.point_size = QSpinBox()
        self.point_size.setRange(1, 15)
        self.point_size.setValue(self._opts["point_size"])
        self.fit_btn = QToolButton()
        self.fit_btn.setText("Fit image")
        self.fit_btn.setToolTip("Fit the image to the view (double-click the image does the same)")
        self.reset3d_btn = QToolButton()
        self.reset3d_btn.setText("Reset 3D")
        self.reset3d_btn.setToolTip("Reset the 3D camera")
        lay.addLayout(bar)

        self.image_view = ImageView()
        self.image_view.setObjectName("imageView")
        self.cloud_view = CloudView()
        self.cloud_view.setObjectName("cloudView")
        self.colorbar = ColorBar(name=self.cmap_combo.currentText())
        self.colorbar.setObjectName("colorBar")
        self.image_pane = ViewPane("RGB · anomaly heatmap", self.image_view)
        backend = "interactive" if self.cloud_view.backend == "interactor" else "off-screen render, drag to orbit"
        self.cloud_pane = ViewPane(f"3D · per-point score ({backend})", self.cloud_view)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("viewSplitter")
        self.splitter.addWidget(self.image_pane)
        self.splitter.addWidget(self.colorbar)
        self.splitter.addWidget(self.cloud_pane)
        self.splitter.setCollapsible(1, False)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setStretchFactor(2, 1)
        self.colorbar.setMaximumWidth(max(self.colorbar.sizeHint().width(), 56))
        lay.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        self._keys = _KeyForwarder(self)
        for w in (self.image_view, self.cloud_view):
            w.installEventFilter(self._keys)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._split_initialized:
            self._split_initialized = True
            w = max(self.splitter.width(), 400)
            cb = self.colorbar.maximumWidth()
            self.splitter.setSizes([(w - cb) // 2, cb, (w - cb) - (w - cb) // 2])

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea,
              scroll: bool = False) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(name)
        if scroll:
            sa = QScrollArea()
            sa.setWidgetResizable(True)
            sa.setFrameShape(QFrame.Shape.NoFrame)
            sa.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            sa.setWidget(widget)
            d.setWidget(sa)
        else:
            d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                      | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                      | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, d)
        return d

    def _build_docks(self) -> None:
        L, R = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.browser = BrowserPanel()
        self.review_panel = ReviewPanel()
        self.review_panel.annotator.setText(self._opts["annotator"])
        self.review_panel.advance.setChecked(self._opts["advance"])
        self.detector_panel = DetectorPanel()
        self.detector_panel.auto_run.setChecked(self._opts["auto_run"])
        self.fusion_panel = FusionPanel()
        self.prompt_panel = PromptPanel()
        self.fewshot_panel = FewShotPanel()
        self.browser_dock = self._dock("Samples", "dockSamples", self.browser, L)
        self.review_dock = self._dock("Review", "dockReview", self.review_panel, L)
        self.detector_dock = self._dock("Detector", "dockDetector", self.detector_panel, R, scroll=True)
        self.fusion_dock = self._dock("Fusion", "dockFusion", self.fusion_panel, R, scroll=True)
        self.prompt_dock = self._dock("Prompts", "dockPrompts", self.prompt_panel, R)
        self.fewshot_dock = self._dock("Few-shot", "dockFewShot", self.fewshot_panel, R)
        self.tabifyDockWidget(self.fusion_dock, self.prompt_dock)
        self.tabifyDockWidget(self.prompt_dock, self.fewshot_dock)
        self.fusion_dock.raise_()
        self.splitDockWidget(self.browser_dock, self.review_dock, Qt.Orientation.Vertical)
        self.resizeDocks([self.browser_dock, self.review_dock], [620, 260], Qt.Orientation.Vertical)
        self.resizeDocks([self.browser_dock, self.detector_dock], [340, 360], Qt.Orientation.Horizontal)
        self._default_state = self.saveState()

    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            a.setStatusTip(tip)
        a.triggered.connect(lambda _=False: slot())
        menu.addAction(a)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.act_open = self._action(f, "&Open folder…", self.choose_folder, QKeySequence.StandardKey.Open,
                                     "Open a dataset folder (or drop one on the window)")
        self.act_demo = self._action(f, "Open &demo data", self.open_demo, "Ctrl+D")
        f.addSeparator()
        self._action(f, "&Export verdicts (CSV)…", self.export_verdicts, "Ctrl+E")
        self._action(f, "Save &screenshot…", self.choose_screenshot, "Ctrl+Shift+S")
        f.addSeparator()
        self._action(f, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        r = mb.addMenu("&Run")
        self.act_run = self._action(r, "▶ Run sample", lambda: self.run_current(force=True), "F5",
                                    "Analyse the selected sample (F5)")
        self.act_run_all = self._action(r, "▶▶ Run all", self.run_all, "Shift+F5",
                                        "Analyse every sample shown in the browser (Shift+F5)")
        self.act_cancel = self._action(r, "■ Cancel", self.cancel_run, "Esc", "Stop the running analysis (Esc)")
        self.act_cancel.setEnabled(False)
        rv = mb.addMenu("Re&view")
        self._action(rv, "&Confirm detection", lambda: self.set_verdict(CONFIRMED), "C")
        self._action(rv, "&Reject detection", lambda: self.set_verdict(REJECTED), "R")
        self._action(rv, "&Unsure", lambda: self.set_verdict(UNSURE), "U")
        rv.addSeparator()
        self._action(rv, "&Next sample", lambda: self.browser.select_next(1), "N")
        self._action(rv, "&Previous sample", lambda: self.browser.select_next(-1), "P")
        v = mb.addMenu("&View")
        for d in (self.browser_dock, self.review_dock, self.detector_dock, self.fusion_dock, self.prompt_dock,
                  self.fewshot_dock):
            v.addAction(d.toggleViewAction())
        v.addSeparator()
        self._action(v, "Toggle &ground truth", self.gt_check.toggle, "G")
        self._action(v, "&Thumbnails / table", lambda: self.browser.set_grid_mode(not self.browser.model.grid_mode),
                     "T")
        self._action(v, "&Reset layout", self.reset_layout)
        h = mb.addMenu("&Help")
        self._action(h, "&Keyboard shortcuts", self.show_shortcuts, "F1")

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("toolbarMain")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.addAction(self.act_open)
        tb.addAction(self.act_demo)
        tb.addSeparator()
        tb.addAction(self.act_run)
        tb.addAction(self.act_run_all)
        tb.addAction(self.act_cancel)
        tb.addSeparator()
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        for w in (QLabel(" Overlay "), self.opacity_slider, QLabel(" "), self.weighted_check, QLabel("  "),
                  self.cmap_combo, QLabel("  "), self.gt_check, QLabel("   Point size "), self.point_size, QLabel("  ")):
            tb.addWidget(w)
        tb.addWidget(self.fit_btn)
        tb.addWidget(self.reset3d_btn)

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.status_hover = QLabel()
        self.status_timing = QLabel()
        self.status_detector = QLabel()
        self.status_device = QLabel()
        for w in (self.status_hover, self.status_timing, self.status_detector, self.status_device):
            w.setObjectName("statusField")
        # the running job, visible whatever the dock layout (first start: demo data, first fit)
        self.status_job = QLabel()
        self.status_job.setObjectName("statusJob")
        self.status_progress = QProgressBar()
        self.status_progress.setObjectName("statusProgress")
        self.status_progress.setRange(0, 1000)
        self.status_progress.setFixedWidth(170)
        self.status_progress.setMaximumHeight(16)
        self.status_progress.setTextVisible(True)
        for w in (self.status_job, self.status_progress):
            w.setVisible(False)
            sb.addWidget(w)
        sb.addWidget(self.status_hover, 1)
        sb.addPermanentWidget(self.status_timing)
        sb.addPermanentWidget(self.status_detector)
        sb.addPermanentWidget(self.status_device)

    def _connect(self) -> None:
        self.browser.currentChanged.connect(self._on_current_changed)
        self.browser.thumbnailWanted.connect(self._want_thumbnail)
        self.fewshot_panel.thumbnailWanted.connect(self._want_thumbnail)
        self.loader.done.connect(self._on_loaded)
        self.loader.error.connect(self._on_load_error)

        self.runner.started.connect(self._on_job_started)
        self.runner.progress.connect(self.detector_panel.set_progress)
        self.runner.progress.connect(self._on_job_progress)
        self.runner.partial.connect(self._on_partial)
        self.runner.finished.connect(self._on_job_finished)
        self.runner.failed.connect(self._on_job_failed)
        self.runner.cancelled.connect(self._on_job_cancelled)
        self.runner.idle.connect(self._on_job_idle)

        dp = self.detector_panel
        dp.detectorChosen.connect(self.choose_detector)
        dp.deviceChosen.connect(self.choose_device)
        dp.paramChanged.connect(lambda n, v: self.set_params({n: v}))
        dp.resetRequested.connect(lambda: self._reset_params(dp.form.defaults()))
        dp.runSample.connect(lambda: self.run_current(force=True))
        dp.runAll.connect(self.run_all)
        dp.cancelRequested.connect(self.cancel_run)
        self.fusion_panel.paramChanged.connect(self.set_fusion_param)
        self.fusion_panel.resetRequested.connect(lambda: self._reset_params(self.fusion_panel.form.defaults()))
        self.prompt_panel.promptsApplied.connect(self.set_params)
        self.prompt_panel.resetRequested.connect(lambda: self._reset_params(self.prompt_panel.form.defaults()))
        self.fewshot_panel.supportApplied.connect(self.set_support)
        self.review_panel.verdictRequested.connect(self.set_verdict)
        self.review_panel.exportRequested.connect(self.export_verdicts)

        self.opacity_slider.valueChanged.connect(lambda v: self.image_view.set_opacity(v / 100.0))
        self.weighted_check.toggled.connect(self._set_weighted_overlay)
        self.cmap_combo.currentTextChanged.connect(self._set_colormap)
        self.gt_check.toggled.connect(self._set_show_gt)
        self.point_size.valueChanged.connect(self.cloud_view.set_point_size)
        self.fit_btn.clicked.connect(self.image_view.fit_view)
        self.reset3d_btn.clicked.connect(self.reset_3d_view)
        self.image_view.pixelHovered.connect(self._on_pixel_hovered)
        self.image_view.pixelClicked.connect(self._on_pixel_clicked)
        if hasattr(self.image_view, "hoverLeft"):
            self.image_view.hoverLeft.connect(self._on_hover_left)
        self.cloud_view.pointPicked.connect(self._on_point_picked)

        self._hover_timer = QTimer(self)
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(HOVER_INTERVAL_MS)
        self._hover_timer.timeout.connect(self._apply_hover)
        self._fusion_timer = QTimer(self)       # coalesces slider events into one repaint
        self._fusion_timer.setSingleShot(True)
        self._fusion_timer.setInterval(0)
        self._fusion_timer.timeout.connect(self._refresh_fusion)
        self._refuse_timer = QTimer(self)       # re-fuses the other cached samples in slices
        self._refuse_timer.setInterval(0)
        self._refuse_timer.timeout.connect(self._refuse_slice)
        self._refuse_delay = QTimer(self)       # ... starting once the sliders rest
        self._refuse_delay.setSingleShot(True)
        self._refuse_delay.setInterval(400)
        self._refuse_delay.timeout.connect(self._start_refuse_all)
        self._preview_timer = QTimer(self)      # ends the 3D preview once the fusion sliders rest
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(PREVIEW_HOLD_MS)
        self._preview_timer.timeout.connect(self._end_preview)
        self._rerun_timer = QTimer(self)        # debounces reruns after parameter edits
        self._rerun_timer.setSingleShot(True)
        self._rerun_timer.setInterval(300)
        self._rerun_timer.timeout.connect(lambda: self._auto_run())

        # initial view options
        self.image_view.set_opacity(self.opacity_slider.value() / 100.0)
        self._set_weighted_overlay(self.weighted_check.isChecked())
        self._set_colormap(self.cmap_combo.currentText())
        self.cloud_view.set_point_size(self.point_size.value())
        self._set_show_gt(self.gt_check.isChecked())

    # ================================================================== detector
    def _init_detector(self) -> None:
        ids = self._available_detectors()
        self._devices = ["cpu"]
        self.detector_panel.set_devices(self._devices, "cpu")
        self.loader.submit("probe", "cuda", cuda_available)
        if self.session.detector is None:
            wanted = self.settings.detector_id
            det_id = wanted if wanted in ids else DEFAULT_DETECTOR if DEFAULT_DETECTOR in ids else (ids[0] if ids else "")
            if det_id:
                self._set_detector(det_id, self.settings.device if self.settings.device == "cpu" else "cpu")
        else:
            self._detector_changed()

    def _available_detectors(self) -> list[str]:
        try:
            ids = registry.available()
        except Exception as err:  # noqa: BLE001 - a broken detector module must not kill the window
            self.banner.error(f"Could not load the built-in detectors: {err}")
            ids = sorted(registry._REGISTRY)
        names = {}
        for i in ids:
            try:
                names[i] = registry.get(i).name or i
            except KeyError:
                names[i] = i
        self.detector_panel.set_detectors(ids, names, self.session.detector_id or self.settings.detector_id or "")
        return ids

    def _set_detector(self, det_id: str, device: str) -> bool:
        try:
            self.session.set_detector(det_id, device, **self.settings.detector_params(det_id))
        except Exception as err:  # noqa: BLE001
            self.banner.error(f"Could not create detector '{det_id}': {describe_error(err)}")
            return False
        self._detector_changed()
        return True

    def _detector_changed(self) -> None:
        det = self.session.detector
        if det is None:
            return
        self.detector_panel.set_detector(det)
        self.fusion_panel.set_detector(det)
        self.prompt_panel.set_detector(det)
        self.prompt_dock.setWindowTitle("Prompts" if det.needs.text_prompts else "Prompts (n/a)")
        self.status_detector.setText(f"detector: {det.name or det.id}")
        self.status_device.setText(f"device: {self.session.device.upper()}")
        self._fewshot_class = None
        self._refresh_fewshot()
        self._clear_result()
        self.browser.model.refresh_all()

    def choose_detector(self, det_id: str) -> None:
        if not det_id or det_id == self.session.detector_id:
            return
        self._save_params()
        if self.runner.busy:
            self.runner.cancel()
            self.runner.wait(2.0)
        if self._set_detector(det_id, self.session.device):
            self.settings.detector_id = det_id
            self._auto_run()

    def choose_device(self, device: str) -> None:
        if device == self.session.device:
            return
        if self.runner.busy:
            self.runner.cancel()
            self.runner.wait(2.0)
        self.session.set_device(device)
        self.settings.device = device
        self.status_device.setText(f"device: {device.upper()}")
        self._clear_result()
        self.browser.model.refresh_all()
        self._auto_run()

    def set_params(self, values: dict[str, Any]) -> set[str]:
        """Apply fit/score/text parameter edits: stale results are re-analysed (auto-run)."""
        try:
            touched = self.session.set_params(**values)
        except (ValueError, KeyError) as err:
            self.banner.error(str(err).strip("'\""))
            self._sync_param_widgets()
            return set()
        if not touched:
            return touched
        if touched - {"fusion"}:
            what = ("the detector is refitted" if "fit" in touched else
                    "text embeddings are recomputed" if touched == {"text"} else "samples are re-analysed")
            self.status_timing.setText(f"parameters changed: {what}")
            if self.runner.busy and self._job_kind in ("analyze", "run"):
                self.runner.cancel()   # its result would be stale anyway
            self.browser.model.refresh_all()
            if self.detector_panel.auto_run.isChecked():
                self._pending_run = True
                self._rerun_timer.start()
        else:
            self._fusion_timer.start()
        self._save_params()
        return touched

    def set_fusion_param(self, name: str, value: Any) -> None:
        """A fusion slider moved: re-fuse the cached maps and repaint (no backbone runs).

        Slider events are coalesced: the re-fuse and repaint run once per event-loop turn
        (``_fusion_timer``).  Meanwhile the 3D view draws its decimated preview subset (several
        times faster to render); the full display subset returns once no fusion slider is held
        and none has moved for ``PREVIEW_HOLD_MS``.
        """
        try:
            self.session.set_params(**{name: value})
        except ValueError as err:
            self.banner.error(str(err))
            return
        self._preview_wanted = True      # switched on in _refresh_fusion: one 3D frame, not two
        self._preview_timer.start()
        self._fusion_timer.start()

    def _fusion_slider_down(self) -> bool:
        for ed in self.fusion_panel.form.editors.values():
            slider = getattr(ed, "slider", None)
            if slider is not None and slider.isSliderDown():
                return True
        return False

    def _end_preview(self) -> None:
        if self._fusion_slider_down():
            self._preview_timer.start()      # still held: check again later
            return
        self.cloud_view.set_preview(False)

    def _reset_params(self, defaults: dict[str, Any]) -> None:
        self.set_params(defaults)
        self._sync_param_widgets()

    def _sync_param_widgets(self) -> None:
        p = self.session.params
        self.detector_panel.set_values(p)
        self.fusion_panel.set_values(p)
        self.prompt_panel.set_values(p)

    def _save_params(self) -> None:
        if self.session.detector is not None:
            self.settings.set_detector_params(self.session.detector_id, self.session.params)

    def _refresh_fusion(self) -> None:
        """Re-fuse the current sample once and repaint both views (``_fusion_timer``)."""
        t0 = time.perf_counter()
        shown = False
        if self._preview_wanted:
            self._preview_wanted = False
            self.cloud_view.set_preview(True)
        if self._current_key is not None and self._current_sample is not None:
            res = self.session.result(self._current_key)
            if res is not None:
                self._show_result(res)     # updates the title too
                shown = True
        self.last_fusion_ms = (time.perf_counter() - t0) * 1000
        self.fusion_panel.set_timing(self.last_fusion_ms)
        self.browser.model.refresh_key(self._current_key or "")
        if not shown:
            self._update_title()
        # the table's scores of the other cached samples are re-fused once the slider rests
        self._refuse_timer.stop()
        self._refuse_delay.start()

    def _start_refuse_all(self) -> None:
        self._refuse_queue = [k for k in self.session.components.keys() if k != self._current_key]
        self._refuse_timer.start()

    def _refuse_slice(self) -> None:
        t_end = time.perf_counter() + REFUSE_SLICE_MS / 1000
        while self._refuse_queue and time.perf_counter() < t_end:
            self.session.refuse(self._refuse_queue.pop())
        if not self._refuse_queue:
            self._refuse_timer.stop()
            self.browser.model.refresh_all()

    # ================================================================== support
    def _refresh_fewshot(self) -> None:
        ref = self._current_ref()
        det = self.session.detector
        if ref is None or det is None:
            self.fewshot_panel.set_candidates("", [], [], 0)
            return
        if ref.class_name == self._fewshot_class:
            return
        self._fewshot_class = ref.class_name
        cands = self.session.support_candidates(ref.class_name)
        self.fewshot_panel.set_candidates(ref.class_name, cands, self.session.support(ref.class_name),
                                          det.needs.support, self._thumbs)

    def set_support(self, class_name: str, items) -> None:
        """Use ``items`` (None: the default) as the support set of a class; refits that class only."""
        if not class_name:
            return
        det = self.session.detector
        if items is not None and det is not None and len(items) < det.needs.support:
            self.banner.warning(f"'{det.id}' needs at least {det.needs.support} support sample(s); "
                                f"{len(items)} selected. Select more good samples or files.")
            return
        changed = self.session.set_support(class_name, items)
        self._fewshot_class = None
        self._refresh_fewshot()
        if changed:
            n = len(self.session.support(class_name))
            self.banner.info(f"Support of '{class_name}' changed ({n} sample(s)): only this class is refitted.")
            self.browser.model.refresh_all()
            ref = self._current_ref()
            if ref is not None and ref.class_name == class_name:
                self._clear_result()
                if self.runner.busy:
                    self.runner.cancel()
                self._pending_run = True
                self._auto_run()

    # ================================================================== data
    def choose_folder(self) -> None:
        start = self.settings.last_folder or str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Open dataset folder", start)
        if path:
            self.open_folder(path)

    def open_folder(self, path: str | Path) -> bool:
        """Open a dataset folder (or one file).  Listing is lazy; errors go to the banner."""
        self._stop_analysis()
        try:
            ds = self.session.open(path)
        except InputError as err:
            self.banner.error(f"{err}. Choose a folder holding a dataset (MVTec 3D-AD, Eyecandies, Real3D-AD) "
                              f"or images / point clouds.")
            return False
        except Exception as err:  # noqa: BLE001
            self.banner.error(f"{path}: could not open ({describe_error(err)})")
            return False
        self._dataset_opened()
        return True

    def set_dataset(self, dataset) -> None:
        """Show an already opened :class:`core.datasets.base.Dataset` (scripts, tests)."""
        self._stop_analysis()
        self.session.set_dataset(dataset)
        self._dataset_opened()

    def _stop_analysis(self) -> None:
        if self.runner.busy and self._job_kind in ("analyze", "run"):
            self._pending_run = False
            self.runner.cancel()
            self.runner.wait(2.0)

    def _dataset_opened(self) -> None:
        ds = self.session.dataset
        self.image_view.set_placeholder(None)
        self.cloud_view.set_placeholder(None)
        try:
            self.reviews = ReviewStore.for_dataset(ds.root)
            if self.reviews.warnings:
                self.banner.warning("Some saved verdicts could not be read (kept on disk, skipped).",
                                    self.reviews.warnings)
            else:
                self.banner.dismiss()
        except InputError as err:
            self.reviews = None
            self.banner.warning(f"Verdicts cannot be saved: {err}")
        self.loader.clear("thumb")
        self._thumbs.clear()
        self._fewshot_class = None
        self._current_key = None
        self._current_sample = None
        self._clear_result()
        self.browser.set_session(self.session, self.reviews)
        self.settings.last_folder = str(ds.root)
        self.setWindowTitle(f"{ds.root.name} - {APP_TITLE}")
        self._update_review_counts()
        self.datasetOpened.emit(str(ds.root))
        if self.browser.proxy.rowCount():
            self.browser.select_row(0)
            self.browser.focus_list()

    def open_demo(self) -> bool:
        """Open the built-in demo data, generating it in the background the first time."""
        from core import demo

        def job(progress, cancel, emit):
            return demo.ensure_demo(progress=progress)

        started = self._start_job("demo", "Preparing the demo data (first start only)…", job)
        if started and self.session.dataset is None:
            text = "Preparing the built-in demo data…\n(first start only, about half a minute)"
            self.image_view.set_placeholder(text)
            self.cloud_view.set_placeholder(text.split("\n")[0])
        return started

    def _current_ref(self):
        if self._current_key is None:
            return None
        try:
            return self.session.ref(self._current_key)
        except KeyError:
            return None

    def _on_current_changed(self, key: str) -> None:
        self._current_key = key
        self._current_result = None
        self._clicked_point = None
        ref = self.session.ref(key)
        cached = self.session.samples.get(key)
        if cached is not None:
            self._show_sample(ref, cached)
        else:
            self.sample_title.setText(f"{ref.key}")
            self.sample_info.setText("<span style='color:#8a8f98'>loading…</span>")
            self.loader.submit("load", key, lambda: self.session.load(ref))
        self._refresh_fewshot()
        self._show_review()

    def _on_loaded(self, kind: str, key: Any, obj: Any) -> None:
        if kind == "load":
            if key == self._current_key:
                self._show_sample(self.session.ref(key), obj)
        elif kind == "thumb":
            self._thumbs[key] = obj
            self.browser.model.set_thumbnail(key, obj)
            self.fewshot_panel.set_thumbnail(key, obj)
        elif kind == "probe" and obj:
            self._devices = ["cpu", "cuda"]
            self.detector_panel.set_devices(self._devices, self.session.device)

    def _on_load_error(self, kind: str, key: Any, err: Exception) -> None:
        if kind == "load" and key == self._current_key:
            rec = self.session.records.get(key)
            if rec is not None:
                rec.error = describe_error(err)
                self.browser.model.refresh_key(key)
            self._current_sample = None
            self._clear_views()
            self.sample_title.setText(key)
            self.sample_info.setText("<span style='color:#e26464'>cannot be loaded</span>")
            self.banner.error(describe_error(err))
        elif kind == "thumb":
            bad = np.zeros((THUMB_SIZE, THUMB_SIZE, 3), np.uint8)
            bad[..., 0] = 110
            self.browser.model.set_thumbnail(key, bad)
        elif kind == "probe":
            log.info("CUDA probe failed: %s", err)

    def _want_thumbnail(self, key: str) -> None:
        if key in self._thumbs or self.session.dataset is None:
            return
        try:
            ref = self.session.ref(key)
        except KeyError:
            return
        ds = self.session.dataset
        cached = self.session.samples.get(key)
        self.loader.submit("thumb", key, lambda: thumbnail(ds, ref, THUMB_SIZE, sample=cached))

    # ================================================================== display
    def _clear_views(self) -> None:
        self.image_view.set_image(None)
        self.image_view.set_heatmap(None, 0.0, 1.0)
        self.image_view.set_gt(None)
        self.image_view.set_marker(None)
        self.cloud_view.set_cloud(None)
        self.cloud_view.set_gt(None)
        self._current_result = None

    def _clear_result(self) -> None:
        self._current_result = None
        self.image_view.set_heatmap(None, 0.0, 1.0)
        self.image_view.set_threshold(None)
        self.cloud_view.set_scores(None, 0.0, 1.0)
        self.colorbar.set_threshold(None)

    def _show_sample(self, ref, sample: Sample) -> None:
        self._current_sample = sample
        self._current_result = None
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
        self.cloud_pane.caption.setText(
            (f"3D · {n:,} points" + (f" (showing {self.cloud_view.max_display_points:,})"
                                     if n > self.cloud_view.max_display_points else "")
             + ("" if self.cloud_view.backend == "interactor" else " · off-screen render, drag to orbit"))
            if n else "No point cloud")
        self.image_view.fit_view()
        self.reset_3d_view()
        self._update_title()
        self.sampleShown.emit(ref.key)
        res = self.session.result(ref.key)
        if res is not None:
            self._show_result(res)
        else:
            self._auto_run()

    def _update_title(self) -> None:
        ref = self._current_ref()
        if ref is None:
            self.sample_title.setText("No sample")
            self.sample_info.setText("")
            return
        rec = self.session.records.get(ref.key)
        gt = "" if not ref.label else (f" <span style='color:#e8a87c'>{ref.label}</span>" if not ref.is_good
                                       else " <span style='color:#8a8f98'>good</span>")
        self.sample_title.setText(f"<b>{ref.class_name}</b> <span style='color:#8a8f98'>/ {ref.split} /</span>"
                                  f"{gt} <span style='color:#8a8f98'>/</span> <b>{ref.id}</b>")
        info = ""
        if rec is not None and rec.image_score is not None:
            dec = rec.decision
            color = "#ff8a5c" if rec.anomalous else "#63c174"
            info = (f"image score <b>{rec.image_score:.3f}</b>"
                    + (f" &nbsp;<span style='color:{color}; font-weight:bold'>● {dec.upper()}</span>" if dec else "")
                    + (" <span style='color:#8a8f98'>(stale)</span>" if rec.stale else ""))
        elif rec is not None and rec.error:
            info = "<span style='color:#e26464'>cannot be analysed</span>"
        elif self.runner.busy:
            info = "<span style='color:#8a8f98'>analysing…</span>"
        self.sample_info.setText(info)

    def _show_result(self, res: DetectorResult) -> None:
        sample = self._current_sample
        if sample is None:
            return
        self._current_result = res
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
        self._update_title()
        self._show_review()
        self.resultShown.emit(self._current_key or "")

    def reset_3d_view(self) -> None:
        """The default camera: the sensor's view tilted by ~35 degrees so relief reads as 3D."""
        self.cloud_view.reset_view()
        h = max(self.cloud_view.height(), 1)
        self.cloud_view.orbit(0.0, -35.0 * h / 200.0)   # CloudView.orbit: 200 deg per view height
        self.cloud_view.zoom(1.25)

    def _set_colormap(self, name: str) -> None:
        self.image_view.set_colormap(name)
        self.cloud_view.set_colormap(name)
        self.colorbar.set_colormap(name)

    def _set_weighted_overlay(self, on: bool) -> None:
        """Score-weighted overlays: the photo / the part's own colours show where scores are low."""
        self.image_view.set_alpha_gamma(DEFAULT_ALPHA_GAMMA if on else 0.0)
        # 3D: a gentler ramp at full strength (no photo underneath to compare with)
        self.cloud_view.set_score_blend(CLOUD_BLEND_GAMMA if on else 0.0, 1.0)
        self.settings.set_value("view/weighted_overlay", bool(on))

    def _set_show_gt(self, on: bool) -> None:
        self.image_view.set_show_gt(on)
        self.cloud_view.set_show_gt(on)

    # ------------------------------------------------------------------ 2D <-> 3D linking
    def _on_pixel_hovered(self, row: int, col: int) -> None:
        self._hover = (row, col)
        if not self._hover_timer.isActive():
            self._hover_timer.start()

    def _apply_hover(self) -> None:
        s = self._current_sample
        if s is None or self._hover is None:
            return
        r, c = self._hover
        idx = pixel_to_point(s, r, c)
        text = [f"pixel ({r}, {c})"]
        res = self._current_result
        if res is not None and res.pixel_map is not None and 0 <= r < res.pixel_map.shape[0] \
                and 0 <= c < res.pixel_map.shape[1]:
            v = res.pixel_map[r, c]
            text.append(f"score {v:.3f}" if np.isfinite(v) else "score n/a")
        if idx is not None:
            text.append(f"point #{idx}")
            self.cloud_view.mark_point(idx)
        elif s.organized:
            text.append("no 3D point here")
            self.cloud_view.mark_point(self._clicked_point)
        self.status_hover.setText("  ·  ".join(text))

    def _on_hover_left(self) -> None:
        self._hover = None
        self._hover_timer.stop()
        self.cloud_view.mark_point(self._clicked_point)

    def _on_pixel_clicked(self, row: int, col: int) -> None:
        s = self._current_sample
        if s is None:
            return
        self.image_view.set_marker((row, col))
        self._clicked_point = pixel_to_point(s, row, col)
        self.cloud_view.mark_point(self._clicked_point)

    def _on_point_picked(self, index: int) -> None:
        s = self._current_sample
        if s is None:
            return
        self._clicked_point = index
        self.cloud_view.mark_point(index)
        rc = point_to_pixel(s, index)
        self.image_view.set_marker(rc)
        text = [f"point #{index}"]
        res = self._current_result
        if res is not None and res.point_scores is not None and index < len(res.point_scores):
            text.append(f"score {res.point_scores[index]:.3f}")
        if rc is not None:
            text.append(f"pixel ({rc[0]}, {rc[1]})")
        self.status_hover.setText("  ·  ".join(text))

    # ================================================================== running
    def _start_job(self, kind: str, name: str, fn) -> bool:
        if self.runner.busy:
            return False
        self._job_kind = kind
        return self.runner.start(name, fn)

    def _auto_run(self) -> None:
        if self.detector_panel.auto_run.isChecked() or self._pending_run:
            self.run_current()

    def run_current(self, force: bool = False) -> bool:
        """Analyse the selected sample (fit its class first if needed) in the worker thread."""
        ref = self._current_ref()
        if ref is None or self.session.detector is None:
            return False
        if self.runner.busy:
            self._pending_run = True
            return False
        self._pending_run = False
        if not force and self.session.result(ref.key) is not None:
            return False
        rec = self.session.records.get(ref.key)
        if not force and rec is not None and rec.error and not rec.stale and rec.image_score is None:
            return False   # already failed with these parameters; F5 retries
        session = self.session
        msgs: list[str] = []

        def job(progress, cancel, emit):
            a = session.analyze(ref, progress, cancel,
                                on_error=lambda item, err: emit(("support-skipped", item, err)), force=force)
            return a

        self._support_errors = msgs
        return self._start_job("analyze", f"Analysing {ref.key}", job)

    def run_all(self) -> bool:
        """Analyse every sample the browser shows; bad files are listed as skipped, the run goes on."""
        refs = self.browser.visible_refs()
        if not refs or self.session.detector is None:
            return False
        if self.runner.busy:
            self.banner.info("A run is in progress: cancel it first (Esc).")
            return False
        session = self.session

        def job(progress, cancel, emit):
            return session.run(refs, progress, cancel, on_result=emit,
                               on_error=lambda item, err: emit(("skipped", item, err)))

        return self._start_job("run", f"Analysing {len(refs)} samples", job)

    def cancel_run(self) -> None:
        if self.runner.busy:
            self._pending_run = False
            self.runner.cancel()
            self.detector_panel.progress_label.setText("cancelling…")

    def _on_job_started(self, name: str) -> None:
        self.detector_panel.set_running(True, name)
        self.status_job.setText(name)
        self.status_progress.setValue(0)
        self.status_progress.setFormat("starting…")
        self.status_job.setVisible(True)
        self.status_progress.setVisible(True)
        self._update_title()
        self.act_run.setEnabled(False)
        self.act_run_all.setEnabled(False)
        self.act_cancel.setEnabled(True)

    def _on_partial(self, obj: Any) -> None:
        if isinstance(obj, Analysis):
            self.browser.model.refresh_key(obj.ref.key)
            if obj.ref.key == self._current_key and not obj.stale and self._current_sample is not None:
                self._show_result(obj.result)
        elif isinstance(obj, tuple) and obj and obj[0] in ("skipped", "support-skipped"):
            _, item, err = obj
            key = getattr(item, "key", str(item))
            self.browser.model.refresh_key(key)
            if obj[0] == "support-skipped":
                self.banner.warning(f"A support sample was left out: {describe_error(err)}")

    def _on_job_finished(self, name: str, result: Any) -> None:
        kind = self._job_kind
        if kind == "demo":
            self.open_folder(result)
            return
        if isinstance(result, Analysis):
            a = result
            self.browser.model.refresh_key(a.ref.key)
            fit = f"fit {a.fit_seconds:.2f} s · " if a.fit_seconds else ""
            self.status_timing.setText(f"{fit}extract {a.seconds:.2f} s")
            if a.ref.key == self._current_key and self._current_sample is not None:
                if a.stale:
                    self._pending_run = True
                else:
                    self._show_result(a.result)
            if not a.stale and self.banner.level == "error" and self.banner.isVisible():
                self.banner.dismiss()
        elif isinstance(result, RunSummary):
            s = result
            self.browser.model.refresh_all()
            self.status_timing.setText(s.message())
            if s.skipped:
                self.banner.warning(f"{s.message()}. {len(s.skipped)} sample(s) could not be analysed and were "
                                    f"skipped (see Details); fix or remove those files and run again.",
                                    [f"{k}: {m}" for k, m in s.skipped])
            elif s.cancelled:
                self.banner.info(f"Run cancelled: {s.message()}.")
            else:
                self.banner.info(f"Done: {s.message()}.")
            cur = self._current_key
            if cur and self._current_sample is not None:
                res = self.session.result(cur)
                if res is not None:
                    self._show_result(res)
            self._note_cancel_latency(s.cancelled)

    def _on_job_failed(self, name: str, err: Exception, tb: str) -> None:
        if self._job_kind == "demo":
            self.image_view.set_placeholder(None)
            self.cloud_view.set_placeholder(None)
        if self._job_kind == "analyze" and self._current_key:
            rec = self.session.records.get(self._current_key)
            if rec is not None:
                rec.error = describe_error(err)
                self.browser.model.refresh_key(self._current_key)
            self._update_title()
        from core.errors import MMADError
        details = "" if isinstance(err, MMADError) else tb
        if not isinstance(err, MMADError):
            log.error("%s failed:\n%s", name, tb)
        self.banner.error(f"{name} failed: {describe_error(err)}", details)
        self._pending_run = False

    def _on_job_cancelled(self, name: str) -> None:
        self._note_cancel_latency(True)
        if not self._pending_run:
            self.banner.info(f"{name}: cancelled.")

    def _note_cancel_latency(self, cancelled: bool) -> None:
        if cancelled and self.runner.t_cancel is not None:
            self.last_cancel_ms = (time.perf_counter() - self.runner.t_cancel) * 1000
            self.status_timing.setText(f"cancelled in {self.last_cancel_ms:.0f} ms")

    def _on_job_progress(self, fraction: float, message: str, eta_s: float) -> None:
        self.status_progress.setValue(int(round(fraction * 1000)))
        eta = format_eta(eta_s if eta_s >= 0 else None)
        self.status_progress.setFormat(f"{fraction * 100:.0f}%" + (f" · {eta}" if eta else ""))
        if message:
            self.status_job.setText(message if len(message) <= 70 else message[:67] + "…")

    def _on_job_idle(self) -> None:
        self.detector_panel.set_running(False, "cancelled" if self.runner.t_cancel else "done")
        self.status_job.setVisible(False)
        self.status_progress.setVisible(False)
        self.act_run.setEnabled(True)
        self.act_run_all.setEnabled(True)
        self.act_cancel.setEnabled(False)
        self._job_kind = ""
        if self._pending_run:
            QTimer.singleShot(0, self.run_current)

    # ================================================================== review
    def set_verdict(self, verdict: str) -> bool:
        """Record an annotator's verdict on the current sample (C / R / U) and move on."""
        key = self._current_key
        if key is None:
            return False
        if self.reviews is None:
            self.banner.warning("No dataset is open: nothing to review.")
            return False
        rec = self.session.records.get(key)
        try:
            self.reviews.record(key, verdict, note=self.review_panel.note.text(),
                                annotator=self.review_panel.annotator.text(),
                                image_score=rec.image_score if rec else None,
                                decision=rec.decision if rec else None, detector=self.session.detector_id)
        except ReviewWriteError as err:      # kept in memory (reviews.pending) and retried
            self.verdict_retry.failed(self.reviews, err)
        except OSError as err:
            self.banner.error(f"{self.reviews.path}: the verdict could not be saved ({err.strerror or err}).")
            return False
        self.review_panel.note.clear()
        self.browser.model.refresh_key(key)
        self._show_review()
        self._update_review_counts()
        if self.review_panel.advance.isChecked():
            self.browser.select_next(1)
        return True

    def _show_review(self) -> None:
        key = self._current_key
        rec = self.session.records.get(key) if key else None
        hist = self.reviews.history(key) if self.reviews is not None and key else []
        self.review_panel.show_history(key, rec.decision if rec else None, hist)

    def _update_review_counts(self) -> None:
        if self.reviews is not None:
            self.review_panel.show_counts(self.reviews.counts(), len(self.session.refs))

    def export_verdicts(self, path: str | Path | None = None) -> Optional[Path]:
        if self.reviews is None:
            self.banner.warning("No dataset is open: no verdicts to export.")
            return None
        if path is None:
            start = str(Path(self.settings.last_folder or Path.home()) / "verdicts.csv")
            path, _ = QFileDialog.getSaveFileName(self, "Export verdicts", start, "CSV (*.csv)")
            if not path:
                return None
        try:
            out = self.reviews.export_csv(path)
        except InputError as err:
            self.banner.error(str(err))
            return None
        self.banner.info(f"Verdicts exported to {out}")
        return out

    # ================================================================== misc
    def choose_screenshot(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", "mmad-inspector.png", "PNG (*.png)")
        if path:
            self.save_screenshot(path)

    def save_screenshot(self, path: str | Path) -> Path:
        """Save a PNG of the whole window (with the 3D view under X11 / the off-screen render)."""
        path = Path(path)
        pix = self.grab()
        if not pix.save(str(path), "PNG"):
            raise InputError(path, "could not write the screenshot")
        return path

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts", (
            "↑ ↓ / PgUp PgDn / N P   previous / next sample\n"
            "C  confirm the detection     R  reject it     U  unsure\n"
            "F5  run on this sample     Shift+F5  run on all shown samples     Esc  cancel\n"
            "G  ground truth     T  thumbnails / table     Ctrl+O  open folder     Ctrl+D  demo data\n"
            "Image: wheel zoom, drag pan, double-click fit, hover/click marks the 3D point.\n"
            "3D: drag orbit, wheel zoom, right-drag pan, click a point to mark its pixel."))

    # ------------------------------------------------------------------ drag & drop
    def dragEnterEvent(self, event) -> None:  # noqa: N802
        md = event.mimeData()
        if md.hasUrls() and any(u.isLocalFile() for u in md.urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        for u in event.mimeData().urls():
            if u.isLocalFile():
                self.open_folder(u.toLocalFile())
                event.acceptProposedAction()
                return

    # ------------------------------------------------------------------ shutdown
    def closeEvent(self, event) -> None:  # noqa: N802
        self.runner.cancel()
        self.runner.wait(3.0)
        self.loader.wait(2.0)
        self._save_params()
        if self.verdict_retry.pending:      # last chance for verdicts a full disk refused
            self.verdict_retry.retry()
        self.settings.save_window(self)
        self.settings.set_value("window/splitter", self.splitter.saveState())
        self.settings.set_view_options(colormap=self.cmap_combo.currentText(),
                                       opacity=self.opacity_slider.value() / 100.0,
                                       show_gt=self.gt_check.isChecked(), point_size=self.point_size.value(),
                                       auto_run=self.detector_panel.auto_run.isChecked(),
                                       advance=self.review_panel.advance.isChecked(),
                                       annotator=self.review_panel.annotator.text())
        if self.session.detector is not None:
            self.settings.detector_id = self.session.detector_id
            self.settings.device = self.session.device
        self.settings.sync()
        self.session.close()
        self.cloud_view.close()
        super().closeEvent(event)
