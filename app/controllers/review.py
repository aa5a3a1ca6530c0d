"""Review controller: the annotator's verdicts on the current sample and their export.

C / R / U judge the detector's call, O / X / (unsure) the part itself (:meth:`set_final`).  Every
verdict is recorded in the dataset's project (:class:`core.project.Project`, opened by the project
controller) and nowhere else; a project opened read-only (the dataset is open in another window)
records nothing and says so.  A verdict a full disk refuses is kept in memory, shown, and retried
(:class:`~app.panels.review.VerdictRetry`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from core.errors import MMADError
from core.project import OK, UNSURE, Project, ProjectWriteError
from core.session import Session

from ..inspector import InspectorView
from ..panels import BrowserPanel, MessageBanner, ReviewPanel
from ..panels.review import FINAL_TEXT, VerdictRetry
from ..panels.status import StatusFields
from ..settings import Settings


class ReviewController(QObject):
    """Drives the review panel (and the browser's next sample) for the inspector's sample; the
    verdicts go to the project of ``project`` (a :class:`~app.controllers.project.ProjectController`,
    set by the window)."""

    def __init__(self, session: Session, settings: Settings, *, review_panel: ReviewPanel, browser: BrowserPanel,
                 inspector: InspectorView, banner: MessageBanner, status: StatusFields,
                 parent: Optional[QObject] = None):
        super().__init__(parent)
        self.session, self.settings = session, settings
        self.panel, self.browser, self.inspector, self.banner, self.status = (review_panel, browser, inspector,
                                                                               banner, status)
        self.project = None
        self.retry = VerdictRetry(self)    # unsaved verdicts (disk full...): kept and retried
        self.retry.message.connect(lambda level, text: banner.show_message(level, text))
        review_panel.verdictRequested.connect(self.set_verdict)
        review_panel.exportRequested.connect(self.export_verdicts)

    @property
    def store(self) -> Optional[Project]:
        """The project holding the verdicts of the open dataset (None when there is none)."""
        pc = self.project
        return pc.project if pc is not None else None

    def record(self, verdict: Optional[str] = None, final: Optional[str] = None) -> Optional[str]:
        """Record a verdict (on the detector's call) and / or a final verdict (on the part) on the
        current sample, with the panel's note and annotator; returns its key, None when nothing
        was recorded (the window says why).  A note left empty keeps the sample's note."""
        key = self.inspector.key
        if key is None:
            return None
        store = self.store
        if store is None:
            self.banner.warning("No dataset is open, or its project cannot be opened: the verdict cannot be saved.")
            return None
        if store.read_only:
            self.banner.warning(f"{store.path}: this dataset is open in another MMAD Inspector window; it is "
                                "read-only here and the verdict is not saved.")
            return None
        rec = self.session.records.get(key)
        panel = self.panel
        try:
            store.record_verdict(key, verdict=verdict, final=final, note=panel.note.text() or None,
                                 reviewer=panel.annotator.text(), image_score=rec.image_score if rec else None,
                                 decision=rec.decision if rec else None, detector=self.session.detector_id)
        except ProjectWriteError as err:      # kept in memory (store.pending) and retried
            self.retry.failed(store, err)
        except (MMADError, OSError) as err:
            self.banner.error(f"{store.path}: the verdict could not be saved ({err}).")
            return None
        panel.note.clear()
        self.browser.model.refresh_key(key)
        self.show_review()
        self.update_counts()
        return key

    def set_verdict(self, verdict: str) -> bool:
        """Record an annotator's verdict on the detector's call (C / R / U) and move on."""
        if self.record(verdict=verdict) is None:
            return False
        if self.panel.advance.isChecked():
            self.browser.select_next(1)
        return True

    def set_final(self, final: str) -> bool:
        """The reviewer's final call on the part (OK / NOK / unsure), beside the detector's."""
        key = self.record(final=final)
        if key is None:
            return False
        rec = self.session.records.get(key)
        det = rec.decision if rec else None
        disagree = det is not None and ((final == OK) != (det == "good")) and final != UNSURE
        self.status.message(f"{key}: final verdict {FINAL_TEXT[final]}"
                            + (" (disagrees with the detector)" if disagree else ""), 8000)
        if self.panel.advance.isChecked():
            self.browser.select_next(1)
        return True

    def show_review(self, *_) -> None:
        key = self.inspector.key
        rec = self.session.records.get(key) if key else None
        store = self.store
        hist = store.verdict_history(key) if store is not None and key else []
        self.panel.show_history(key, rec.decision if rec else None, hist)

    def update_counts(self) -> None:
        store = self.store
        if store is not None:
            self.panel.show_counts(store.verdict_counts(), len(self.session.refs))

    def export_verdicts(self, path: str | Path | None = None) -> Optional[Path]:
        from core.project.export import write_verdicts_csv
        store = self.store
        if store is None:
            self.banner.warning("No dataset is open: no verdicts to export.")
            return None
        if path is None:
            start = str(Path(self.settings.last_folder or Path.home()) / "verdicts.csv")
            path, _ = QFileDialog.getSaveFileName(self.panel.window(), "Export verdicts", start, "CSV (*.csv)")
            if not path:
                return None
        try:
            out = write_verdicts_csv(path, store.verdicts().values())
        except MMADError as err:
            self.banner.error(str(err))
            return None
        self.banner.info(f"Verdicts exported to {out}")
        return out
