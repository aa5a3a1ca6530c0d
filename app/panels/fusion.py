"""Fusion panel: a slider + numeric field for every fusion-stage parameter the detector declares
(α, β, other weights, smoothing, the decision threshold).  Moving one only re-applies fusion to the
cached component maps; nothing is re-extracted."""
from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from core.detectors.base import Detector

from .params import ParamForm


class FusionPanel(QWidget):
    """``paramChanged(name, value)`` on every slider move; ``resetRequested()``."""

    paramChanged = Signal(str, object)
    resetRequested = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        self.hint = QLabel("Re-applies fusion to the cached maps instantly; no backbone reruns.")
        self.hint.setObjectName("hint")
        self.hint.setWordWrap(True)
        lay.addWidget(self.hint)
        self.form = ParamForm()
        self.form.paramChanged.connect(self.paramChanged)
        lay.addWidget(self.form)
        self.decision = QLabel()
        self.decision.setObjectName("decisionThreshold")
        self.decision.setWordWrap(True)
        self.decision.setVisible(False)
        lay.addWidget(self.decision)
        self.empty = QLabel("This detector declares no fusion parameters.")
        self.empty.setWordWrap(True)
        lay.addWidget(self.empty)
        row = QHBoxLayout()
        row.addStretch(1)
        self.timing = QLabel()
        self.timing.setObjectName("fusionTiming")
        row.addWidget(self.timing)
        self.reset_btn = QPushButton("Reset to defaults")
        self.reset_btn.clicked.connect(self.resetRequested)
        row.addWidget(self.reset_btn)
        lay.addLayout(row)
        lay.addStretch(1)

    def set_detector(self, det: Detector) -> None:
        params = det.fusion_params()
        self.form.set_params(params)
        self.form.set_values(det.get_params())
        self.empty.setVisible(not params)
        self.reset_btn.setEnabled(bool(params))

    def set_values(self, values: dict[str, Any]) -> None:
        self.form.set_values(values)

    def set_decision(self, threshold: Optional[float], typed: Optional[float] = None,
                     rate: Optional[float] = None) -> None:
        """Say which decision threshold the result on screen used: the typed one, or (``typed`` 0)
        the one calibrated on good parts for the target false-alarm ``rate``; None hides it."""
        if threshold is None or threshold != threshold:
            self.decision.setVisible(False)
            return
        if typed is not None and typed <= 0 and rate is not None:
            self.decision.setText(f"Decision threshold in use: <b>{threshold:.3g}</b>, calibrated for at most "
                                  f"{rate:.0%} false alarms on good parts the detector did not learn from "
                                  f"(threshold 0 = calibrated; type a value to override).")
        else:
            self.decision.setText(f"Decision threshold in use: <b>{threshold:.3g}</b>.")
        self.decision.setVisible(True)

    def set_timing(self, ms: Optional[float]) -> None:
        self.timing.setText("" if ms is None else f"fuse + repaint {ms:.0f} ms")

    def editor(self, name: str):
        return self.form.editors[name]
