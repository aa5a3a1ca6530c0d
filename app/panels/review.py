"""Review panel: annotators confirm / reject / mark unsure the detector's decision on the current
sample (keys C / R / U), with an optional note; the history of the sample and a CSV export.

:class:`VerdictRetry` keeps the projects whose last verdict write failed (disk full, I/O error...)
and retries them on a timer until every verdict is on disk, saying so in the window."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QPushButton, QVBoxLayout, QWidget)

from core.project import CONFIRMED, REJECTED, UNSURE, Project, ProjectWriteError, VerdictRow

FINAL_TEXT = {"ok": "OK", "nok": "NOK", "unsure": "unsure"}


class ReviewPanel(QWidget):
    """``verdictRequested(verdict)`` from the buttons; ``exportRequested()``."""

    verdictRequested = Signal(str)
    exportRequested = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self._shown: Optional[tuple] = None   # what show_history displays now
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        form = QFormLayout()
        self.annotator = QLineEdit()
        self.annotator.setPlaceholderText("your name")
        self.note = QLineEdit()
        self.note.setPlaceholderText("optional note, kept with the next verdict")
        form.addRow("Annotator", self.annotator)
        form.addRow("Note", self.note)
        lay.addLayout(form)
        row = QHBoxLayout()
        self.buttons = {}
        for verdict, text, tip in ((CONFIRMED, "✓ Confirm (C)", "The detector's decision is right"),
                                   (REJECTED, "✗ Reject (R)", "The detector's decision is wrong"),
                                   (UNSURE, "? Unsure (U)", "Cannot tell")):
            b = QPushButton(text)
            b.setObjectName(f"verdict_{verdict}")
            b.setToolTip(tip)
            b.clicked.connect(lambda _=False, v=verdict: self.verdictRequested.emit(v))
            row.addWidget(b)
            self.buttons[verdict] = b
        lay.addLayout(row)
        self.advance = QCheckBox("Go to the next sample after a verdict")
        self.advance.setChecked(True)
        lay.addWidget(self.advance)
        self.current = QLabel()
        self.current.setWordWrap(True)
        lay.addWidget(self.current)
        self.history = QListWidget()
        self.history.setMaximumHeight(90)
        lay.addWidget(self.history)
        row2 = QHBoxLayout()
        self.counts = QLabel()
        self.counts.setObjectName("hint")
        row2.addWidget(self.counts, 1)
        self.export_btn = QPushButton("Export CSV…")
        self.export_btn.clicked.connect(self.exportRequested)
        row2.addWidget(self.export_btn)
        lay.addLayout(row2)

    def show_history(self, key: Optional[str], decision: Optional[str], history: list[VerdictRow]) -> None:
        """Show a sample's decision and verdict history (a no-op when nothing changed, so that a
        fusion slider re-showing the result does not rebuild the list on every move)."""
        state = (key, decision, tuple(history))
        if state == self._shown:
            return
        self._shown = state
        self.history.clear()
        if key is None:
            self.current.setText("No sample selected.")
            return
        dec = f"detector says <b>{decision}</b>" if decision else "not analysed yet"
        last = history[-1] if history else None
        said = []
        if last is not None and last.verdict:
            said.append(f"latest verdict: <b>{last.verdict}</b>")
        if last is not None and last.final:
            said.append(f"part: <b>{FINAL_TEXT.get(last.final, last.final)}</b>")
        self.current.setText(f"{key}: {dec}" + "".join(f" · {t}" for t in said))
        for v in reversed(history):
            who = v.reviewer or "anonymous"
            part = f" part {FINAL_TEXT.get(v.final, v.final)}" if v.final else ""
            self.history.addItem(f"{v.time[:19].replace('T', ' ')}  {v.verdict or '-':<9}{part} {who}"
                                 + (f" - {v.note}" if v.note else "")
                                 + ("  (not saved yet)" if not v.id else ""))

    def show_counts(self, counts: dict[str, int], total: int) -> None:
        done = sum(counts.values())
        self.counts.setText(f"reviewed {done}/{total}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))


class VerdictRetry(QObject):
    """Retries the projects holding unsaved verdicts every ``interval_ms`` (and on :meth:`retry`).

    ``message(level, text)`` says what to show: an error while verdicts are not on disk, then an
    info once they all are.  A project handed over with :meth:`keep` (another dataset was opened)
    stays open until its verdicts are written, then it is closed.
    """

    message = Signal(str, str)

    def __init__(self, parent: Optional[QObject] = None, interval_ms: int = 5000):
        super().__init__(parent)
        self._stores: list[Project] = []
        self._closing: list[Project] = []
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.retry)

    @property
    def pending(self) -> int:
        return sum(st.pending for st in self._stores)

    def failed(self, store: Project, err: ProjectWriteError) -> None:
        """A write of ``store`` failed: keep retrying it and tell the user."""
        if store not in self._stores:
            self._stores.append(store)
        self.timer.start()
        self._tell(err)

    def keep(self, store: Project) -> None:
        """``store`` is being replaced but still holds unsaved verdicts: retry, then close it."""
        if store not in self._stores:
            self._stores.append(store)
        self._closing.append(store)
        self.timer.start()

    def retry(self) -> int:
        """Try every store again now; returns how many verdicts are still not on disk."""
        err: Optional[ProjectWriteError] = None
        for st in list(self._stores):
            try:
                st.retry()
            except ProjectWriteError as e:
                err = e
            if not st.pending:
                self._stores.remove(st)
                if st in self._closing:
                    self._closing.remove(st)
                    st.close()
        if not self._stores:
            self.timer.stop()
            self.message.emit("info", "All verdicts are saved.")
        else:
            self._tell(err)
        return self.pending

    def shutdown(self) -> None:
        """The window closes: a last try, then the projects kept open for their retry are closed."""
        if self.pending:
            self.retry()
        self.timer.stop()
        for st in self._closing:
            st.close()
        self._closing.clear()
        self._stores.clear()

    def _tell(self, err: Optional[ProjectWriteError]) -> None:
        n = self.pending
        why = f" ({err.reason})" if err is not None else ""
        where = f" to {err.path}" if err is not None else ""
        self.message.emit("error", f"{n} verdict{'s' if n != 1 else ''} not saved yet{why}: kept in memory, "
                                   f"retrying every {self.timer.interval() // 1000} s. Free some space or "
                                   f"make{where} writable; nothing is lost while the window stays open.")
