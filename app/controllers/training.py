"""Training controller: the Train panel's choices -> one training run in a worker process
(:func:`core.training.train_in_process`, a job on the runner's ``"train"`` lane), its progress,
ETA and live loss plot, cancel, and "Use this model" (the trained detector with its new checkpoint
becomes the session's detector).

Nothing blocks the event loop: the child does the feature extraction and the torch work, the job's
thread waits for its messages, and the epoch / batch losses come back as the job's partial results.
Analysis jobs go on meanwhile.
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any, Optional

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from core.detectors import registry
from core.session import Session, describe_error
from core.training import TrainResult, train_in_process

from ..jobs import Job, JobRunner, format_eta
from ..panels import DetectorPanel, MessageBanner
from ..panels.train import TrainPanel
from ..settings import Settings
from .analysis import AnalysisController

log = logging.getLogger(__name__)

LANE = "train"


def trainable_detectors() -> dict[str, str]:
    """id -> name of the registered detectors that are trained (:meth:`Detector.trainable`)."""
    out = {}
    for i in registry.available():
        try:
            cls = registry.get(i)
        except KeyError:
            continue
        if cls.trainable():
            out[i] = cls.name or i
    return out


class TrainingController(QObject):
    """Drives the Train panel; "Use this model" goes through ``analysis``.  Signals:
    ``epochDone(epoch, loss)``, ``finished(outcome)`` with outcome ``"done"``, ``"cancelled"`` or
    ``"error"``."""

    epochDone = Signal(int, float)
    finished = Signal(str)

    def __init__(self, session: Session, settings: Settings, jobs: JobRunner, analysis: AnalysisController, *,
                 train_panel: TrainPanel, detector_panel: DetectorPanel, banner: MessageBanner,
                 parent: Optional[QObject] = None):
        super().__init__(parent)
        self.session, self.settings, self.jobs, self.analysis = session, settings, jobs, analysis
        self.panel, self.detector_panel, self.banner = train_panel, detector_panel, banner
        self.job: Optional[Job] = None
        self.result: Optional[TrainResult] = None
        self.last_cancel_ms: Optional[float] = None
        self.train_kwargs: dict[str, Any] = {}     # more arguments of core.training.train (tests, scripts)
        self.nice = 5                              # niceness increment of the training process
        self._t0 = 0.0
        self._fraction = 0.0
        self._outcome = ""
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
        return self.job is not None

    # ------------------------------------------------------------------ panel
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
        return Path(self.settings.last_folder or Path.home())

    def choose_output(self) -> None:
        start = self.panel.out_edit.text().strip() or str(self._data_folder() / "model")
        path, _ = QFileDialog.getSaveFileName(self.panel.window(), "Save the trained model", start,
                                              "Checkpoint (*.safetensors)")
        if path:
            self.panel.out_edit.setText(path)

    # ------------------------------------------------------------------ run
    def start(self, **overrides: Any) -> bool:
        """Start training with the panel's choices (``overrides``: detector_id, classes, epochs, out)."""
        if self.running:
            return False
        p, banner = self.panel, self.banner
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
        kwargs, nice = dict(self.train_kwargs), self.nice

        def work(progress, cancel, emit):
            return train_in_process(ds, det, progress, cancel, lambda e, loss: emit(("epoch", e, loss)),
                                    on_batch=lambda e, loss: emit(("batch", e, loss)), nice=nice,
                                    classes=classes, epochs=epochs, out=out, **kwargs)

        job = self.jobs.submit(f"Training {det}", work, lane=LANE, exclusive=True, on_progress=self._progress,
                               on_partial=self._message, on_result=self._done, on_cancel=self._cancelled,
                               on_error=self._failed, on_done=self._ended)
        if job is None:
            return False
        self.job, self.result, self.last_cancel_ms = job, None, None
        self._t0, self._fraction, self._outcome = time.perf_counter(), 0.0, "error"
        self._epochs, self._batch0, self._epoch_done = epochs, None, 0.0
        p.plot.clear_points()
        p.plot.getPlotItem().setTitle(f"{det} · {', '.join(classes)}", color="#aeb4bd", size="9pt")
        p.set_running(True)
        p.status.setText(f"Starting the training process ({det}, {len(classes)} class(es), {epochs} epoch(s))…")
        return True

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.panel.status.setText("cancelling…")

    def _message(self, msg: tuple) -> None:
        kind, epoch, loss = msg
        if kind == "batch":
            if self._batch0 is None:
                self._batch0 = (time.perf_counter(), epoch)
            self._epoch_done = epoch
            self.panel.plot.add_batch(epoch, loss)
        else:
            self.panel.plot.add_epoch(epoch, loss)
            self.epochDone.emit(epoch, loss)

    def _progress(self, fraction: float, message: str, _eta: float) -> None:
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

    def _done(self, r: TrainResult) -> None:
        self._outcome = "done"
        self.result = r
        took = time.perf_counter() - self._t0
        p = self.panel
        p.set_progress(1.0, "100%", f"Trained {r.detector} on {len(r.classes)} class(es), "
                                    f"{r.n_samples} good samples, {r.epochs} epoch(s) in {took:.0f} s; "
                                    f"final loss {r.losses[-1]:.4f}. Saved {r.path}.")
        p.use_btn.setEnabled(True)
        if r.skipped:
            self.banner.warning(f"{len(r.skipped)} training sample(s) could not be read and were skipped.",
                                list(r.skipped))

    def _cancelled(self) -> None:
        self._outcome = "cancelled"
        if self.job is not None and self.job.t_cancel is not None:
            self.last_cancel_ms = (time.perf_counter() - self.job.t_cancel) * 1000
        self.panel.set_progress(self._fraction, "cancelled", "Training cancelled" + (
            f" in {self.last_cancel_ms:.0f} ms" if self.last_cancel_ms is not None else "") +
            "; the checkpoint of the last finished epoch (if any) is kept.")

    def _failed(self, err: BaseException) -> None:
        self._outcome = "error"
        self.panel.set_progress(self._fraction, "failed", f"Training failed: {describe_error(err)}")
        self.banner.failure("Training", err)

    def _ended(self, _job: Job) -> None:
        self.job = None
        self.panel.set_running(False)
        self.finished.emit(self._outcome)

    # ------------------------------------------------------------------ result
    def use_model(self) -> bool:
        """Make the trained detector, with its new checkpoint, the session's detector."""
        r = self.result
        if r is None:
            return False
        an = self.analysis
        det, path = r.detector, str(r.path)
        if self.session.detector_id != det:
            an.choose_detector(det, checkpoint=path)
        if self.session.detector_id != det:
            return False
        an.set_params({"checkpoint": path})
        self.detector_panel.set_values(self.session.params)
        self.banner.info(f"Using {det} with {path}.")
        return True

    def shutdown(self) -> None:
        """Stop a training run now (window closing): the child is stopped within ``kill_after_s``."""
        if self.job is not None:
            self.job.cancel()
            self.job = None
