"""The status bar's fields: hover text, timing, detector, device, and the running job with its progress."""
from __future__ import annotations

from typing import Optional

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from ..jobs import format_eta


class StatusFields:
    """Adds its labels to ``bar``: ``hover`` (stretching), ``timing``, ``detector``, ``device``
    (permanent, right), and the running job (``job`` + ``progress``, left, visible while one runs:
    first start, first fit, whatever the dock layout)."""

    def __init__(self, bar: QStatusBar):
        self.bar = bar
        self.hover, self.timing, self.detector, self.device = QLabel(), QLabel(), QLabel(), QLabel()
        for w in (self.hover, self.timing, self.detector, self.device):
            w.setObjectName("statusField")
        self.job = QLabel()
        self.job.setObjectName("statusJob")
        self.progress = QProgressBar()
        self.progress.setObjectName("statusProgress")
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(170)
        self.progress.setMaximumHeight(16)
        self.progress.setTextVisible(True)
        for w in (self.job, self.progress):
            w.setVisible(False)
            bar.addWidget(w)
        bar.addWidget(self.hover, 1)
        bar.addPermanentWidget(self.timing)
        bar.addPermanentWidget(self.detector)
        bar.addPermanentWidget(self.device)

    def message(self, text: str, ms: int = 0) -> None:
        """A transient message in the bar (``ms`` 0: until the next one)."""
        self.bar.showMessage(text, ms)

    def show_job(self, name: Optional[str]) -> None:
        """Show the running job (None: hide it)."""
        self.job.setVisible(name is not None)
        self.progress.setVisible(name is not None)
        if name is not None:
            self.job.setText(name)
            self.progress.setValue(0)
            self.progress.setFormat("starting…")

    def show_progress(self, fraction: float, message: str, eta_s: float) -> None:
        self.progress.setValue(int(round(fraction * 1000)))
        eta = format_eta(eta_s if eta_s >= 0 else None)
        self.progress.setFormat(f"{fraction * 100:.0f}%" + (f" · {eta}" if eta else ""))
        if message:
            self.job.setText(message if len(message) <= 70 else message[:67] + "…")
