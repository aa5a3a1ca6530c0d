"""Evaluation panel: how good and defective parts of a class separate under the current detector.

For the chosen part class (or all classes pooled) it shows, from the session's records of the
labelled samples that have a score:

* a histogram of the image scores of good vs defective samples, with the decision threshold as a
  draggable line (``thresholdMoved(value)`` while it is dragged: the window sets the fusion
  parameter ``threshold`` and everything re-fuses live);
* the ROC curve with its AUROC (:func:`core.metrics.image_auroc`), the operating point at the threshold;
* the confusion matrix at the threshold (a sample is anomalous when ``score >= threshold``, as
  :attr:`core.detectors.base.DetectorResult.is_anomalous`), with AP and F1-max from :mod:`core.metrics`.

The numbers come from Qt-free helpers in :mod:`core.evaluate` (:func:`~core.evaluate.collect`,
:func:`~core.evaluate.roc_points`, :func:`~core.evaluate.confusion`).

Clicking a histogram bar or a confusion cell emits ``filterRequested(keys, caption)``: the window
filters the sample list to those samples.  Plots are pyqtgraph.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QSizePolicy,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from core import metrics
from core.evaluate import ALL_CLASSES, EvalData, collect, confusion, decisions, roc_points
from core.evaluate import quiet_metric as _quiet
from core.session import Session

__all__ = ["ALL_CLASSES", "EvaluationPanel"]

GOOD_COLOR = (63, 174, 106)
BAD_COLOR = (217, 83, 79)
_BG = "#16181b"
N_BINS = 20
LOG_RATIO = 30.0     # the score axis is logarithmic when max / min exceeds this (all scores > 0)


def _fmt(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3f}"


class _HistogramPlot(pg.PlotWidget):
    """Good / defective histogram side by side per bin, and the threshold line."""

    def __init__(self):
        super().__init__(background=_BG)
        self.setObjectName("evalHistogram")
        self.setMinimumSize(200, 150)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setLabel("bottom", "image score")
        self.setLabel("left", "samples")
        self.addLegend(offset=(-8, 8), labelTextSize="8pt", brush=pg.mkBrush(22, 24, 27, 210))
        self.good_bars = pg.BarGraphItem(x0=[], y0=[], width=[], height=[], brush=pg.mkBrush(*GOOD_COLOR, 220),
                                         pen=pg.mkPen(None), name="good")
        self.bad_bars = pg.BarGraphItem(x0=[], y0=[], width=[], height=[], brush=pg.mkBrush(*BAD_COLOR, 220),
                                        pen=pg.mkPen(None), name="defective")
        self.addItem(self.good_bars)
        self.addItem(self.bad_bars)
        self.line = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#8fb4ea", width=2),
                                    hoverPen=pg.mkPen("#ffffff", width=3),
                                    label="threshold", labelOpts=dict(position=0.92, color="#c9d6ea"))
        self.line.setZValue(10)
        self.line.setCursor(Qt.CursorShape.SizeHorCursor)
        self.addItem(self.line, ignoreBounds=True)
        self.edges = np.zeros(0)        # bin edges (scores)
        self.log = False                # x axis in log10 (scores spanning decades)

    def to_view(self, v):
        return np.log10(v) if self.log else v

    def from_view(self, x: float) -> float:
        return float(10.0 ** x) if self.log else float(x)

    def set_log(self, on: bool) -> None:
        if on != self.log:
            self.log = on
            self.setLogMode(x=on)      # (the axis labels; items are placed in log10 view units)


class EvaluationPanel(QWidget):
    """Per-class histogram / ROC / confusion of the session's scores.

    Signals: ``thresholdMoved(float)`` while the threshold line is dragged;
    ``filterRequested(keys, caption)`` when a bar or a cell is clicked.
    """

    thresholdMoved = Signal(float)
    filterRequested = Signal(object, str)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.session: Optional[Session] = None
        self.data = EvalData("")
        self.threshold: Optional[float] = None
        self.auroc = math.nan
        self.matrix = np.zeros((2, 2), int)
        self._bounds: tuple[Optional[float], Optional[float]] = (None, None)
        self._syncing = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(4)
        top = QHBoxLayout()
        top.addWidget(QLabel("Class"))
        self.class_combo = QComboBox()
        self.class_combo.setObjectName("evalClass")
        self.class_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.class_combo.currentTextChanged.connect(lambda _t: self.refresh())
        top.addWidget(self.class_combo)
        self.summary = QLabel("Run the detector on labelled samples to see how good and defective parts separate.")
        self.summary.setObjectName("evalSummary")
        self.summary.setWordWrap(True)
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top.addWidget(self.summary, 1)
        lay.addLayout(top)

        plots = QHBoxLayout()
        plots.setSpacing(6)
        self.hist = _HistogramPlot()
        self.hist.line.sigPositionChanged.connect(self._on_line_moved)
        self.hist.scene().sigMouseClicked.connect(self._on_hist_clicked)
        plots.addWidget(self.hist, 5)
        self.roc = pg.PlotWidget(background=_BG)
        self.roc.setObjectName("evalRoc")
        self.roc.setMinimumSize(150, 150)
        self.roc.setMenuEnabled(False)
        self.roc.setMouseEnabled(x=False, y=False)
        self.roc.hideButtons()
        self.roc.setXRange(0, 1, padding=0.02)
        self.roc.setYRange(0, 1, padding=0.02)
        self.roc.setLabel("bottom", "false positive rate")
        self.roc.setLabel("left", "true positive rate")
        self.roc.plot([0, 1], [0, 1], pen=pg.mkPen("#555b63", style=Qt.PenStyle.DashLine))
        self.roc_curve = self.roc.plot([], [], pen=pg.mkPen("#8fb4ea", width=2))
        self.roc_point = self.roc.plot([], [], pen=None, symbol="o", symbolSize=9, symbolBrush="#ffffff")
        plots.addWidget(self.roc, 3)
        self.table = QTableWidget(2, 2)
        self.table.setObjectName("evalConfusion")
        self.table.setHorizontalHeaderLabels(["→ good", "→ defect"])
        self.table.setVerticalHeaderLabels(["good", "defective"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip("Rows: ground truth; columns (→): the detector's decision at the threshold. "
                              "Click a cell to list its samples.")
        self.table.setMinimumSize(170, 110)
        self.table.cellClicked.connect(self.select_cell)
        for r in range(2):
            for c in range(2):
                it = QTableWidgetItem("0")
                it.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(r, c, it)
        plots.addWidget(self.table, 3)
        lay.addLayout(plots, 1)

    # ------------------------------------------------------------------ data
    def set_session(self, session: Optional[Session]) -> None:
        """A dataset was opened: fill the class list (then :meth:`refresh`)."""
        self.session = session
        classes = list(session.classes) if session is not None else []
        cur = self.class_combo.currentText()
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItems(classes + ([ALL_CLASSES] if len(classes) > 1 else []))
        if cur in classes:
            self.class_combo.setCurrentText(cur)
        self.class_combo.blockSignals(False)
        self.refresh()

    def set_class(self, class_name: str) -> None:
        if class_name and self.class_combo.findText(class_name) >= 0 and class_name != self.class_combo.currentText():
            self.class_combo.setCurrentText(class_name)

    def sync_threshold(self) -> None:
        """Take the decision threshold of the class on show from the session
        (:meth:`Session.decision_threshold`: the class's calibrated one when ``threshold`` is 0);
        the pooled view of several classes uses each result's own threshold (no line)."""
        s = self.session
        det = s.detector if s is not None else None
        p = next((q for q in det.fusion_params() if q.name == "threshold"), None) if det is not None else None
        cls = self.class_combo.currentText()
        t = s.decision_threshold(cls) if p is not None and cls and cls != ALL_CLASSES else None
        self.set_threshold(t, (p.min, p.max) if p is not None else (None, None))

    def set_threshold(self, t: Optional[float], bounds: tuple[Optional[float], Optional[float]] = (None, None)) -> None:
        """The detector's decision threshold (None: it has none, or each result's own; the line is hidden)."""
        self._bounds = bounds
        self.threshold = None if t is None or not math.isfinite(t) else float(t)
        self._place_line()
        self._update_threshold_views()

    def _place_line(self) -> None:
        h, t = self.hist, self.threshold
        self._syncing = True
        try:
            h.line.setVisible(t is not None and (t > 0 or not h.log))
            lo, hi = self._bounds
            if h.log:
                lo = None if lo is None or lo <= 0 else float(h.to_view(lo))
                hi = None if hi is None or hi <= 0 else float(h.to_view(hi))
            h.line.setBounds([lo, hi])
            if t is not None and (t > 0 or not h.log):
                h.line.setValue(float(h.to_view(t)))
        finally:
            self._syncing = False

    def refresh(self) -> None:
        """Recompute everything from the session's records."""
        cls = self.class_combo.currentText()
        self.data = collect(self.session, cls) if self.session is not None and cls else EvalData(cls)
        if self.session is not None:
            self.sync_threshold()
        d = self.data
        self.auroc = _quiet(metrics.image_auroc, d.labels, d.scores) if d.keys else math.nan
        self._draw_histogram()
        fpr, tpr = roc_points(d.labels, d.scores)
        self.roc_curve.setData(fpr, tpr)
        self.roc.setTitle(f"ROC · AUROC {_fmt(self.auroc)}", size="9pt")
        self._update_threshold_views()

    def _draw_histogram(self) -> None:
        d = self.data
        h = self.hist
        if not d.keys:
            h.edges = np.zeros(0)
            for bars in (h.good_bars, h.bad_bars):
                bars.setOpts(x0=[], y0=[], width=[], height=[])
            return
        lo, hi = float(d.scores.min()), float(d.scores.max())
        t = self.threshold
        if t is not None:     # keep the line inside the plotted range
            lo, hi = min(lo, t), max(hi, t)
        # scores spanning decades (a few large defects) get log-spaced bins, so the good parts separate
        h.set_log(lo > 0 and hi / lo > LOG_RATIO)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        v_edges = np.linspace(h.to_view(lo), h.to_view(hi), N_BINS + 1)
        h.edges = 10.0 ** v_edges if h.log else v_edges
        h.edges[0], h.edges[-1] = lo, hi
        w = v_edges[1] - v_edges[0]
        good = np.histogram(d.scores[~d.labels], h.edges)[0]
        bad = np.histogram(d.scores[d.labels], h.edges)[0]
        h.good_bars.setOpts(x0=v_edges[:-1], y0=np.zeros(N_BINS), width=np.full(N_BINS, w / 2), height=good)
        h.bad_bars.setOpts(x0=v_edges[:-1] + w / 2, y0=np.zeros(N_BINS), width=np.full(N_BINS, w / 2), height=bad)
        h.setXRange(v_edges[0] - w, v_edges[-1] + w, padding=0)
        self._place_line()
        h.setYRange(0, max(int(good.max()), int(bad.max()), 1) * 1.15, padding=0)

    def _update_threshold_views(self) -> None:
        d = self.data
        t = self.threshold
        if t is not None:
            self.hist.line.label.setFormat(f"threshold {t:.4g}")
        self.matrix = confusion(d.labels, d.scores, t, decisions(d, t))
        (tn, fp), (fn, tp) = self.matrix
        for (r, c), n in np.ndenumerate(self.matrix):
            it = self.table.item(r, c)
            it.setText(str(int(n)))
            ok = r == c
            it.setBackground(pg.mkColor(*(GOOD_COLOR if ok else BAD_COLOR), 60 + int(150 * n / max(len(d.keys), 1))))
        if (t is not None or np.isfinite(d.thresholds).any()) and d.n_good and d.n_bad:
            self.roc_point.setData([fp / d.n_good], [tp / d.n_bad])
        else:
            self.roc_point.setData([], [])
        if not d.keys:
            self.summary.setText(f"{d.class_name or 'No class'}: no labelled sample has a score yet"
                                 + (f" ({d.unscored} to analyse)." if d.unscored else ".")
                                 + " Run all to fill the plots.")
            return
        ap = _quiet(metrics.image_ap, d.labels, d.scores)
        f1, f1_t = _quiet(metrics.f1_max, d.labels, d.scores)
        parts = [f"{len(d.keys)} scored ({d.n_good} good, {d.n_bad} defective)"
                 + (f", {d.unscored} not yet" if d.unscored else "")
                 + (f", {d.stale} from older parameters" if d.stale else ""),
                 f"AUROC {_fmt(self.auroc)}", f"AP {_fmt(ap)}", f"F1-max {_fmt(f1)} at {_fmt(f1_t)}"]
        if t is not None or np.isfinite(d.thresholds).any():
            acc = (tn + tp) / len(d.keys)
            at = f"at {t:.3f}" if t is not None else "at each class's threshold"
            parts.append(f"{at}: {tp}/{d.n_bad} defects found, {fp}/{d.n_good} false alarms, accuracy {acc:.0%}")
        self.summary.setText(" · ".join(parts))

    # ------------------------------------------------------------------ interaction
    def _on_line_moved(self, line) -> None:
        if self._syncing:
            return
        self.threshold = self.hist.from_view(line.value())
        self._update_threshold_views()
        self.thresholdMoved.emit(self.threshold)

    def _on_hist_clicked(self, ev) -> None:
        h = self.hist
        vb = h.getViewBox()
        if h.edges.size == 0 or not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        x = vb.mapSceneToView(ev.scenePos()).x()
        v_edges = h.to_view(h.edges)
        i = int(np.searchsorted(v_edges, x, side="right")) - 1
        if not 0 <= i < N_BINS:
            return
        half = (v_edges[1] - v_edges[0]) / 2
        self.select_bin(i, defective=x >= v_edges[i] + half)
        ev.accept()

    def bin_keys(self, index: int, defective: bool) -> list[str]:
        """Keys of the good (or defective) samples in histogram bin ``index``."""
        d, e = self.data, self.hist.edges
        if e.size == 0:
            return []
        last = index == e.size - 2
        inside = (d.scores >= e[index]) & ((d.scores <= e[index + 1]) if last else (d.scores < e[index + 1]))
        sel = inside & (d.labels if defective else ~d.labels)
        return [k for k, s in zip(d.keys, sel) if s]

    def select_bin(self, index: int, defective: bool) -> None:
        keys = self.bin_keys(index, defective)
        if keys:
            e = self.hist.edges
            self.filterRequested.emit(keys, f"{'defective' if defective else 'good'}, score "
                                            f"{e[index]:.3f} – {e[index + 1]:.3f}")

    def cell_keys(self, row: int, col: int) -> list[str]:
        """Keys of the samples of a confusion cell (row: truth good/defective; col: predicted good/anomalous)."""
        d = self.data
        pred = decisions(d, self.threshold)
        sel = (d.labels if row else ~d.labels) & (pred if col else ~pred)
        return [k for k, s in zip(d.keys, sel) if s]

    def select_cell(self, row: int, col: int) -> None:
        keys = self.cell_keys(row, col)
        if keys:
            names = (("true negatives", "false positives"), ("false negatives", "true positives"))
            at = f"threshold {_fmt(self.threshold)}" if self.threshold is not None else "each class's threshold"
            self.filterRequested.emit(keys, f"{names[row][col]} at {at}")
