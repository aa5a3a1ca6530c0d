"""Review controller: the annotator's verdicts on the current sample (C / R / U) and their export.

Verdicts live in a :class:`core.review.ReviewStore` next to the dataset (:meth:`open_store`).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from core.errors import InputError
from core.review import ReviewStore, ReviewWriteError

from ..panels.review import VerdictRetry

if TYPE_CHECKING:
    from ..main_window import MainWindow


class ReviewController(QObject):
    def __init__(self, win: "MainWindow"):
        super().__init__(win)
        self.win = win
        self.session = win.session
        self.store: Optional[ReviewStore] = None
        self.retry = VerdictRetry(win)     # unsaved verdicts (disk full...): kept and retried
        self.retry.message.connect(lambda level, text: win.banner.show_message(level, text))
        win.review_panel.verdictRequested.connect(self.set_verdict)
        win.review_panel.exportRequested.connect(self.export_verdicts)

    def open_store(self, root: Path) -> Optional[ReviewStore]:
        """The verdict store of the dataset at ``root`` (None, with a warning, if it cannot be saved)."""
        banner = self.win.banner
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
        win = self.win
        key = win.dataset.current_key
        if key is None:
            return False
        if self.store is None:
            win.banner.warning("No dataset is open: nothing to review.")
            return False
        rec = self.session.records.get(key)
        panel = win.review_panel
        try:
            self.store.record(key, verdict, note=panel.note.text(), annotator=panel.annotator.text(),
                              image_score=rec.image_score if rec else None,
                              decision=rec.decision if rec else None, detector=self.session.detector_id)
        except ReviewWriteError as err:      # kept in memory (store.pending) and retried
            self.retry.failed(self.store, err)
        except OSError as err:
            win.banner.error(f"{self.store.path}: the verdict could not be saved ({err.strerror or err}).")
            return False
        panel.note.clear()
        win.browser.model.refresh_key(key)
        self.show_review()
        self.update_counts()
        if panel.advance.isChecked():
            win.browser.select_next(1)
        return True

    def show_review(self, *_) -> None:
        key = self.win.dataset.current_key
        rec = self.session.records.get(key) if key else None
        hist = self.store.history(key) if self.store is not None and key else []
        self.win.review_panel.show_history(key, rec.decision if rec else None, hist)

    def update_counts(self) -> None:
        if self.store is not None:
            self.win.review_panel.show_counts(self.store.counts(), len(self.session.refs))

    def export_verdicts(self, path: str | Path | None = None) -> Optional[Path]:
        win = self.win
        if self.store is None:
            win.banner.warning("No dataset is open: no verdicts to export.")
            return None
        if path is None:
            start = str(Path(win.settings.last_folder or Path.home()) / "verdicts.csv")
            path, _ = QFileDialog.getSaveFileName(win, "Export verdicts", start, "CSV (*.csv)")
            if not path:
                return None
        try:
            out = self.store.export_csv(path)
        except InputError as err:
            win.banner.error(str(err))
            return None
        win.banner.info(f"Verdicts exported to {out}")
        return out
