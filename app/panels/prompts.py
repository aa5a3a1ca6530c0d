"""Prompt panel: the detector's text-stage parameters (normal / anomalous state phrases, templates,
object name...), edited freely and applied together.  Applying invalidates only text-side caches
(the detector's ``on_invalidate``), never the fitted support state.  Disabled for detectors that do
not declare ``needs.text_prompts``."""
from __future__ import annotations

from typing import Any, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from core.detectors.base import STAGE_TEXT, Detector

from .params import ParamForm


class PromptPanel(QWidget):
    """``promptsApplied(values)`` with the edited text params; ``resetRequested()``."""

    promptsApplied = Signal(dict)
    resetRequested = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        self.note = QLabel()
        self.note.setObjectName("hint")
        self.note.setWordWrap(True)
        lay.addWidget(self.note)
        self.form = ParamForm()
        self.form.paramChanged.connect(lambda *_: self._mark_dirty(True))
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.form)
        lay.addWidget(scroll, 1)
        row = QHBoxLayout()
        self.reset_btn = QPushButton("Reset to defaults")
        self.reset_btn.clicked.connect(self.resetRequested)
        self.apply_btn = QPushButton("Apply prompts")
        self.apply_btn.setObjectName("applyPrompts")
        self.apply_btn.clicked.connect(self.apply)
        row.addStretch(1)
        row.addWidget(self.reset_btn)
        row.addWidget(self.apply_btn)
        lay.addLayout(row)
        self._applied: dict[str, Any] = {}

    def set_detector(self, det: Detector) -> None:
        params = [p for p in det.params if p.stage == STAGE_TEXT]
        self.form.set_params(params)
        self.form.set_values(det.get_params())
        self._applied = self.form.values()
        active = bool(det.needs.text_prompts and params)
        self.setEnabled(active)
        if active:
            self.note.setText("Edit the phrases (one per line; <b>{}</b> stands for the object name) "
                              "and apply. Only the text embeddings are recomputed.")
        else:
            self.note.setText(f"'{det.name or det.id}' uses no text prompts.")
        self._mark_dirty(False)

    def set_values(self, values: dict[str, Any]) -> None:
        self.form.set_values(values)
        self._applied = self.form.values()
        self._mark_dirty(False)

    def apply(self) -> None:
        # commit the editor that still has the keyboard focus
        values = self.form.values()
        changed = {k: v for k, v in values.items() if self._applied.get(k) != v}
        self._applied = values
        self._mark_dirty(False)
        if changed:
            self.promptsApplied.emit(changed)

    def _mark_dirty(self, dirty: bool) -> None:
        self.apply_btn.setText("Apply prompts *" if dirty else "Apply prompts")
