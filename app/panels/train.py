"""Train panel: train one of the trained detectors (those with a ``checkpoint`` fit parameter) on the
good samples of the chosen classes of the open dataset; progress with ETA, a live loss plot
(pyqtgraph), cancel, and "Use this model" once a checkpoint is written.

The panel only shows and asks; :class:`app.controllers.training.TrainingController` does the work.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWidget)

# the theme of resources/style.qss
_BG, _FG, _GRID = "#16181b", "#aeb4bd", "#33383f"
_BATCH, _EPOCH = "#5b8fd1", "#e0a84a"


class _StatusLabel(QLabel):
    """A wrapping status line that does not ask for height-for-width: inside the dock's scroll area
    such a child made the whole panel as tall as its size hint, pushing the loss plot out of view.
    It keeps room for two lines; the full text is also its tooltip."""

    def hasHeightForWidth(self) -> bool:  # noqa: N802
        return False

    def setText(self, text: str) -> None:  # noqa: N802
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self):  # noqa: N802
        from PySide6.QtCore import QSize
        return QSize(50, 2 * self.fontMetrics().lineSpacing() + 2)


class LossPlot(pg.PlotWidget):
    """Training loss: the running mean within each epoch (line) and each epoch's mean (dots)."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent, background=_BG)
        self.setObjectName("lossPlot")
        self.setMinimumHeight(170)
        pi = self.getPlotItem()
        pi.showGrid(x=True, y=True, alpha=0.25)
        pi.setLabel("bottom", "epoch", color=_FG)
        pi.setLabel("left", "loss", color=_FG)
        for ax in ("bottom", "left"):
            a = pi.getAxis(ax)
            a.setPen(pg.mkPen(_GRID))
            a.setTextPen(pg.mkPen(_FG))
        pi.setMenuEnabled(False)
        pi.hideButtons()
        self.setMouseEnabled(x=False, y=False)
        legend = pi.addLegend(offset=(-8, 8), labelTextColor=_FG, brush=pg.mkBrush(_BG + "d0"))
        self.batch_curve = pi.plot([], [], pen=pg.mkPen(_BATCH, width=1.5), name="running (batches)")
        self.epoch_curve = pi.plot([], [], pen=pg.mkPen(_EPOCH, width=2), symbol="o", symbolSize=7,
                                   symbolBrush=_EPOCH, symbolPen=None, name="epoch mean")
        self._legend = legend
        self.clear_points()

    def clear_points(self) -> None:
        self.batch_x: list[float] = []
        self.batch_y: list[float] = []
        self.epoch_x: list[float] = []
        self.epoch_y: list[float] = []
        self.batch_curve.setData([], [])
        self.epoch_curve.setData([], [])

    def add_batch(self, epoch_float: float, loss: float) -> None:
        self.batch_x.append(epoch_float)
        self.batch_y.append(loss)
        self.batch_curve.setData(self.batch_x, self.batch_y)

    def add_epoch(self, epoch: int, loss: float) -> None:
        self.epoch_x.append(float(epoch))
        self.epoch_y.append(loss)
        self.epoch_curve.setData(self.epoch_x, self.epoch_y)


