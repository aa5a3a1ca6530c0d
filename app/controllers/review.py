"""Review controller: the annotator's verdicts on the current sample (C / R / U) and their export.

Verdicts live in a :class:`core.review.ReviewStore` next to the dataset (:meth:`open_store`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from core.errors import InputError
from core.review import ReviewStore, ReviewWriteError
from core.session import Session

from ..inspector import InspectorView
from ..panels import BrowserPanel, MessageBanner, ReviewPanel
from ..panels.review import VerdictRetry
from ..settings import Settings


class ReviewController(QObject):
    """Drives the review panel (and the browser's next sample) for the inspector's sample; verdicts
    are mirrored into ``project`` (a :class:`~app.controllers.project.ProjectController`) when the
    window sets one."""

    def __init__(self, session: Session, settings: Settings, *, review_panel: ReviewPanel, browser: BrowserPanel,
                 inspector: InspectorView, banner: MessageBanner, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.session, self.settings = session, settings
        self.panel, self.browser, self.inspector, self.banner = review_panel, browser, inspector, banner
        self.project = None
        self.store: Optional[ReviewStore] = None
        self.retry = VerdictRetry(self)    # unsaved verdicts (disk full...): kept and retried
        self.retry.message.connect(lambda level, text: banner.show_message(level, text))
        review_panel.verdictRequested.connect(self.set_verdict)
        review_panel.exportRequested.connect(self.export_verdicts)

    def open_store(self, root: Path) -> Optional[ReviewStore]:
        """The verdict store of the dataset at ``root`` (None, with a warning, if it cannot be saved)."""
        banner = self.banner
        try:
            self.store = ReviewStore.for_dataset(root)
            if self.store.warnings:
                banner.warning("Some saved verdicts could not be read (kept on disk, skipped).", self.store.warnings)
            else:
                banner.dismiss()
        except InputError as err:
            self.store = None
            banner.warning(f"Verdicts cannot be saved: {err}")
        return self.store

    def set_verdict(self, verdict: str) -> bool:
        """Record an annotator's verdict on the current sample (C / R / U) and move on."""
        key = self.inspector.key
        if key is None:
            return False
        if self.store is None:
            self.banner.warning("No dataset is open: nothing to review.")
            return False
        rec = self.session.records.get(key)
        panel = self.panel
        try:
            self.store.record(key, verdict, note=panel.note.text(), annotator=panel.annotator.text(),
                              image_score=rec.image_score if rec else None,
                              decision=rec.decision if rec else None, detector=self.session.detector_id)
            project = self.project
            if project is not None:
                project.mirror_verdict(key, verdict, panel.note.text(), panel.annotator.text(),
                                       rec.image_score if rec else None, rec.decision if rec else None)
        except ReviewWriteError as err:      # kept in memory (store.pending) and retried
            self.retry.failed(self.store, err)
        except OSError as err:
            self.banner.error(f"{self.store.path}: the verdict could not be saved ({err.strerror or err}).")
            return False
        panel.note.clear()
        self.browser.model.refresh_key(key)
        self.show_review()
        self.update_counts()
        if panel.advance.isChecked():
            self.browser.select_next(1)
        return True

    def show_review(self, *_) -> None:
        key = self.inspector.key
        rec = self.session.records.get(key) if key else None
        hist = self.store.history(key) if self.store is not None and key else []
        self.panel.show_history(key, rec.decision if rec else None, hist)

    def update_counts(self) -> None:
        if self.store is not None:
            self.panel.show_counts(self.store.counts(), len(self.session.refs))

    def export_verdicts(self, path: str | Path | None = None) -> Optional[Path]:
        if self.store is None:
            self.banner.warning("No dataset is open: no verdicts to export.")
            return None
        if path is None:
            start = str(Path(self.settings.last_folder or Path.home()) / "verdicts.csv")
            path, _ = QFileDialog.getSaveFileName(self.panel.window(), "Export verdicts", start, "CSV (*.csv)")
            if not path:
                return None
        try:
            out = self.store.export_csv(path)
        except InputError as err:
            self.banner.error(str(err))
            return None
        self.banner.info(f"Verdicts exported to {out}")
        return out
