"""Demo mode: the window runs by itself, e.g. on a trade-fair screen (``python main.py --demo``).

Full screen, only the two views and large captions (part, the detector's verdict, the score against
the threshold, the ground truth when known).  Every shown sample is analysed (auto-run), stays on
screen ``dwell_s`` seconds after its result appears, then the next sample of the list follows (the
list wraps around); the 3D view orbits slowly all the while.  Any key, click or wheel pauses the
cycle (the user can then look around: the views stay interactive) and it resumes after
``resume_after_s`` seconds without input; Esc leaves demo mode and restores the window as it was.
"""
from __future__ import annotations

import time
from typing import Optional

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QMainWindow, QSizePolicy, QVBoxLayout, QWidget

from core.session import Session

from .controllers import AnalysisController, DatasetController
from .inspector import InspectorView
from .jobs import JobRunner
from .panels import BrowserPanel, DetectorPanel, MessageBanner

__all__ = ["DemoMode", "DWELL_S", "ORBIT_DEG_PER_S", "RESUME_AFTER_S"]

DWELL_S = 6.0              # seconds a result stays on screen
ORBIT_DEG_PER_S = 8.0      # 3D orbit speed (one turn in 45 s)
RESUME_AFTER_S = 20.0      # a pause ends after this long without input
MAX_WAIT_S = 90.0          # a sample whose analysis never finishes is left after this long
_TICK_MS = 200
_ORBIT_MS = 50
_INPUT_EVENTS = {QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.MouseButtonDblClick,
                 QEvent.Type.Wheel, QEvent.Type.TouchBegin}

_STYLE = """
QWidget#demoCaption { background: #101215; border-bottom: 2px solid #2b2f35; }
QWidget#demoCaption QLabel { background: transparent; }
QLabel#demoPart { font-size: 30px; font-weight: bold; color: #e8eaed; }
QLabel#demoVerdict { font-size: 34px; font-weight: bold; padding: 2px 18px; border-radius: 6px; }
QLabel#demoScore { font-size: 26px; color: #d8dbe0; }
QLabel#demoHint { font-size: 14px; color: #8a8f98; }
"""


