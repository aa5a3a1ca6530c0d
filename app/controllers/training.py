"""Training controller: the Train panel's choices -> one training run in a worker process
(:mod:`app.train_worker`), its progress, ETA and live loss plot, cancel, and "Use this model"
(the trained detector with its new checkpoint becomes the session's detector).

A 50 ms QTimer drains the child's pipe on the GUI thread; nothing blocks the event loop (the
child does the feature extraction and the torch work).  Analysis jobs go on meanwhile.
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog

from core.detectors import registry
from core.detectors.base import STAGE_FIT

from ..train_worker import TrainJob, TrainProcess
from ..workers import format_eta

if TYPE_CHECKING:
    from ..main_window import MainWindow

log = logging.getLogger(__name__)

POLL_MS = 50


def trainable_detectors() -> dict[str, str]:
    """id -> name of the registered detectors that take a ``checkpoint`` fit parameter."""
    out = {}
    for i in registry.available():
        try:
            cls = registry.get(i)
        except KeyError:
            continue
        if any(p.name == "checkpoint" and p.stage == STAGE_FIT for p in cls.params):
            out[i] = cls.name or i
    return out


class TrainingController(QObject):
    """Signals: ``epochDone(epoch, loss)``, ``finished(outcome)`` with outcome ``"done"``,
    ``"cancelled"`` or ``"error"``."""

    epochDone = Signal(int, float)
    finished = Signal(str)

    def __init__(self, win: "MainWindow"):
        super().__init__(win)
        self.win = win
        self.session = win.session
        self.panel = win.train_panel
        self.proc: Optional[TrainProcess] = None
        self.result: Optional[dict[str, Any]] = None
        self.last_cancel_ms: Optional[float] = None
        self.train_kwargs: dict[str, Any] = {}     # more arguments of core.training.train (tests, scripts)
        self.nice = 5                              # niceness increment of the training process
        self._t0 = 0.0
        self._fraction = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        p = self.panel
        p.startRequested.connect(self.start)
        p.cancelRequested.connect(self.cancel)
        p.browseRequested.connect(self.choose_output)
        p.useRequested.connect(self.use_model)
        try:
            p.set_detectors(list(trainable_detectors()), trainable_detectors())
        except Exception as err:  # noqa: BLE001 - a broken detector module must not kill the window
            log.error("no trainable detectors: %s", err)
        self.dataset_changed()

    @property
    def running(self) -> bool:
        return self.proc is not None

    # ------------------------------------------------------------------ panel
    def show_panel(self) -> None:
        """Run > Train a model…: show and raise the Train dock."""
        d = self.win.train_dock
        d.show()
        d.raise_()
        self.panel.setFocus()

    def dataset_changed(self) -> None:
        self.panel.set_classes(self.session.classes)
        ds = self.session.dataset
        if ds is not None and not self.running:
            det = self.panel.detector_id() or "model"
            self.panel.out_edit.setText(str(self._data_folder() / f"{det}-model"))

    def _data_folder(self) -> Path:
        ds = self.session.dataset
        root = getattr(ds, "root", None) if ds is not None else None
        if root is not None and Path(root).is_dir():
            return Path(root)
        return Path(self.win.settings.last_folder or Path.home())

    def choose_output(self) -> None:
        start = self.panel.out_edit.text().strip() or str(self._data_folder() / "model")
        path, _ = QFileDialog.getSaveFileName(self.win, "Save the trained model", start,
                                              "Checkpoint (*.safetensors)")
        if path:
            self.panel.out_edit.setText(path)

    # ------------------------------------------------------------------ run
    def start(self, **overrides: Any) -> bool:
        """Start training with the panel's choices (``overrides``: detector_id, classes, epochs, out)."""
        if self.running:
            return False
        p, banner = self.panel, self.win.banner
        ds = self.session.dataset
        if ds is None:
            banner.warning("Open a dataset first: training uses its good training samples.")
            return False
        det = overrides.get("detector_id") or p.detector_id()
        classes = list(overrides.get("classes") or p.checked_classes())
        epochs = int(overrides.get("epochs") or p.epochs.value())
        out = str(overrides.get("out") or p.out_edit.text().strip())
        if not det:
            banner.warning("No trainable detector is available.")
            return False
        if not classes:
            banner.warning("Tick at least one class to train on.")
            return False
        if not out:
            banner.warning("Choose where the checkpoint is written (Output).")
            return False
        job = TrainJob(ds, det, classes, epochs, out, dict(self.train_kwargs), nice=self.nice)
        proc = TrainProcess(job)
        try:
            proc.start()
        except Exception as err:  # noqa: BLE001 - e.g. a dataset that cannot be sent to the process
            banner.error(f"Training could not start: {err}")
            return False
        self.proc, self.result, self.last_cancel_ms = proc, None, None
        self._t0, self._fraction = time.perf_counter(), 0.0
        self._epochs, self._batch0, self._epoch_done = epochs, None, 0.0
        p.plot.clear_points()
        p.plot.getPlotItem().setTitle(f"{det} · {', '.join(classes)}", color="#aeb4bd", size="9pt")
        p.set_running(True)
        p.status.setText(f"Starting the training process ({det}, {len(classes)} class(es), {epochs} epoch(s))…")
        self._timer.start()
        return True

    def cancel(self) -> None:
        if self.proc is not None:
            self.proc.cancel()
            self.panel.status.setText("cancelling…")

    def _poll(self) -> None:
        proc = self.proc
        if proc is None:
            self._timer.stop()
            return
        for msg in proc.poll():
            kind = msg[0]
            if kind == "progress":
                self._progress(msg[1], msg[2])
            elif kind == "batch":
                if self._batch0 is None:
                    self._batch0 = (time.perf_counter(), msg[1])
                self._epoch_done = msg[1]
                self.panel.plot.add_batch(msg[1], msg[2])
            elif kind == "epoch":
                self.panel.plot.add_epoch(msg[1], msg[2])
                self.epochDone.emit(msg[1], msg[2])
            elif kind in ("done", "cancelled", "error"):
                self._end(msg)
                return

    def _progress(self, fraction: float, message: str) -> None:
        self._fraction = fraction
        now = time.perf_counter()
        if self._batch0 is not None and self._epoch_done > self._batch0[1]:
            # training phase: the epochs left at the pace of the batches so far (features are done)
            t_b, e_b = self._batch0
            eta = (now - t_b) / (self._epoch_done - e_b) * (self._epochs - self._epoch_done)
        else:
            el = now - self._t0
            eta = el / fraction * (1.0 - fraction) if fraction > 0.02 and el > 0.3 else None
        e = format_eta(eta)
        message = re.sub(r", ETA [-\d.na]+ s$", "", message)     # one ETA, on the progress bar
        self.panel.set_progress(fraction, f"{fraction * 100:.0f}%" + (f" · {e}" if e else ""), message)

    def _end(self, msg: tuple) -> None:
        proc, self.proc = self.proc, None
        self._timer.stop()
        p, banner = self.panel, self.win.banner
        p.set_running(False)
        kind = msg[0]
        if kind == "done":
            r = self.result = msg[1]
            took = time.perf_counter() - self._t0
            p.set_progress(1.0, "100%", f"Trained {r['detector']} on {len(r['classes'])} class(es), "
                                        f"{r['n_samples']} good samples, {r['epochs']} epoch(s) in {took:.0f} s; "
                                        f"final loss {r['losses'][-1]:.4f}. Saved {r['path']}.")
            p.use_btn.setEnabled(True)
            if r["skipped"]:
                banner.warning(f"{len(r['skipped'])} training sample(s) could not be read and were skipped.",
                               r["skipped"])
        elif kind == "cancelled":
            if proc is not None and proc.t_cancel is not None:
                self.last_cancel_ms = (time.perf_counter() - proc.t_cancel) * 1000
            p.set_progress(self._fraction, "cancelled", "Training cancelled" + (
                f" in {self.last_cancel_ms:.0f} ms" if self.last_cancel_ms is not None else "") +
                "; the checkpoint of the last finished epoch (if any) is kept.")
        else:
            p.set_progress(self._fraction, "failed", f"Training failed: {msg[1]}")
            banner.error(f"Training failed: {msg[1]}", msg[2] if len(msg) > 2 else "")
        self.finished.emit(kind)

    # ------------------------------------------------------------------ result
    def use_model(self) -> bool:
        """Make the trained detector, with its new checkpoint, the session's detector."""
        r = self.result
        if r is None:
            return False
        an = self.win.analysis
        det = r["detector"]
        if self.session.detector_id != det:
            an.choose_detector(det, checkpoint=r["path"])
        if self.session.detector_id != det:
            return False
        an.set_params({"checkpoint": r["path"]})
        self.win.detector_panel.set_values(self.session.params)
        self.win.banner.info(f"Using {det} with {r['path']}.")
        return True

    def shutdown(self) -> None:
        self._timer.stop()
        if self.proc is not None:
            self.proc.shutdown()
            self.proc = None