class TrainPanel(QWidget):
    """Signals: ``startRequested()``, ``cancelRequested()``, ``browseRequested()``, ``useRequested()``."""

    startRequested = Signal()
    cancelRequested = Signal()
    browseRequested = Signal()
    useRequested = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.detector_combo = QComboBox()
        self.detector_combo.setObjectName("trainDetector")
        self.detector_combo.setToolTip("Trainable detectors: one model for all the chosen classes")
        form.addRow("Detector", self.detector_combo)
        self.epochs = QSpinBox()
        self.epochs.setObjectName("trainEpochs")
        self.epochs.setRange(1, 10_000)
        self.epochs.setValue(20)
        form.addRow("Epochs", self.epochs)
        out_row = QHBoxLayout()
        self.out_edit = QLineEdit()
        self.out_edit.setObjectName("trainOut")
        self.out_edit.setPlaceholderText("checkpoint path (.safetensors + .json)")
        self.browse_btn = QPushButton("…")
        self.browse_btn.setToolTip("Choose where the checkpoint is written")
        self.browse_btn.setFixedWidth(32)
        self.browse_btn.clicked.connect(self.browseRequested)
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(self.browse_btn)
        form.addRow("Output", out_row)
        lay.addLayout(form)

        cls_head = QHBoxLayout()
        cls_head.addWidget(QLabel("Classes (good training samples)"), 1)
        self.all_btn = QPushButton("All")
        self.none_btn = QPushButton("None")
        for b in (self.all_btn, self.none_btn):
            b.setFixedWidth(52)
            cls_head.addWidget(b)
        self.all_btn.clicked.connect(lambda: self._check_all(True))
        self.none_btn.clicked.connect(lambda: self._check_all(False))
        lay.addLayout(cls_head)
        self.class_list = QListWidget()
        self.class_list.setObjectName("trainClasses")
        self.class_list.setMaximumHeight(96)
        lay.addWidget(self.class_list)

        btns = QHBoxLayout()
        self.start_btn = QPushButton("▶ Start training")
        self.start_btn.setObjectName("runAll")          # the green run style
        self.start_btn.clicked.connect(self.startRequested)
        self.cancel_btn = QPushButton("■ Cancel")
        self.cancel_btn.setObjectName("cancelRun")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancelRequested)
        btns.addWidget(self.start_btn, 1)
        btns.addWidget(self.cancel_btn)
        lay.addLayout(btns)
        self.progress = QProgressBar()
        self.progress.setObjectName("trainProgress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("")
        lay.addWidget(self.progress)
        self.status = _StatusLabel("Open a dataset, choose the classes and start.")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.plot = LossPlot()
        lay.addWidget(self.plot, 1)
        self.use_btn = QPushButton("Use this model")
        self.use_btn.setObjectName("trainUse")
        self.use_btn.setToolTip("Set the trained detector and this checkpoint in the session")
        self.use_btn.setEnabled(False)
        self.use_btn.clicked.connect(self.useRequested)
        lay.addWidget(self.use_btn)

    # ------------------------------------------------------------------ choices
    def set_detectors(self, ids: Sequence[str], names: dict[str, str]) -> None:
        cur = self.detector_id()
        self.detector_combo.blockSignals(True)
        self.detector_combo.clear()
        for i in ids:
            self.detector_combo.addItem(names.get(i, i), i)
        k = self.detector_combo.findData(cur)
        self.detector_combo.setCurrentIndex(k if k >= 0 else 0)
        self.detector_combo.blockSignals(False)

    def detector_id(self) -> str:
        return self.detector_combo.currentData() or ""

    def set_classes(self, classes: Sequence[str]) -> None:
        self.class_list.clear()
        for c in classes:
            it = QListWidgetItem(c)
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked)
            self.class_list.addItem(it)

    def _check_all(self, on: bool) -> None:
        state = Qt.CheckState.Checked if on else Qt.CheckState.Unchecked
        for i in range(self.class_list.count()):
            self.class_list.item(i).setCheckState(state)

    def set_checked_classes(self, classes: Sequence[str]) -> None:
        want = set(classes)
        for i in range(self.class_list.count()):
            it = self.class_list.item(i)
            it.setCheckState(Qt.CheckState.Checked if it.text() in want else Qt.CheckState.Unchecked)

    def checked_classes(self) -> list[str]:
        return [self.class_list.item(i).text() for i in range(self.class_list.count())
                if self.class_list.item(i).checkState() == Qt.CheckState.Checked]

    # ------------------------------------------------------------------ state
    def set_running(self, running: bool) -> None:
        for w in (self.start_btn, self.detector_combo, self.epochs, self.out_edit, self.browse_btn, self.class_list,
                  self.all_btn, self.none_btn):
            w.setEnabled(not running)
        self.cancel_btn.setEnabled(running)
        if running:
            self.use_btn.setEnabled(False)
            self.progress.setValue(0)
            self.progress.setFormat("starting…")

    def set_progress(self, fraction: float, fmt: str, message: str) -> None:
        self.progress.setValue(int(round(max(0.0, min(1.0, fraction)) * 1000)))
        self.progress.setFormat(fmt)
        if message:
            self.status.setText(message)
