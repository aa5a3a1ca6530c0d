"""A non-modal message banner shown above the views: errors name the file, the problem and what to do.

Messages never block the user.  ``show_message(level, text, details)`` replaces the visible message
(the previous ones stay in ``history``); long lists (e.g. the files skipped by a batch run) go to the
expandable details.
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QToolButton, QVBoxLayout,
                               QWidget)

from core.errors import MMADError
from core.session import describe_error

log = logging.getLogger(__name__)

LEVELS = ("info", "warning", "error")
_STYLE = {
    "info": ("#1d3b53", "#5aa9e6", "ℹ"),
    "warning": ("#4a3b12", "#e0b03a", "⚠"),
    "error": ("#4d1f1f", "#e26464", "✖"),
}


@dataclass
class Message:
    level: str
    text: str
    details: str
    time: float


class MessageBanner(QFrame):
    """The message area.  Hidden when there is nothing to say."""

    dismissed = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setObjectName("messageBanner")
        self.history: list[Message] = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        lay.setSpacing(4)
        row = QHBoxLayout()
        row.setSpacing(8)
        self.icon = QLabel()
        self.icon.setObjectName("bannerIcon")
        self.label = QLabel()
        self.label.setObjectName("bannerText")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.toggle = QToolButton()
        self.toggle.setText("Details")
        self.toggle.setCheckable(True)
        self.toggle.toggled.connect(self._toggle_details)
        self.close_btn = QToolButton()
        self.close_btn.setText("✕")
        self.close_btn.setToolTip("Dismiss")
        self.close_btn.setAutoRaise(True)
        self.close_btn.clicked.connect(self.dismiss)
        row.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.label, 1)
        row.addWidget(self.toggle, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.close_btn, 0, Qt.AlignmentFlag.AlignTop)
        lay.addLayout(row)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setMaximumHeight(120)
        self.details.hide()
        lay.addWidget(self.details)
        self.level = "info"
        self.hide()

    # ------------------------------------------------------------------ API
    def show_message(self, level: str, text: str, details: str | Sequence[str] = "") -> None:
        if level not in LEVELS:
            level = "info"
        if not isinstance(details, str):
            details = "\n".join(details)
        self.history.append(Message(level, text, details, time.time()))
        bg, fg, icon = _STYLE[level]
        self.level = level
        self.setStyleSheet(f"#messageBanner {{ background: {bg}; border: 1px solid {fg}; border-radius: 4px; }}"
                           f"#messageBanner QLabel {{ color: #f0f0f0; }}"
                           f"#bannerIcon {{ color: {fg}; font-size: 15px; font-weight: bold; }}")
        self.icon.setText(icon)
        self.label.setText(text)
        self.details.setPlainText(details)
        self.toggle.setVisible(bool(details))
        self.toggle.setChecked(False)
        self.details.hide()
        self.show()

    def info(self, text: str, details: str | Sequence[str] = "") -> None:
        self.show_message("info", text, details)

    def warning(self, text: str, details: str | Sequence[str] = "") -> None:
        self.show_message("warning", text, details)

    def error(self, text: str, details: str | Sequence[str] = "") -> None:
        self.show_message("error", text, details)

    def failure(self, name: str, err: BaseException) -> None:
        """A job failed: one message (a traceback in Details, and in the log, only for a bug)."""
        details = "" if isinstance(err, MMADError) else "".join(traceback.format_exception(err))
        if details:
            log.error("%s failed:\n%s", name, details)
        self.error(f"{name} failed: {describe_error(err)}", details)

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()

    def _toggle_details(self, on: bool) -> None:
        self.details.setVisible(on)
