"""The inspection workbench main window: chrome (docks, menus, toolbar, status bar) and wiring.

Layout (the default; docks can be moved and the layout is remembered):

* centre: a message banner, the sample's title and the :class:`app.inspector.InspectorView` (the
  RGB image with the anomaly heatmap | the shared colour bar | the 3D point cloud coloured by
  per-point score);
* left: the sample browser (table / thumbnails, filters) and the review panel;
* right: the detector panel (parameters, device, run / cancel, progress), then the fusion, prompt
  and few-shot panels as tabs (each scrolls, so the views keep their width from 1280 x 720 up);
* bottom (under the views, hidden by default, View menu / F9): the evaluation panel (per-class
  score histogram with a draggable threshold, ROC, confusion matrix).

:mod:`app.demo_mode` runs the window by itself (View > Demo mode, ``main.py --demo``).

All state lives in a Qt-free :class:`core.session.Session`.  The menus, toolbar and shortcuts come
from :mod:`app.actions`; the work is done by the controllers in :mod:`app.controllers` (dataset,
analysis, review, project, training), each given the session and the panels and views it drives;
the window builds the widgets, the controllers, and wires them together.  Every job off the GUI
thread goes through one :class:`app.jobs.JobRunner` (:attr:`MainWindow.runner`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt, QTimer, Signal
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QFrame, QHBoxLayout, QLabel, QMainWindow, QMessageBox,
                               QScrollArea, QSizePolicy, QVBoxLayout, QWidget)

from core.errors import InputError
from core.io import atomic_write
from core.session import ProcessBackend, Session

from .actions import ACTIONS, build_actions, build_menus, shortcuts_text, toolbar_specs
from .controllers import (APP_TITLE, AnalysisController, DatasetController, ProjectController, ReviewController,
                          TrainingController)
from .demo_mode import DemoMode
from .inspector import InspectorView
from .jobs import JobRunner, on_gui_thread
from .panels import (BrowserPanel, DetectorPanel, FewShotPanel, FusionPanel, MessageBanner, PromptPanel,
                     ReviewPanel)
from .panels.evaluation import EvaluationPanel
from .panels.status import StatusFields
from .panels.train import TrainPanel
from .settings import Settings

STYLESHEET_PATH = Path(__file__).resolve().parent.parent / "resources" / "style.qss"
COMPACT_WIDTH = 1700   # narrower windows start with one dock column (see MainWindow._fit_docks)


class MainWindow(QMainWindow):
    """The workbench.  ``MainWindow(settings, session)``; then :meth:`open_folder` or :meth:`open_demo`.

    Its parts are attributes: the views (``inspector`` with ``image_view``, ``cloud_view``...), the
    panels (``browser``, ``detector_panel``...), ``status`` (the status bar's fields), ``runner``
    (the jobs) and the controllers (``dataset``, ``analysis``, ``review``, ``project``, ``training``).

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
        self.runner = JobRunner(self)
        self._opts = self.settings.view_options()
        self._split_initialized = False
        self.setWindowTitle(APP_TITLE)
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self._build_central()
        self._build_docks()
        self.status = StatusFields(self.statusBar())
        self._build_controllers()
        self.action_map = build_actions(self, self)
        self._build_menus()
        self._build_toolbar()
        self._build_evaluation()
        self.inspector.hoverText.connect(self.status.hover.setText)
        self.inspector.navigate.connect(self.browser.select_next)
        self.inspector.weighted_check.toggled.connect(lambda on: self.settings.set_value("view/weighted_overlay", on))
        self.runner.started.connect(lambda job: self._set_running(True))
        self.runner.finished.connect(lambda job: self._set_running(False))
        self.analysis.init_detector()
        start = getattr(self.session.backend, "start", None)
        if start is not None:      # the worker process imports the detector libraries meanwhile
            QTimer.singleShot(0, start)
        self.resize(1500, 920)
        if restore_layout:
            self.settings.restore_window(self)
            state = self.settings.value("window/splitter")
            if state is not None and self.inspector.restoreState(state):
                self._split_initialized = True

    def _build_controllers(self) -> None:
        """The controllers, each with the session and the panels / views it drives, and their wiring."""
        s, st, jobs = self.session, self.settings, self.runner
        common = dict(banner=self.banner, parent=self)
        self.review = ReviewController(s, st, review_panel=self.review_panel, browser=self.browser,
                                       inspector=self.inspector, status=self.status, **common)
        self.project = ProjectController(s, st, inspector=self.inspector, browser=self.browser,
                                         review_panel=self.review_panel, review=self.review, status=self.status,
                                         **common)    # the dataset's SQLite project (restore / save)
        self.review.project = self.project
        self.dataset = DatasetController(s, st, jobs, browser=self.browser, inspector=self.inspector,
                                         fewshot_panel=self.fewshot_panel, title=self.sample_title,
                                         info=self.sample_info, status=self.status, review=self.review,
                                         project=self.project, **common)
        self.analysis = AnalysisController(s, st, jobs, self.dataset, detector_panel=self.detector_panel,
                                           fusion_panel=self.fusion_panel, prompt_panel=self.prompt_panel,
                                           fewshot_panel=self.fewshot_panel, browser=self.browser,
                                           inspector=self.inspector, status=self.status, **common)
        self.analysis.params_store = self.project   # the one store of a dataset's detector parameters
        self.training = TrainingController(s, st, jobs, self.analysis, train_panel=self.train_panel,
                                           detector_panel=self.detector_panel, **common)
        self.dataset.sampleShown.connect(self.sampleShown)
        self.dataset.datasetOpened.connect(lambda path: self.setWindowTitle(f"{Path(path).name} - {APP_TITLE}"))
        self.dataset.datasetOpened.connect(self.datasetOpened)
        self.dataset.currentChanged.connect(self.review.show_review)
        self.analysis.resultShown.connect(self.review.show_review)
        self.analysis.resultShown.connect(self.resultShown)
        self.analysis.detectorChanged.connect(
            lambda det: self.prompt_dock.setWindowTitle("Prompts" if det.needs.text_prompts else "Prompts (n/a)"))
        self.project.restored.connect(self._project_restored)
        # the headless model emits events (possibly from the job thread): marshal them to the GUI
        ev = self.session.events
        ev.dataset_changed.connect(on_gui_thread(self.dataset.dataset_changed))
        ev.records_changed.connect(on_gui_thread(self.analysis.records_changed))
        ev.fitted.connect(on_gui_thread(lambda class_name, *_: self.analysis.fitted(class_name)))
        ev.dataset_changed.connect(on_gui_thread(self.training.dataset_changed))

    def _project_restored(self, detector_changed: bool, support_changed: bool) -> None:
        if detector_changed:
            self.analysis.detector_changed()
        elif support_changed:
            self.analysis.refresh_fewshot()

    # ================================================================== commands (scripts, tests, main.py)
    def open_folder(self, path: str | Path, layout: Optional[str] = None) -> bool:
        """Open a dataset folder (or one file); see :meth:`DatasetController.open_folder`."""
        return self.dataset.open_folder(path, layout)

    def open_demo(self) -> bool:
        """Open the built-in demo data, generating it in the background the first time."""
        return self.dataset.open_demo()

    def set_dataset(self, dataset) -> None:
        """Show an already opened :class:`core.datasets.base.Dataset`."""
        self.dataset.set_dataset(dataset)

    def show_train_panel(self) -> None:
        """Run > Train a model…: show and raise the Train dock."""
        self.train_dock.show()
        self.train_dock.raise_()
        self.train_panel.setFocus()

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
        lay.addLayout(bar)
        self.inspector = InspectorView(self._opts, bool(self.settings.value("view/weighted_overlay", True, bool)))
        bar.insertWidget(1, self.inspector.badge)
        lay.addWidget(self.inspector, 1)
        lay.addWidget(self.inspector.map_strip)
        self.setCentralWidget(central)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._split_initialized:
            self._split_initialized = True
            self._fit_docks()
            self.inspector.fit_sizes()

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea,
              scroll: bool = False) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(name)
        if scroll:
            sa = QScrollArea()
            sa.setWidgetResizable(True)
            sa.setFrameShape(QFrame.Shape.NoFrame)
            sa.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
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
        self.prompt_dock = self._dock("Prompts", "dockPrompts", self.prompt_panel, R, scroll=True)
        self.fewshot_dock = self._dock("Few-shot", "dockFewShot", self.fewshot_panel, R, scroll=True)
        self.train_panel = TrainPanel()
        self.train_dock = self._dock("Train", "dockTrain", self.train_panel, R, scroll=True)
        self.tabifyDockWidget(self.fusion_dock, self.prompt_dock)
        self.tabifyDockWidget(self.prompt_dock, self.fewshot_dock)
        self.tabifyDockWidget(self.fewshot_dock, self.train_dock)
        self.fusion_dock.raise_()
        self.splitDockWidget(self.browser_dock, self.review_dock, Qt.Orientation.Vertical)
        self.resizeDocks([self.browser_dock, self.review_dock], [620, 260], Qt.Orientation.Vertical)
        self.resizeDocks([self.browser_dock, self.detector_dock], [340, 360], Qt.Orientation.Horizontal)
        self._default_state = self.saveState()

    def _build_menus(self) -> None:
        docks = (self.browser_dock, self.review_dock, self.detector_dock, self.fusion_dock, self.prompt_dock,
                 self.fewshot_dock, self.train_dock)
        for a in self.action_map.values():
            self.addAction(a)
        build_menus(self.menuBar(), self.action_map, ACTIONS, prefix={"view": [d.toggleViewAction() for d in docks]})

    def _build_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("toolbarMain")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for spec in toolbar_specs(ACTIONS):
            if spec is None:
                tb.addSeparator()
            else:
                tb.addAction(self.action_map[spec.id])
        # the view options: a second toolbar, on its own row when one row is too narrow (resizeEvent)
        self.view_toolbar = vt = self.addToolBar("View options")
        vt.setObjectName("toolbarView")
        vt.setMovable(False)
        for w in self.inspector.option_widgets():
            vt.addWidget(w)

    def _set_running(self, running: bool) -> None:
        """A main-lane job started / finished: Run and Cancel follow."""
        self.action_map["run"].setEnabled(not running)
        self.action_map["run_all"].setEnabled(not running)
        self.action_map["cancel"].setEnabled(running)

    # ================================================================== evaluation, demo mode, layout
    def _build_evaluation(self) -> None:
        """The evaluation dock (under the views), its wiring, and demo mode."""
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.evaluation = EvaluationPanel()
        self.evaluation_dock = self._dock("Evaluation", "dockEvaluation", self.evaluation,
                                          Qt.DockWidgetArea.BottomDockWidgetArea)
        self.evaluation_dock.hide()
        toggle = self.evaluation_dock.toggleViewAction()
        toggle.setShortcut("F9")
        view_menu = next(a.menu() for a in self.menuBar().actions() if a.text() == "&View")
        view_menu.insertAction(view_menu.actions()[0], toggle)
        self._eval_timer = QTimer(self)
        self._eval_timer.setSingleShot(True)
        self._eval_timer.setInterval(300)
        self._eval_timer.timeout.connect(self._refresh_evaluation)
        self.browser.model.dataChanged.connect(lambda *_: self._eval_timer.start())
        self.evaluation_dock.visibilityChanged.connect(lambda on: on and self._eval_timer.start())
        self.session.events.params_changed.connect(on_gui_thread(lambda *_: self._eval_threshold()))
        self.datasetOpened.connect(lambda _p: self.evaluation.set_session(self.session))
        self.dataset.currentChanged.connect(lambda key: self.evaluation.set_class(key.split("/")[0] if key else ""))
        self.evaluation.thresholdMoved.connect(self._eval_threshold_dragged)
        self.evaluation.filterRequested.connect(self.browser.set_key_filter)
        self.demo_mode = self.new_demo_mode()

    def new_demo_mode(self, **options) -> DemoMode:
        """A :class:`DemoMode` of this window (``options``: dwell_s, orbit_deg_per_s, resume_after_s, full_screen)."""
        return DemoMode(self, self.session, self.runner, self.dataset, self.analysis, inspector=self.inspector,
                        browser=self.browser, detector_panel=self.detector_panel, banner=self.banner, **options)

    def _refresh_evaluation(self) -> None:
        if self.evaluation_dock.isVisible():
            self._eval_threshold(refresh=False)
            self.evaluation.refresh()

    def _eval_threshold(self, refresh: bool = True) -> None:
        self.evaluation.sync_threshold()
        if refresh:
            self._eval_timer.start()

    def _eval_threshold_dragged(self, value: float) -> None:
        """The evaluation view's threshold line moved: the fusion parameter follows (live re-fuse)."""
        self.analysis.set_fusion_param("threshold", value)
        self.fusion_panel.set_values({"threshold": self.session.params.get("threshold", value)})

    def _fit_docks(self) -> None:
        """First show without a saved layout: below ``COMPACT_WIDTH`` the right-hand docks become
        tabs beside the review panel in one left column, so each view keeps >= 400 px at 1280 px."""
        if self.width() >= COMPACT_WIDTH:
            return
        sa = QScrollArea()                    # the review panel scrolls in the narrow column
        sa.setWidgetResizable(True)
        sa.setFrameShape(QFrame.Shape.NoFrame)
        sa.setWidget(self.review_panel)
        self.review_dock.setWidget(sa)
        right = [d for d in self.findChildren(QDockWidget)
                 if self.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea and not d.isFloating()]
        for d in right:
            self.tabifyDockWidget(self.review_dock, d)
        self.detector_dock.raise_()
        side = min(max(300, self.width() - 2 * 430 - 90), 420)
        self.resizeDocks([self.browser_dock], [side], Qt.Orientation.Horizontal)
        self.resizeDocks([self.browser_dock, self.review_dock], [45, 55], Qt.Orientation.Vertical)
        QTimer.singleShot(0, self.inspector.fit_sizes)     # once the docks have their new width

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        tb, vt = self.findChild(QWidget, "toolbarMain"), self.view_toolbar
        two_rows = tb.sizeHint().width() + vt.sizeHint().width() + 16 > self.width()
        if two_rows != self.toolBarBreak(vt):
            if two_rows:
                self.insertToolBarBreak(vt)
            else:
                self.removeToolBarBreak(vt)

    # ================================================================== misc
    def choose_screenshot(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save screenshot", "mmad-inspector.png", "PNG (*.png)")
        if path:
            self.save_screenshot(path)

    def save_screenshot(self, path: str | Path) -> Path:
        """Save a PNG of the whole window (with the 3D view under X11 / the off-screen render)."""
        path = Path(path)
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        if not self.grab().save(buf, "PNG"):
            raise InputError(path, "could not encode the screenshot")
        return atomic_write(path, data.data())

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts", shortcuts_text(ACTIONS))

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

    def closeEvent(self, event) -> None:  # noqa: N802
        self.training.shutdown()
        self.runner.shutdown()
        self.analysis.save_params()
        self.project.close()               # saves scores / detector choice, releases the lock
        self.review.retry.shutdown()       # last chance for verdicts a full disk refused
        self.settings.save_window(self)
        self.settings.set_value("window/splitter", self.inspector.saveState())
        self.settings.set_view_options(**self.inspector.options(),
                                       auto_run=self.detector_panel.auto_run.isChecked(),
                                       advance=self.review_panel.advance.isChecked(),
                                       annotator=self.review_panel.annotator.text())
        if self.session.detector is not None:
            self.settings.detector_id = self.session.detector_id
            self.settings.device = self.session.device
        self.settings.sync()
        self.session.close()
        self.inspector.cloud_view.close()
        super().closeEvent(event)