class DemoCaption(QWidget):
    """The large caption above the views: part | verdict | score, and a hint line."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setObjectName("demoCaption")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(_STYLE)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(18, 10, 18, 8)
        lay.setSpacing(2)
        row = QHBoxLayout()
        self.part = QLabel()
        self.part.setObjectName("demoPart")
        self.part.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.verdict = QLabel()
        self.verdict.setObjectName("demoVerdict")
        self.score = QLabel()
        self.score.setObjectName("demoScore")
        self.score.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(self.part, 1)
        row.addWidget(self.verdict)
        row.addSpacing(24)
        row.addWidget(self.score)
        lay.addLayout(row)
        self.hint = QLabel()
        self.hint.setObjectName("demoHint")
        lay.addWidget(self.hint)

    def set_verdict(self, text: str, anomalous: Optional[bool]) -> None:
        color = "#b03a36" if anomalous else "#2f8a52" if anomalous is not None else "#3a3f46"
        self.verdict.setStyleSheet(f"background: {color}; color: #ffffff;")
        self.verdict.setText(text)


class DemoMode(QObject):
    """``DemoMode(window, ...).start()`` / ``stop()``; signals ``started()``, ``stopped()``, ``advanced(key)``.

    It takes over ``window`` (its docks, toolbars, menu and status bar are hidden, the caption goes
    above its central widget) and drives the browser, the inspector and the ``analysis`` of the
    ``dataset``'s current sample (``MainWindow.new_demo_mode`` builds one for the window)."""

    started = Signal()
    stopped = Signal()
    advanced = Signal(str)

    def __init__(self, window: QMainWindow, session: Session, jobs: JobRunner, dataset: DatasetController,
                 analysis: AnalysisController, *, inspector: InspectorView, browser: BrowserPanel,
                 detector_panel: DetectorPanel, banner: MessageBanner, dwell_s: float = DWELL_S,
                 orbit_deg_per_s: float = ORBIT_DEG_PER_S, resume_after_s: float = RESUME_AFTER_S,
                 full_screen: bool = True):
        super().__init__(window)
        self.win = window
        self.session, self.jobs, self.dataset, self.analysis = session, jobs, dataset, analysis
        self.inspector, self.browser, self.detector_panel, self.banner = inspector, browser, detector_panel, banner
        self.dwell_s = float(dwell_s)
        self.orbit_deg_per_s = float(orbit_deg_per_s)
        self.resume_after_s = float(resume_after_s)
        self.full_screen = full_screen
        self.active = False
        self.paused = False
        self._shown_at: Optional[float] = None     # when the current sample's result appeared
        self._since: float = 0.0                   # when the current sample was selected
        self._last_input = 0.0
        self._saved: dict = {}
        self.caption = DemoCaption()
        self.caption.setVisible(False)
        self._tick = QTimer(self)
        self._tick.setInterval(_TICK_MS)
        self._tick.timeout.connect(self._on_tick)
        self._orbit = QTimer(self)
        self._orbit.setInterval(_ORBIT_MS)
        self._orbit.timeout.connect(self._on_orbit)

    # ------------------------------------------------------------------ start / stop
    def start(self) -> None:
        if self.active:
            return
        w = self.win
        lay = w.centralWidget().layout()
        if lay.indexOf(self.caption) < 0:
            lay.insertWidget(0, self.caption)
        self._saved = dict(state=w.saveState(), full=w.isFullScreen(), maximized=w.isMaximized(),
                           menubar=w.menuBar().isVisible(), status=w.statusBar().isVisible(),
                           auto_run=self.detector_panel.auto_run.isChecked())
        self.active = True
        self.paused = False
        from PySide6.QtWidgets import QDockWidget, QToolBar  # noqa: PLC0415
        for child in w.findChildren(QDockWidget) + w.findChildren(QToolBar):
            child.hide()
        w.menuBar().hide()
        w.statusBar().hide()
        self.banner.dismiss()
        self.caption.setVisible(True)
        self.detector_panel.auto_run.setChecked(True)
        for sig, slot in self._signals():
            sig.connect(slot)
        QApplication.instance().installEventFilter(self)
        if self.full_screen:
            w.showFullScreen()
        self._tick.start()
        self._orbit.start()
        self._begin_sample()
        self.started.emit()

    def stop(self) -> None:
        if not self.active:
            return
        self.active = False
        self._tick.stop()
        self._orbit.stop()
        QApplication.instance().removeEventFilter(self)
        w = self.win
        for sig, slot in self._signals():
            sig.disconnect(slot)
        self.caption.setVisible(False)
        s = self._saved
        self.detector_panel.auto_run.setChecked(s["auto_run"])
        if not s["full"] and w.isFullScreen():
            w.showMaximized() if s["maximized"] else w.showNormal()
        w.menuBar().setVisible(s["menubar"])
        w.statusBar().setVisible(s["status"])
        w.restoreState(s["state"])
        self.inspector.reset_3d_view()
        self.stopped.emit()

    def _signals(self) -> tuple:
        return ((self.analysis.resultShown, self._on_result_shown), (self.dataset.sampleShown, self._on_sample_shown),
                (self.dataset.datasetOpened, self._on_dataset_opened))

    def toggle(self) -> None:
        self.stop() if self.active else self.start()

    # ------------------------------------------------------------------ cycling
    def advance(self) -> bool:
        """Show the next sample of the list (the first after the last); False without samples."""
        b = self.browser
        if b.proxy.rowCount() == 0:
            return False
        if not b.select_next(1):
            b.select_row(0)
        self._begin_sample()
        key = self.dataset.current_key or ""
        self.advanced.emit(key)
        return True

    def _begin_sample(self) -> None:
        self._since = time.monotonic()
        self._shown_at = None
        if self.dataset.current_key is None:
            if self.browser.proxy.rowCount():
                self.browser.select_row(0)
            else:
                self._caption_waiting("Preparing the demo data…")
                return
        if self.inspector.result is not None:
            self._shown_at = time.monotonic()
        elif not self.jobs.busy:
            self.analysis.run_current()
        self._update_caption()

    def _on_dataset_opened(self, _path: str) -> None:
        QTimer.singleShot(0, self._begin_sample)

    def _on_sample_shown(self, _key: str) -> None:
        self._update_caption()

    def _on_result_shown(self, key: str) -> None:
        if key == self.dataset.current_key and self._shown_at is None:
            self._shown_at = time.monotonic()
            self.inspector.reset_3d_view()
        self._update_caption()

    def _on_tick(self) -> None:
        now = time.monotonic()
        if self.paused:
            if now - self._last_input >= self.resume_after_s:
                self.resume()
            else:
                self._update_hint()
            return
        key = self.dataset.current_key
        rec = self.session.records.get(key) if key else None
        failed = rec is not None and rec.error and not self.jobs.busy
        if self._shown_at is not None and now - self._shown_at >= self.dwell_s and not self.jobs.busy:
            self.advance()
        elif (failed and now - self._since >= self.dwell_s) or now - self._since >= MAX_WAIT_S:
            self.advance()
        elif key is None and self.browser.proxy.rowCount():
            self._begin_sample()

    def _on_orbit(self) -> None:
        cloud = self.inspector.cloud_view
        if not self.paused and cloud.n_points:
            cloud.azimuth(self.orbit_deg_per_s * _ORBIT_MS / 1000.0)

    # ------------------------------------------------------------------ pause
    def pause(self) -> None:
        self._last_input = time.monotonic()
        if not self.paused:
            self.paused = True
        self._update_hint()

    def resume(self) -> None:
        self.paused = False
        if self._shown_at is not None:
            self._shown_at = time.monotonic()      # the full dwell again after a pause
        self._update_hint()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        t = event.type()
        if t == QEvent.Type.ShortcutOverride and event.key() == Qt.Key.Key_Escape:
            event.accept()          # Esc leaves demo mode; it must not reach the Cancel shortcut
            return True
        if t in _INPUT_EVENTS:
            if t == QEvent.Type.KeyPress and event.key() == Qt.Key.Key_Escape:
                QTimer.singleShot(0, self.stop)
                return True
            self.pause()
        return False

    # ------------------------------------------------------------------ captions
    def _caption_waiting(self, text: str) -> None:
        c = self.caption
        c.part.setText(text)
        c.set_verdict("", None)
        c.verdict.setVisible(False)
        c.score.setText("")
        self._update_hint()

    def _update_caption(self) -> None:
        c = self.caption
        key = self.dataset.current_key
        if key is None:
            return
        try:
            ref = self.session.ref(key)
        except Exception:  # noqa: BLE001 - a stale key while the dataset changes
            return
        c.part.setText(f"{ref.class_name} · {ref.id}" + (f"   (truth: {ref.label})" if ref.label else ""))
        res = self.inspector.result
        rec = self.session.records.get(key)
        c.verdict.setVisible(True)
        if res is None:
            c.set_verdict("could not analyse" if rec is not None and rec.error else "analysing…", None)
            c.score.setText("")
        else:
            anomalous = res.is_anomalous
            c.set_verdict("DEFECT" if anomalous else "OK" if anomalous is not None else "scored", anomalous)
            t = res.threshold
            c.score.setText(f"score {res.image_score:.3f}" + (f"  ·  threshold {t:.3f}" if t is not None else ""))
        self._update_hint()

    def _update_hint(self) -> None:
        if self.paused:
            left = max(0.0, self.resume_after_s - (time.monotonic() - self._last_input))
            text = f"Demo mode paused · resumes in {left:.0f} s · Esc leaves"
        else:
            text = "Demo mode · any key or click pauses · Esc leaves"
        self.caption.hint.setText(text)
