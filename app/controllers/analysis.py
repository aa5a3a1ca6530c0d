"""Analysis controller: the detector, its parameters, the fusion sliders, few-shot support and the
analysis jobs (one sample / every shown sample / cancel).

Jobs go through the window's :class:`app.jobs.JobRunner` with per-job callbacks: :meth:`run_current`
submits the session's work and :meth:`_analysed` (on the GUI thread) shows its result; nothing
dispatches on a job's kind.  A fusion slider re-fuses the cached components on the GUI thread
(milliseconds) and repaints both views.

Debounce timers: ``_fusion_timer`` (one re-fuse + repaint per event-loop turn), ``_preview_timer``
(the 3D view's decimated preview until the sliders rest ``PREVIEW_HOLD_MS``), ``_refuse_delay`` /
``_refuse_timer`` (the other cached samples' scores re-fused in slices once the sliders rest) and
``_rerun_timer`` (a rerun after parameter edits).

Session change events: :meth:`detector_changed`, :meth:`records_changed` and :meth:`fitted` here
(and ``DatasetController.dataset_changed``) are the slots to connect, one line each, wrapped in
:func:`app.jobs.on_gui_thread` when the session may emit from the job thread.

Signals: ``detectorChanged(detector)`` once the panels show a new detector, ``resultShown(key)``
once a result is painted in both views.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterable, Optional

from PySide6.QtCore import QObject, QTimer, Signal

from core.detectors import registry
from core.detectors.base import DetectorResult
from core.session import Analysis, RunSummary, Session, describe_error

from ..inspector import InspectorView
from ..jobs import Job, JobRunner
from ..panels import BrowserPanel, DetectorPanel, FewShotPanel, FusionPanel, MessageBanner, PromptPanel
from ..panels.status import StatusFields
from ..settings import Settings
from .dataset import DatasetController

log = logging.getLogger(__name__)

DEFAULT_DETECTOR = "memory-bank"
REFUSE_SLICE_MS = 25       # re-fusing the other cached samples yields to the event loop this often
PREVIEW_HOLD_MS = 200      # the 3D view shows its decimated preview subset until sliders rest this long
RERUN_DELAY_MS = 300       # parameter edits are debounced this long before the rerun
REFUSE_DELAY_MS = 400      # the other samples are re-fused once the sliders rest this long


def _timer(parent: QObject, ms: int, slot, single: bool = True) -> QTimer:
    t = QTimer(parent)
    t.setSingleShot(single)
    t.setInterval(ms)
    t.timeout.connect(slot)
    return t


class AnalysisController(QObject):
    """Drives the detector, fusion, prompt and few-shot panels, the inspector's results and the
    browser's score column for the ``dataset`` controller's current sample."""

    detectorChanged = Signal(object)
    resultShown = Signal(str)

    def __init__(self, session: Session, settings: Settings, jobs: JobRunner, dataset: DatasetController, *,
                 detector_panel: DetectorPanel, fusion_panel: FusionPanel, prompt_panel: PromptPanel,
                 fewshot_panel: FewShotPanel, browser: BrowserPanel, inspector: InspectorView,
                 banner: MessageBanner, status: StatusFields, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.session, self.settings, self.jobs, self.dataset = session, settings, jobs, dataset
        self.detector_panel, self.fusion_panel, self.prompt_panel = detector_panel, fusion_panel, prompt_panel
        self.fewshot_panel, self.browser, self.inspector = fewshot_panel, browser, inspector
        self.banner, self.status = banner, status
        #: where a detector's saved parameters live: the project controller (``detector_params(id)``,
        #: ``save_params()``), set by the window; None: only what an older version left in the settings
        self.params_store = None
        self.pending_run = False
        self.analysing = False            # an analysis job (not the demo) is running
        self.last_job: Optional[Job] = None
        self.last_fusion_ms: Optional[float] = None
        self.last_cancel_ms: Optional[float] = None
        self._fewshot_class: Optional[str] = None
        self._refuse_queue: list[str] = []
        self._preview_wanted = False
        self._fusion_timer = _timer(self, 0, self._refresh_fusion)
        self._refuse_timer = _timer(self, 0, self._refuse_slice, single=False)
        self._refuse_delay = _timer(self, REFUSE_DELAY_MS, self._start_refuse_all)
        self._preview_timer = _timer(self, PREVIEW_HOLD_MS, self._end_preview)
        self._rerun_timer = _timer(self, RERUN_DELAY_MS, lambda: self.auto_run())
        self._connect()

    def _connect(self) -> None:
        dp, fp, pp = self.detector_panel, self.fusion_panel, self.prompt_panel
        dp.detectorChosen.connect(self.choose_detector)
        dp.deviceChosen.connect(self.choose_device)
        dp.paramChanged.connect(lambda n, v: self.set_params({n: v}))
        dp.resetRequested.connect(lambda: self._reset_params(dp.form.defaults()))
        dp.runSample.connect(lambda: self.run_current(force=True))
        dp.runAll.connect(self.run_all)
        dp.cancelRequested.connect(self.cancel_run)
        fp.paramChanged.connect(self.set_fusion_param)
        fp.resetRequested.connect(lambda: self._reset_params(fp.form.defaults()))
        pp.promptsApplied.connect(self.set_params)
        pp.resetRequested.connect(lambda: self._reset_params(pp.form.defaults()))
        self.fewshot_panel.supportApplied.connect(self.set_support)
        self.browser.useAsSupport.connect(self.use_as_support)
        self.dataset.currentChanged.connect(lambda _key: self.refresh_fewshot())
        self.dataset.sampleShown.connect(self._on_sample_shown)
        self.dataset.aboutToOpen.connect(self.stop)
        self.dataset.datasetReset.connect(self.dataset_changed)
        self.jobs.started.connect(self._on_job_started)
        self.jobs.progress.connect(dp.set_progress)
        self.jobs.progress.connect(self.status.show_progress)
        self.jobs.finished.connect(self._on_job_finished)

    # ================================================================== detector
    def init_detector(self) -> None:
        ids = self._available_detectors()
        self.detector_panel.set_devices(["cpu"], "cpu")
        from core.devices import available_devices
        self.jobs.submit("Probing the devices", lambda *_: available_devices(), lane="probe", on_result=self._on_probe,
                         on_error=lambda err: log.info("CUDA probe failed: %s", err))
        if self.session.detector is None:
            wanted = self.settings.detector_id
            det_id = wanted if wanted in ids else DEFAULT_DETECTOR if DEFAULT_DETECTOR in ids else (ids[0] if ids else "")
            if det_id:
                self._set_detector(det_id, self.settings.device if self.settings.device == "cpu" else "cpu")
        else:
            self.detector_changed()

    def _on_probe(self, devices: Any) -> None:
        if devices and len(devices) > 1:
            self.detector_panel.set_devices(list(devices), self.session.device)

    def _available_detectors(self) -> list[str]:
        try:
            ids = registry.available()
        except Exception as err:  # noqa: BLE001 - a broken detector module must not kill the window
            self.banner.error(f"Could not load the built-in detectors: {err}")
            ids = []
        names = {}
        for i in ids:
            try:
                names[i] = registry.get(i).name or i
            except KeyError:
                names[i] = i
        self.detector_panel.set_detectors(ids, names, self.session.detector_id or self.settings.detector_id or "")
        return ids

    def _set_detector(self, det_id: str, device: str, **overrides: Any) -> bool:
        store = self.params_store
        saved = store.detector_params(det_id) if store is not None else self.settings.legacy_detector_params(det_id)
        try:
            self.session.set_detector(det_id, device, **dict(saved, **overrides))
        except Exception as err:  # noqa: BLE001
            self.banner.error(f"Could not create detector '{det_id}': {describe_error(err)}")
            return False
        self.detector_changed()
        return True

    def detector_changed(self) -> None:
        """The session's detector changed: panels, status bar, few-shot list, results."""
        det = self.session.detector
        if det is None:
            return
        self.detector_panel.set_detector(det)
        self.fusion_panel.set_detector(det)
        self.prompt_panel.set_detector(det)
        self.status.detector.setText(f"detector: {det.name or det.id}")
        self.status.device.setText(f"device: {self.session.device.upper()}")
        self._fewshot_class = None
        self.refresh_fewshot()
        self.inspector.clear_result()
        self.browser.model.refresh_all()
        self.detectorChanged.emit(det)

    def choose_detector(self, det_id: str, **overrides: Any) -> None:
        """Switch to another detector with its saved parameters (``overrides`` on top)."""
        if not det_id or det_id == self.session.detector_id:
            return
        self.save_params()
        self._cancel_and_wait()
        if self._set_detector(det_id, self.session.device, **overrides):
            self.settings.detector_id = det_id
            self.auto_run()

    def choose_device(self, device: str) -> None:
        if device == self.session.device:
            return
        self._cancel_and_wait()
        self.session.set_device(device)
        self.settings.device = device
        self.status.device.setText(f"device: {device.upper()}")
        self.inspector.clear_result()
        self.browser.model.refresh_all()
        self.auto_run()

    def _cancel_and_wait(self) -> None:
        if self.jobs.busy:
            self.jobs.cancel()
            self.jobs.wait(2.0)

    def dataset_changed(self) -> None:
        self._fewshot_class = None
        self.inspector.clear_result()

    def fitted(self, class_name: str) -> None:
        """The session fitted ``class_name``: its few-shot list and the browser's rows may change."""
        if self._fewshot_class == class_name:
            self._fewshot_class = None
            self.refresh_fewshot()
        self.browser.model.refresh_all()

    def records_changed(self, keys: Iterable[str]) -> None:
        """Records of ``keys`` changed (scores, errors): refresh their browser rows."""
        for k in keys:
            self.browser.model.refresh_key(k)

    # ================================================================== parameters
    def set_params(self, values: dict[str, Any]) -> set[str]:
        """Apply fit/score/text parameter edits: stale results are re-analysed (auto-run)."""
        try:
            touched = self.session.set_params(**values)
        except (ValueError, KeyError) as err:
            self.banner.error(str(err).strip("'\""))
            self._sync_param_widgets()
            return set()
        if not touched:
            return touched
        if touched - {"fusion"}:
            what = ("the detector is refitted" if "fit" in touched else
                    "text embeddings are recomputed" if touched == {"text"} else "samples are re-analysed")
            self.status.timing.setText(f"parameters changed: {what}")
            if self.analysing:
                self.jobs.cancel()   # its result would be stale anyway
            self.browser.model.refresh_all()
            if self.detector_panel.auto_run.isChecked():
                self.pending_run = True
                self._rerun_timer.start()
        else:
            self._fusion_timer.start()
        self.save_params()
        return touched

    def set_fusion_param(self, name: str, value: Any) -> None:
        """A fusion slider moved: re-fuse the cached maps and repaint (no backbone runs).

        Slider events are coalesced: the re-fuse and repaint run once per event-loop turn
        (``_fusion_timer``).  Meanwhile the 3D view draws its decimated preview subset (several
        times faster to render); the full display subset returns once no fusion slider is held
        and none has moved for ``PREVIEW_HOLD_MS``.
        """
        try:
            self.session.set_params(**{name: value})
        except ValueError as err:
            self.banner.error(str(err))
            return
        self._preview_wanted = True      # switched on in _refresh_fusion: one 3D frame, not two
        self._preview_timer.start()
        self._fusion_timer.start()

    def _fusion_slider_down(self) -> bool:
        for ed in self.fusion_panel.form.editors.values():
            slider = getattr(ed, "slider", None)
            if slider is not None and slider.isSliderDown():
                return True
        return False

    def _end_preview(self) -> None:
        if self._fusion_slider_down():
            self._preview_timer.start()      # still held: check again later
            return
        self.inspector.cloud_view.set_preview(False)

    def _reset_params(self, defaults: dict[str, Any]) -> None:
        self.set_params(defaults)
        self._sync_param_widgets()

    def _sync_param_widgets(self) -> None:
        p = self.session.params
        for panel in (self.detector_panel, self.fusion_panel, self.prompt_panel):
            panel.set_values(p)

    def save_params(self) -> None:
        if self.params_store is not None:
            self.params_store.save_params()

    def _refresh_fusion(self) -> None:
        """Re-fuse the current sample once and repaint both views (``_fusion_timer``)."""
        t0 = time.perf_counter()
        shown = False
        if self._preview_wanted:
            self._preview_wanted = False
            self.inspector.cloud_view.set_preview(True)
        key = self.dataset.current_key
        if key is not None and self.inspector.sample is not None:
            res = self.session.result(key)
            if res is not None:
                self.show_result(res)     # updates the title too
                shown = True
        self.last_fusion_ms = (time.perf_counter() - t0) * 1000
        self.fusion_panel.set_timing(self.last_fusion_ms)
        self.browser.model.refresh_key(key or "")
        if not shown:
            self.dataset.update_title()
        # the table's scores of the other cached samples are re-fused once the slider rests
        self._refuse_timer.stop()
        self._refuse_delay.start()

    def _start_refuse_all(self) -> None:
        cur = self.dataset.current_key
        self._refuse_queue = [k for k in self.session.components.keys() if k != cur]
        self._refuse_timer.start()

    def _refuse_slice(self) -> None:
        t_end = time.perf_counter() + REFUSE_SLICE_MS / 1000
        while self._refuse_queue and time.perf_counter() < t_end:
            self.session.refuse(self._refuse_queue.pop())
        if not self._refuse_queue:
            self._refuse_timer.stop()
            self.browser.model.refresh_all()

    # ================================================================== support
    def refresh_fewshot(self) -> None:
        ref = self.dataset.current_ref()
        det = self.session.detector
        panel = self.fewshot_panel
        if ref is None or det is None:
            panel.set_candidates("", [], [], 0)
            return
        if ref.class_name == self._fewshot_class:
            return
        self._fewshot_class = ref.class_name
        cands = self.session.support_candidates(ref.class_name)
        if self.session.dataset is not None:
            panel.start_dir = str(self.session.dataset.root)
        extra = [i for i in self.session.support(ref.class_name)
                 if hasattr(i, "key") and i.key not in {c.key for c in cands}]
        cands = list(cands) + extra      # e.g. test samples the user marked "use as support"
        panel.set_candidates(ref.class_name, cands, self.session.support(ref.class_name), det.needs.support,
                             self.dataset.thumbs)

    def use_as_support(self, key: str) -> None:
        """Add one sample of the list to its class's support set (as MVTec's DL tool does); a test
        sample that is not labelled good is refused (it would teach the detector a defect)."""
        try:
            ref = self.session.ref(key)
        except Exception:  # noqa: BLE001 - a stale key from the view
            return
        if ref.label and not ref.is_good:
            self.banner.warning(f"{key} is labelled '{ref.label}': only good samples can be support samples.")
            return
        items = list(self.session.support(ref.class_name))
        if any(isinstance(i, type(ref)) and i.key == key for i in items):
            self.banner.info(f"{key} is already a support sample of '{ref.class_name}'.")
            return
        self.set_support(ref.class_name, items + [ref])

    def set_support(self, class_name: str, items) -> None:
        """Use ``items`` (None: the default) as the support set of a class; refits that class only."""
        if not class_name:
            return
        det = self.session.detector
        if items is not None and det is not None and len(items) < det.needs.support:
            self.banner.warning(f"'{det.id}' needs at least {det.needs.support} support sample(s); "
                             f"{len(items)} selected. Select more good samples or files.")
            return
        changed = self.session.set_support(class_name, items)
        self._fewshot_class = None
        self.refresh_fewshot()
        if changed:
            n = len(self.session.support(class_name))
            self.banner.info(f"Support of '{class_name}' changed ({n} sample(s)): only this class is refitted.")
            self.browser.model.refresh_all()
            ref = self.dataset.current_ref()
            if ref is not None and ref.class_name == class_name:
                self.inspector.clear_result()
                if self.jobs.busy:
                    self.jobs.cancel()
                self.pending_run = True
                self.auto_run()

    # ================================================================== results
    def _on_sample_shown(self, key: str) -> None:
        res = self.session.result(key)
        if res is not None:
            self.show_result(res)
        else:
            self.auto_run()

    def show_result(self, res: DetectorResult) -> None:
        self.inspector.show_result(res)
        p = res.params or {}
        self.fusion_panel.set_decision(res.threshold, p.get("threshold"), p.get("false_alarm_rate"))
        self.dataset.update_title()
        self.resultShown.emit(self.dataset.current_key or "")

    def _show_current_if(self, key: str, res: Optional[DetectorResult] = None) -> None:
        """Show ``res`` (default: the session's result of ``key``) if ``key`` is the sample on screen."""
        if key != self.dataset.current_key or self.inspector.sample is None:
            return
        res = res if res is not None else self.session.result(key)
        if res is not None:
            self.show_result(res)

    # ================================================================== running
    def auto_run(self) -> None:
        if self.detector_panel.auto_run.isChecked() or self.pending_run:
            self.run_current()

    def run_current(self, force: bool = False) -> bool:
        """Analyse the selected sample (fit its class first if needed) as a job."""
        ref = self.dataset.current_ref()
        if ref is None or self.session.detector is None:
            return False
        if self.jobs.busy:
            self.pending_run = True
            return False
        self.pending_run = False
        if not force and self.session.result(ref.key) is not None:
            return False
        rec = self.session.records.get(ref.key)
        if not force and rec is not None and rec.error and not rec.stale and rec.image_score is None:
            return False   # already failed with these parameters; F5 retries
        session = self.session
        name = f"Analysing {ref.key}"

        def job(progress, cancel, emit):
            return session.analyze(ref, progress, cancel, on_error=lambda item, err: emit((item, err)), force=force)

        return self._submit(name, job, on_result=self._analysed, on_partial=lambda p: self._support_skipped(*p),
                            on_error=lambda err: self._analysis_failed(name, ref, err))

    def _submit(self, name: str, fn, **callbacks) -> bool:
        """Submit an analysis job; ``analysing`` until its outcome is handled (each outcome's
        callback clears it first, ``on_done`` in any case)."""
        def done(_job: Job) -> None:
            self.analysing = False

        job = self.jobs.submit(name, fn, on_cancel=lambda: self._cancelled(name), on_done=done, **callbacks)
        if job is not None:
            self.analysing = True
            self.last_job = job
        return job is not None

    def _support_skipped(self, item, err) -> None:
        self.browser.model.refresh_key(getattr(item, "key", str(item)))
        self.banner.warning(f"A support sample was left out: {describe_error(err)}")

    def _analysis_failed(self, name: str, ref, err: BaseException) -> None:
        self.analysing = False
        rec = self.session.records.get(ref.key)
        if rec is not None:
            rec.error = describe_error(err)
            self.browser.model.refresh_key(ref.key)
        self.dataset.update_title()
        self.banner.failure(name, err)
        self.pending_run = False

    def _analysed(self, a: Analysis) -> None:
        self.analysing = False
        self.browser.model.refresh_key(a.ref.key)
        fit = f"fit {a.fit_seconds:.2f} s · " if a.fit_seconds else ""
        self.status.timing.setText(f"{fit}extract {a.seconds:.2f} s")
        if a.ref.key == self.dataset.current_key and self.inspector.sample is not None:
            if a.stale:
                self.pending_run = True
            else:
                self.show_result(a.result)
        if not a.stale and self.banner.level == "error" and self.banner.isVisible():
            self.banner.dismiss()

    def run_all(self) -> bool:
        """Analyse every sample the browser shows; bad files are listed as skipped, the run goes on."""
        refs = self.browser.visible_refs()
        if not refs or self.session.detector is None:
            return False
        if self.jobs.busy:
            self.banner.info("A run is in progress: cancel it first (Esc).")
            return False
        session = self.session
        name = f"Analysing {len(refs)} samples"

        def job(progress, cancel, emit):
            return session.run(refs, progress, cancel, on_result=emit, on_error=lambda item, err: emit((item, err)))

        return self._submit(name, job, on_result=self._ran_all, on_partial=self._ran_one,
                            on_error=lambda err: self._run_all_failed(name, err))

    def _ran_one(self, obj) -> None:
        """One sample of a run done (an Analysis) or skipped (item, error)."""
        if isinstance(obj, Analysis):
            self.browser.model.refresh_key(obj.ref.key)
            if not obj.stale:
                self._show_current_if(obj.ref.key, obj.result)
        else:
            item, _err = obj
            self.browser.model.refresh_key(getattr(item, "key", str(item)))

    def _run_all_failed(self, name: str, err: BaseException) -> None:
        self.analysing = False
        self.banner.failure(name, err)
        self.pending_run = False

    def _ran_all(self, s: RunSummary) -> None:
        self.analysing = False
        self.browser.model.refresh_all()
        self.status.timing.setText(s.message())
        if s.skipped:
            self.banner.warning(f"{s.message()}. {len(s.skipped)} sample(s) could not be analysed and were "
                                f"skipped (see Details); fix or remove those files and run again.",
                                [f"{k}: {m}" for k, m in s.skipped])
        elif s.cancelled:
            self.banner.info(f"Run cancelled: {s.message()}.")
        else:
            self.banner.info(f"Done: {s.message()}.")
        if self.dataset.current_key:
            self._show_current_if(self.dataset.current_key)
        self._note_cancel_latency(s.cancelled)

    def cancel_run(self) -> None:
        if self.jobs.busy:
            self.pending_run = False
            self.jobs.cancel()
            self.detector_panel.progress_label.setText("cancelling…")

    def stop(self) -> None:
        """Stop a running analysis before the dataset changes (the demo job goes on)."""
        if self.analysing:
            self.pending_run = False
            self.jobs.cancel()
            self.jobs.wait(2.0)

    def _cancelled(self, name: str) -> None:
        self.analysing = False
        self._note_cancel_latency(True)
        if not self.pending_run:
            self.banner.info(f"{name}: cancelled.")

    def _note_cancel_latency(self, cancelled: bool) -> None:
        job = self.last_job
        if cancelled and job is not None and job.t_cancel is not None:
            self.last_cancel_ms = (time.perf_counter() - job.t_cancel) * 1000
            self.status.timing.setText(f"cancelled in {self.last_cancel_ms:.0f} ms")

    # ------------------------------------------------------------------ job chrome (every main-lane job)
    def _on_job_started(self, job: Job) -> None:
        self.detector_panel.set_running(True, job.name)
        self.status.show_job(job.name)
        self.dataset.update_title()

    def _on_job_finished(self, job: Job) -> None:
        self.detector_panel.set_running(False, "cancelled" if job.t_cancel else "done")
        self.status.show_job(None)
        if self.pending_run:
            QTimer.singleShot(0, self.run_current)
