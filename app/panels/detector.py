"""Detector panel: detector and device choice, the detector's fit/score parameters (built from its
declaration), run on this sample / on all, progress with ETA, cancel."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QVBoxLayout, QWidget)

from core.detectors.base import STAGE_FIT, STAGE_SCORE, Detector

from .params import ParamForm
from ..jobs import format_eta


def cuda_available() -> bool:
    """True when a CUDA device is usable (probed by :mod:`core.devices` in a child process, so the
    GUI process never imports torch for it)."""
    from core.devices import cuda_available as _probe
    return bool(_probe())


def needs_text(det: Detector) -> str:
    n = det.needs
    mods = []
    for name, v in (("RGB", n.rgb), ("3D", n.points)):
        if v != "unused":
            mods.append(f"{name} {'required' if v == 'required' else 'optional'}")
    bits = [", ".join(mods)]
    if n.support:
        bits.append(f"≥{n.support} good support sample(s) (default {max(n.default_support, n.support)})")
    else:
        bits.append("zero-shot")
    if n.text_prompts:
        bits.append("text prompts")
    if n.weights:
        bits.append("pretrained weights")
    return " · ".join(bits)


class DetectorPanel(QWidget):
    """Signals: ``detectorChosen(id)``, ``deviceChosen(dev)``, ``paramChanged(name, value)``,
    ``runSample()``, ``runAll()``, ``cancelRequested()``, ``autoRunChanged(bool)``."""

    detectorChosen = Signal(str)
    deviceChosen = Signal(str)
    paramChanged = Signal(str, object)
    runSample = Signal()
    runAll = Signal()
    cancelRequested = Signal()
    autoRunChanged = Signal(bool)
    resetRequested = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        top = QFormLayout()
        top.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.detector_combo = QComboBox()
        self.detector_combo.setObjectName("detectorCombo")
        self.device_combo = QComboBox()
        self.device_combo.setObjectName("deviceCombo")
        self.device_combo.addItem("CPU", "cpu")
        top.addRow("Detector", self.detector_combo)
        top.addRow("Device", self.device_combo)
        # weights (only for detectors that declare a 'weights' parameter)
        self.weights_row = QWidget()
        wl = QHBoxLayout(self.weights_row)
        wl.setContentsMargins(0, 0, 0, 0)
        self.weights_label = QLabel()
        self.weights_label.setObjectName("weightsLabel")
        self.weights_label.setWordWrap(True)
        self.weights_btn = QPushButton("Weights…")
        self.weights_btn.setObjectName("weightsButton")
        self.weights_btn.setToolTip("Choose the detector's weights file (or random weights for a demo)")
        self.weights_btn.clicked.connect(self._choose_weights)
        wl.addWidget(self.weights_label, 1)
        wl.addWidget(self.weights_btn)
        top.addRow("Weights", self.weights_row)
        self._weights_field = top.labelForField(self.weights_row)
        lay.addLayout(top)
        # run controls and progress first: visible without scrolling past the parameters
        runs = QHBoxLayout()
        self.run_btn = QPushButton("▶ Run sample")
        self.run_btn.setObjectName("runSample")
        self.run_btn.setToolTip("Analyse the selected sample (F5)")
        self.run_all_btn = QPushButton("▶▶ Run all")
        self.run_all_btn.setObjectName("runAll")
        self.run_all_btn.setToolTip("Analyse every sample shown in the browser (Shift+F5)")
        self.cancel_btn = QPushButton("■ Cancel")
        self.cancel_btn.setObjectName("cancelRun")
        self.cancel_btn.setToolTip("Stop the running analysis (Esc)")
        self.cancel_btn.setEnabled(False)
        for b in (self.run_btn, self.run_all_btn, self.cancel_btn):
            runs.addWidget(b)
        lay.addLayout(runs)
        self.progress = QProgressBar()
        self.progress.setObjectName("runProgress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        lay.addWidget(self.progress)
        self.progress_label = QLabel()
        self.progress_label.setObjectName("progressLabel")
        self.progress_label.setWordWrap(True)
        self.progress_label.setMinimumHeight(self.progress_label.fontMetrics().height())
        lay.addWidget(self.progress_label)
        self.auto_run = QCheckBox("Analyse the selected sample automatically")
        self.auto_run.setChecked(True)
        self.auto_run.toggled.connect(self.autoRunChanged)
        lay.addWidget(self.auto_run)
        self.description = QLabel()
        self.description.setObjectName("detectorDescription")
        self.description.setWordWrap(True)
        lay.addWidget(self.description)

        self.params_box = QGroupBox("Parameters")
        pl = QVBoxLayout(self.params_box)
        pl.setContentsMargins(6, 6, 6, 6)
        self.form = ParamForm()
        self.form.paramChanged.connect(self.paramChanged)
        pl.addWidget(self.form)
        self.reset_btn = QPushButton("Reset to defaults")
        self.reset_btn.clicked.connect(self.resetRequested)
        pl.addWidget(self.reset_btn, 0, Qt.AlignmentFlag.AlignRight)
        lay.addWidget(self.params_box)

        lay.addStretch(1)

        self.run_btn.clicked.connect(self.runSample)
        self.run_all_btn.clicked.connect(self.runAll)
        self.cancel_btn.clicked.connect(self.cancelRequested)
        self.detector_combo.currentIndexChanged.connect(
            lambda _i: self.detectorChosen.emit(self.detector_combo.currentData() or ""))
        self.device_combo.currentIndexChanged.connect(
            lambda _i: self.deviceChosen.emit(self.device_combo.currentData() or "cpu"))

    # ------------------------------------------------------------------ content
    def set_detectors(self, ids: Sequence[str], names: dict[str, str], current: str) -> None:
        self.detector_combo.blockSignals(True)
        self.detector_combo.clear()
        for i in ids:
            self.detector_combo.addItem(names.get(i) or i, i)
        j = self.detector_combo.findData(current)
        if j >= 0:
            self.detector_combo.setCurrentIndex(j)
        self.detector_combo.blockSignals(False)

    def set_devices(self, devices: Sequence[str], current: str) -> None:
        self.device_combo.blockSignals(True)
        self.device_combo.clear()
        for d in devices:
            self.device_combo.addItem(d.upper() if d in ("cpu", "cuda") else d, d)
        j = self.device_combo.findData(current)
        self.device_combo.setCurrentIndex(max(j, 0))
        self.device_combo.blockSignals(False)

    def _choose_weights(self) -> None:
        from PySide6.QtWidgets import QFileDialog, QMessageBox
        box = QMessageBox(self)
        box.setWindowTitle("Detector weights")
        box.setText("Use a weights file (e.g. open_clip_model.safetensors) or random weights?\n"
                    "Random weights run the whole pipeline but their scores are MEANINGLESS.")
        file_btn = box.addButton("Choose file…", QMessageBox.ButtonRole.AcceptRole)
        rnd_btn = box.addButton("Random weights", QMessageBox.ButtonRole.DestructiveRole)
        auto_btn = box.addButton("Find automatically", QMessageBox.ButtonRole.ResetRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        clicked = box.clickedButton()
        if clicked is file_btn:
            path, _ = QFileDialog.getOpenFileName(self, "Weights file", str(Path.home()),
                                                  "Weights (*.safetensors *.pt *.bin *.pth);;All files (*)")
            if path:
                self.paramChanged.emit("weights", path)
        elif clicked is rnd_btn:
            self.paramChanged.emit("weights", "random")
        elif clicked is auto_btn:
            self.paramChanged.emit("weights", "")

    def show_weights(self, det: Detector) -> None:
        has = any(p.name == "weights" for p in det.params)
        self.weights_row.setVisible(has)
        if self._weights_field is not None:
            self._weights_field.setVisible(has)
        if not has:
            return
        w = str(det.get_params().get("weights", ""))
        if w.lower() == "random":
            self.weights_label.setText("<b style='color:#e0a020'>RANDOM weights: scores are meaningless</b>")
        elif w:
            self.weights_label.setText(Path(w).name)
            self.weights_label.setToolTip(w)
        else:
            self.weights_label.setText("automatic (open_clip cache / weights folder)")

    def set_detector(self, det: Detector) -> None:
        """Show a detector's description and build editors for its fit/score parameters."""
        self.show_weights(det)
        self.description.setText(f"{det.description}<br><span style='color:#8a8f98'>Needs: {needs_text(det)}</span>")
        params = [p for p in det.params if p.stage in (STAGE_FIT, STAGE_SCORE)]
        self.form.set_params(params)
        self.form.set_values(det.get_params())
        self.params_box.setVisible(bool(params))
        j = self.detector_combo.findData(det.id)
        if j >= 0 and j != self.detector_combo.currentIndex():
            self.detector_combo.blockSignals(True)
            self.detector_combo.setCurrentIndex(j)
            self.detector_combo.blockSignals(False)

    def set_values(self, values: dict[str, Any]) -> None:
        self.form.set_values(values)
        if "weights" in values:
            w = str(values["weights"])
            self.weights_label.setText("<b style='color:#e0a020'>RANDOM weights: scores are meaningless</b>"
                                       if w.lower() == "random" else (Path(w).name if w else
                                                                       "automatic (open_clip cache / weights folder)"))

    # ------------------------------------------------------------------ run state
    def set_running(self, running: bool, text: str = "") -> None:
        self.run_btn.setEnabled(not running)
        self.run_all_btn.setEnabled(not running)
        self.cancel_btn.setEnabled(running)
        if running:
            self.progress.setValue(0)
            self.progress.setFormat("starting…")
            self.progress_label.setText(text)
        else:
            self.progress.setFormat(text or "idle")

    def set_progress(self, fraction: float, message: str, eta_s: float) -> None:
        self.progress.setValue(int(round(fraction * 1000)))
        eta = format_eta(eta_s if eta_s >= 0 else None)
        self.progress.setFormat(f"{fraction * 100:.0f}%" + (f"  ·  {eta}" if eta else ""))
        self.progress_label.setText(message)
