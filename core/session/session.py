"""The headless model behind the workbench: a dataset, a detector and per-sample cached results.

:class:`Session` keeps everything the GUI shows, without any Qt:

* the opened :class:`~core.datasets.base.Dataset` and one :class:`SampleRecord` per sample (image
  score, decision, error, staleness: what the browser table shows);
* the detector *parameters* and one fitted detector instance per part class (few-shot detectors fit
  on the good support samples of the class being inspected);
* two memory-bounded LRU caches: loaded samples and per-sample :class:`~core.detectors.base.Components`
  (with their fused result).

Changing a parameter invalidates exactly what depends on it (see :meth:`Session.set_params`):

========  =========================================================================
stage     effect
========  =========================================================================
fusion    nothing is recomputed: :meth:`Session.refuse` re-applies ``detector.fuse`` to the
          cached components (milliseconds)
score     cached components become stale: samples are re-extracted on demand
text      the detector drops its text-side caches (``on_invalidate``); cached components are
          re-scored (``rescore``: text-dependent maps only) on demand, the fit is kept
fit       the detectors are refitted on demand; components are stale
========  =========================================================================

Changing the support set of a class (:meth:`Session.set_support`) refits that class only.

Fitted states (:class:`~core.detectors.state.FitState`) are held by the session's instance of each
class whatever backend computed them, and saved in a :class:`~core.detectors.state.FitStore`
(``fit_store``): the same detector, fit parameters and support set (by content) reuse the saved fit
instead of refitting, e.g. when a dataset is reopened.  A ``text``-stage change keeps the cached
components and re-derives their text-dependent maps with ``detector.rescore`` (no backbone run).

Long operations (:meth:`Session.fit`, :meth:`Session.analyze`, :meth:`Session.run`) take the
detector's ``progress(fraction, message)`` and ``cancel() -> bool`` callbacks, so a front-end runs
them in a worker thread; :meth:`Session.refuse` is cheap and meant for the GUI thread.  Results
computed while a parameter changed underneath are returned but flagged stale and never cached.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import numpy as np

from ..backbones import release as release_backbones
from ..datasets.base import Dataset, SampleRef
from ..detectors import registry
from ..detectors.base import (STAGE_FIT, STAGE_FUSION, STAGE_SCORE, STAGE_TEXT, CancelFn, Components,
                              Detector, DetectorResult, ProgressFn)
from ..detectors.state import FitState, FitStore, fit_key, support_hash
from ..errors import Cancelled, InputError, InvalidResultError, MissingWeightsError, MMADError
from ..sample import Sample
from .backends import Backend, ThreadBackend
from .cache import ByteLRU
from .checks import saved_params
from .events import SessionEvents
from .records import (Analysis, CacheEntry, RunSummary, SampleRecord, sub_progress,  # noqa: F401
                      describe_error)

log = logging.getLogger(__name__)

SupportItem = Union[SampleRef, Path]          # a dataset sample or a file chosen by the user
ErrorFn = Callable[[object, Exception], None]  # (ref or path, error)

DEFAULT_COMPONENT_CACHE = 1 << 30    # 1 GiB of cached components + fused maps
DEFAULT_SAMPLE_CACHE = 512 << 20     # 512 MiB of loaded samples




# ---------------------------------------------------------------------- the session
class Session:
    """Dataset + detector parameters + per-class fitted detectors + cached results (Qt-free)."""

    def __init__(self, dataset: Optional[Dataset] = None, detector: Union[str, Detector, None] = None,
                 device: str = "cpu", params: Optional[dict[str, Any]] = None, *,
                 component_cache_bytes: int = DEFAULT_COMPONENT_CACHE,
                 sample_cache_bytes: int = DEFAULT_SAMPLE_CACHE,
                 backend: Optional[Backend] = None,
                 fit_store: Union[FitStore, str, Path, None] = "auto",
                 calibrate_on_validation: bool = True):
        self._lock = threading.RLock()
        #: give detectors that calibrate a decision threshold (``calibrate(components)``) the
        #: held-out good parts (:meth:`calibration_items`) at fit time
        self.calibrate_on_validation = bool(calibrate_on_validation)
        self.events = SessionEvents()
        self.backend: Backend = backend if backend is not None else ThreadBackend()
        if fit_store == "auto":
            from ..paths import fits_dir
            try:
                fit_store = FitStore(fits_dir())
            except MMADError as e:   # no writable cache: fits are not saved, everything else works
                log.warning("fits are not saved: %s", e)
                fit_store = None
        elif isinstance(fit_store, (str, Path)):
            fit_store = FitStore(fit_store)
        self.fit_store: Optional[FitStore] = fit_store
        self.samples = ByteLRU(sample_cache_bytes)
        self.components = ByteLRU(component_cache_bytes)
        self.dataset: Optional[Dataset] = None
        self.records: dict[str, SampleRecord] = {}
        self._refs_by_key: dict[str, SampleRef] = {}
        self._support: dict[str, list[SupportItem]] = {}
        self._instances: dict[str, Detector] = {}
        self._fit_gen: dict[str, int] = {}        # class -> generation of its fitted state
        self._fitted_at: dict[str, int] = {}      # class -> fit generation its instance was fitted at
        self._comp_gen: dict[str, int] = {}       # class -> generation of valid components
        self._fusion_gen = 0                      # bumped on every fusion-parameter change
        self._text_gen = 0                        # bumped on every text-parameter change
        self.fit_sources: dict[str, str] = {}     # class -> "fitted" | "saved" (where its state came from)
        self.device = device
        self.detector: Optional[Detector] = None  # the "template": holds the parameter values
        self.detector_error: Optional[str] = None
        if detector is not None:
            self.set_detector(detector, device, **(params or {}))
        if dataset is not None:
            self.set_dataset(dataset)

    # ------------------------------------------------------------------ dataset
    def open(self, path: str | Path, layout: Optional[str] = None) -> Dataset:
        """Open a folder (lists files only; samples load lazily) and make it the session's dataset."""
        from ..datasets import open_dataset  # the loaders; imported late to keep this module light
        ds = open_dataset(path) if layout is None else open_dataset(path, layout=layout)
        self.set_dataset(ds)
        return ds

    def set_dataset(self, dataset: Dataset) -> None:
        with self._lock:
            self.dataset = dataset
            self.records = {r.key: SampleRecord(r) for r in dataset.refs}
            self._refs_by_key = {r.key: r for r in dataset.refs}
            self._support.clear()
            self._instances.clear()
            self._fitted_at.clear()
            self.fit_sources.clear()
            self.samples.clear()
            self.components.clear()
        self.events.dataset_changed.emit()

    @property
    def refs(self) -> list[SampleRef]:
        return list(self.dataset.refs) if self.dataset is not None else []

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes if self.dataset is not None else []

    def ref(self, key: str) -> SampleRef:
        try:
            return self._refs_by_key[key]
        except KeyError:
            raise InputError(None, f"no sample '{key}' in the dataset") from None

    def record(self, ref: Union[SampleRef, str]) -> SampleRecord:
        return self.records[ref if isinstance(ref, str) else ref.key]

    def load(self, ref: SampleRef) -> Sample:
        """Load a sample (cached, LRU bounded by memory). Raises :class:`SampleLoadError`."""
        s = self.samples.get(ref.key)
        if s is None:
            if self.dataset is None:
                raise InputError(None, "no dataset is open")
            s = self.dataset.load(ref)
            self.samples.put(ref.key, s)
        return s

    # ------------------------------------------------------------------ detector & parameters
    def set_detector(self, detector: Union[str, Detector], device: Optional[str] = None, **params: Any) -> Detector:
        """Choose the detector (an id from the registry or an instance); drops every fitted state."""
        if device is not None:
            self.device = device
        if isinstance(detector, str):
            cls = registry.get(detector)
            ok, dropped = saved_params(cls, params)
            for why in dropped:
                log.warning("ignoring saved value: %s", why)
            det = cls(device=self.device, **ok)
        else:
            det = detector
            det.device = self.device
            if params:
                det.set_params(**params)
        with self._lock:
            self.detector = det
            self._instances.clear()
            self._fitted_at.clear()
            self.fit_sources.clear()
            self._bump_all(fit=True)
            self.components.clear()
            self._mark_all_stale()
        self.events.detector_changed.emit()
        return det

    @property
    def detector_id(self) -> str:
        return self.detector.id if self.detector is not None else ""

    @property
    def params(self) -> dict[str, Any]:
        return self.detector.get_params() if self.detector is not None else {}

    def set_params(self, **values: Any) -> set[str]:
        """Set detector parameters; return the invalidated stages (see the module docstring).

        Raises :class:`~core.errors.InvalidParameterError` (with the parameter name) for an invalid
        value; nothing is changed then.
        """
        det = self._need_detector()
        with self._lock:
            touched = det.set_params(**values)   # validates every value before it changes any
            for inst in self._instances.values():
                inst.set_params(**values)
            if STAGE_FIT in touched:
                self._bump_all(fit=True)
            elif STAGE_SCORE in touched:
                self._bump_all(fit=False)
            if touched & {STAGE_FIT, STAGE_SCORE}:
                self.components.clear()
                self._mark_all_stale()
            elif STAGE_TEXT in touched:
                # cached components stay: their text-dependent maps are re-derived on demand
                self._text_gen += 1
                self._mark_all_stale()
            if STAGE_FUSION in touched:
                self._fusion_gen += 1
            if touched == {STAGE_FUSION}:
                # image scores of samples whose components are no longer cached can't be re-fused
                cached = set(self.components.keys())
                for k, rec in self.records.items():
                    if rec.image_score is not None and k not in cached:
                        rec.stale = True
        if touched:
            self.events.params_changed.emit(touched)
        return touched

    def set_device(self, device: str) -> None:
        """Move to another device: every class is refitted (or its saved fit reloaded) on demand."""
        if device == self.device:
            return
        with self._lock:
            self.device = device
            if self.detector is not None:
                self.detector.device = device
            self._instances.clear()
            self._fitted_at.clear()
            self._bump_all(fit=True)
            self.components.clear()
            self._mark_all_stale()
        try:   # backbones of the old device are released
            release_backbones()
        except Exception:  # noqa: BLE001 - releasing memory must never fail a device change
            log.debug("backbone release failed", exc_info=True)
        self.events.detector_changed.emit()

    def _need_detector(self) -> Detector:
        if self.detector is None:
            raise InputError(None, "no detector is selected")
        return self.detector

    def _bump_all(self, fit: bool) -> None:
        for c in set(self._comp_gen) | set(self.classes):
            self._comp_gen[c] = self._comp_gen.get(c, 0) + 1
            if fit:
                self._fit_gen[c] = self._fit_gen.get(c, 0) + 1

    def _bump_class(self, class_name: str) -> None:
        self._comp_gen[class_name] = self._comp_gen.get(class_name, 0) + 1
        self._fit_gen[class_name] = self._fit_gen.get(class_name, 0) + 1
        for k in self.components.keys():
            if self._refs_by_key.get(k) is not None and self._refs_by_key[k].class_name == class_name:
                self.components.pop(k)
        for rec in self.records.values():
            if rec.ref.class_name == class_name and rec.image_score is not None:
                rec.stale = True

    def _mark_all_stale(self) -> None:
        for rec in self.records.values():
            if rec.image_score is not None:
                rec.stale = True

    def instance(self, class_name: str) -> Detector:
        """The detector instance of a part class (created on first use with the current params;
        cheap: detectors allocate nothing heavy in ``__init__``).  It holds the class's fit state."""
        det = self._need_detector()
        with self._lock:
            inst = self._instances.get(class_name)
            if inst is None:
                inst = type(det)(device=self.device, **det.get_params())
                self._instances[class_name] = inst
            return inst

    # ------------------------------------------------------------------ support (few-shot)
    def default_support(self, class_name: str) -> list[SupportItem]:
        det = self._need_detector()
        k = max(det.needs.default_support, det.needs.support)
        if k <= 0 or self.dataset is None:
            return []
        return list(self.dataset.support_refs(class_name, k))

    def support(self, class_name: str) -> list[SupportItem]:
        """The support set of a class: the user's choice, else the dataset's first good train samples."""
        items = self._support.get(class_name)
        return list(items) if items is not None else self.default_support(class_name)

    def chosen_support(self, class_name: str) -> Optional[list[SupportItem]]:
        """The user's own support choice for a class, or None when the default set is used."""
        items = self._support.get(class_name)
        return list(items) if items is not None else None

    def support_candidates(self, class_name: str) -> list[SampleRef]:
        """Good samples of a class that may serve as support (train/validation first, never test)."""
        if self.dataset is None:
            return []
        refs = [r for r in self.dataset.select([class_name]) if r.is_good and r.split != "test"]
        order = {"train": 0, "validation": 1}
        return sorted(refs, key=lambda r: (order.get(r.split, 2), r.id))

    def set_support(self, class_name: str, items: Optional[Sequence[SupportItem]]) -> bool:
        """Set (``None``: reset to default) the support of a class; return True if it changed.

        Only that class is refitted; other classes keep their fitted state and cached results.
        """
        new = None if items is None else [Path(i) if isinstance(i, str) else i for i in items]
        old = self.support(class_name)
        with self._lock:
            if new is None:
                self._support.pop(class_name, None)
            else:
                self._support[class_name] = new
            changed = self.support(class_name) != old
            if changed:
                self._bump_class(class_name)
        if changed:
            self.events.support_changed.emit(class_name)
        return changed

    def is_fitted(self, class_name: str) -> bool:
        inst = self._instances.get(class_name)
        return (inst is not None and inst.fitted
                and self._fitted_at.get(class_name) == self._fit_gen.get(class_name, 0))

    def _load_support_item(self, item: SupportItem) -> Sample:
        if isinstance(item, SampleRef):
            return self.load(item)
        from ..datasets import load_sample
        return load_sample(Path(item))

    def calibration_items(self, class_name: str, items: Optional[Sequence[SupportItem]] = None) -> list[SampleRef]:
        """Good parts the fit calibrates its threshold on (:meth:`Dataset.calibration_refs`): the
        class's ``validation/good`` samples and the ``train/good`` ones the support left out;
        none when the detector does not calibrate or the option is off."""
        inst = self.instance(class_name)
        if not self.calibrate_on_validation or self.dataset is None or not inst.capabilities.calibrates:
            return []
        items = self.support(class_name) if items is None else items
        return inst.calibration_refs(self.dataset, class_name, [r for r in items if isinstance(r, SampleRef)])

    def expected_fit_key(self, class_name: str, items: Optional[Sequence[SupportItem]] = None) -> str:
        """The :attr:`FitState.key` a fit of this class would have now (no sample is decoded)."""
        inst = self.instance(class_name)
        items = self.support(class_name) if items is None else items
        key_items = _fit_hash(items, self.calibration_items(class_name, items))
        return fit_key(inst.id, str(inst.state_version), inst.fit_params(), class_name, key_items)

    def fit(self, class_name: str, progress: Optional[ProgressFn] = None, cancel: Optional[CancelFn] = None,
            on_error: Optional[ErrorFn] = None, reuse_saved: bool = True) -> float:
        """Fit the class's detector on its support set (zero-shot detectors: on an empty one);
        returns the seconds spent.

        A saved fit for the same detector, fit parameters and support content is loaded instead
        (``reuse_saved``).  A support sample that fails to load is reported through ``on_error``
        and left out; fewer usable samples than the detector needs raises :class:`InputError`.
        """
        det = self._need_detector()
        t0 = time.perf_counter()
        gen = self._fit_gen.setdefault(class_name, 0)
        items = self.support(class_name)
        need = det.needs.support
        if need > 0 and not items:
            where = self.dataset.root if self.dataset is not None else None
            raise InputError(where, f"detector '{det.id}' needs at least {need} good support sample(s) of "
                                    f"class '{class_name}' and the dataset has none in train/validation: "
                                    f"choose support samples in the Few-shot panel")
        inst = self.instance(class_name)
        Detector.report(progress, 0.0, "looking for a saved fit")
        calib_items = self.calibration_items(class_name, items)
        key_items = _fit_hash(items, calib_items)
        if reuse_saved and self.fit_store is not None:
            key = fit_key(inst.id, str(inst.state_version), inst.fit_params(), class_name, key_items)
            saved = self.fit_store.get(inst.id, str(inst.state_version), key)
            if saved is not None:
                try:
                    inst.load_state(saved)
                except MMADError as e:
                    log.warning("saved fit not usable, the class is refitted: %s", e)
                else:
                    return self._fitted(class_name, gen, t0, "saved")
        support: list[Sample] = []
        for i, item in enumerate(items):
            Detector.check_cancel(cancel)
            Detector.report(progress, 0.3 * i / max(len(items), 1), f"loading support {i + 1}/{len(items)}")
            try:
                support.append(self._load_support_item(item))
            except InputError as err:
                if on_error is None:
                    raise
                on_error(item, err)
        if len(support) < need:
            raise InputError(None, f"only {len(support)} of the support samples of class '{class_name}' could be "
                                   f"loaded; detector '{det.id}' needs {need}")
        calib: list[Sample] = []
        for item in calib_items:
            Detector.check_cancel(cancel)
            try:
                calib.append(self._load_support_item(item))
            except InputError as err:
                if on_error is None:
                    raise
                on_error(item, err)
        if len(support) < len(items) or len(calib) < len(calib_items):   # what was actually fitted on
            key_items = _fit_hash([it for it in items if not _failed(it, support)],
                                  [it for it in calib_items if not _failed(it, calib)])
        end = 0.8 if calib else 1.0
        state = self.backend.fit(inst, class_name, support, key_items, sub_progress(progress, 0.3, end), cancel)
        if inst.state is not state:
            inst.load_state(state)
        if calib:
            comps = []
            for i, smp in enumerate(calib):
                Detector.report(progress, end + (1 - end) * i / len(calib),
                                f"calibrating on held-out good part {i + 1}/{len(calib)}")
                try:
                    comps.append(self.backend.extract(inst, class_name, smp, None, cancel))
                except InputError as err:
                    if on_error is None:
                        raise
                    on_error(smp, err)
            state = inst.calibrate(comps)
        if self.fit_store is not None:
            self.fit_store.put(state)
        return self._fitted(class_name, gen, t0, "fitted")

    def _fitted(self, class_name: str, gen: int, t0: float, source: str) -> float:
        with self._lock:
            if self._fit_gen.get(class_name, 0) == gen:
                self._fitted_at[class_name] = gen
            self.fit_sources[class_name] = source
        seconds = time.perf_counter() - t0
        self.events.fitted.emit(class_name, seconds, source == "saved")
        return seconds

    def fit_state(self, class_name: str) -> Optional[FitState]:
        inst = self._instances.get(class_name)
        return inst.state if inst is not None else None

    # ------------------------------------------------------------------ analysis
    def analyze(self, ref: SampleRef, progress: Optional[ProgressFn] = None, cancel: Optional[CancelFn] = None,
                on_error: Optional[ErrorFn] = None, force: bool = False) -> Analysis:
        """Load, fit the class if needed, extract (or re-score after a prompt edit) and fuse one
        sample (cached unless ``force``)."""
        det = self._need_detector()
        c = ref.class_name
        Detector.report(progress, 0.0, f"loading {ref.key}")
        sample = self.load(ref)
        det.check_sample(sample)
        if not force:
            cached = self.result(ref)
            if cached is not None:
                Detector.report(progress, 1.0, "cached")
                return Analysis(ref, sample, cached, self.records[ref.key].seconds)
        gen = self._comp_gen.setdefault(c, 0)
        fusion_gen, text_gen = self._fusion_gen, self._text_gen
        fit_s = 0.0
        lo = 0.0
        if not self.is_fitted(c):
            fit_s = self.fit(c, sub_progress(progress, 0.0, 0.5), cancel, on_error)
            lo = 0.5
        Detector.check_cancel(cancel)
        inst = self.instance(c)
        entry = None if force else self._entry(ref.key, any_text=True)
        t0 = time.perf_counter()
        if entry is not None and entry.text_generation != text_gen:
            comps = self.backend.rescore(inst, c, entry.components, sub_progress(progress, lo, 1.0), cancel)
            seconds = entry.components.seconds
        else:
            comps = self.backend.extract(inst, c, sample, sub_progress(progress, lo, 1.0), cancel)
            seconds = time.perf_counter() - t0
            comps.seconds = comps.seconds or seconds
        result = inst.fuse(comps)
        _require_finite(result, sample, det.id)
        with self._lock:
            stale = (self._comp_gen.get(c, 0) != gen or self.detector is not det
                     or self._text_gen != text_gen)
            if not stale and fusion_gen != self._fusion_gen:   # a slider moved while extracting
                result = inst.fuse(comps)
                fusion_gen = self._fusion_gen
            rec = self.records.get(ref.key)
            if not stale:
                self.components.put(ref.key, CacheEntry(comps, result, gen, fusion_gen, text_gen))
            if rec is not None:
                self._update_record(rec, result)
                rec.stale = stale
                rec.error = None
                rec.seconds = seconds
        self.events.records_changed.emit([ref.key])
        Detector.report(progress, 1.0, "done")
        return Analysis(ref, sample, result, seconds, fit_s, stale)

    def run(self, refs: Sequence[SampleRef], progress: Optional[ProgressFn] = None,
            cancel: Optional[CancelFn] = None, on_result: Optional[Callable[[Analysis], None]] = None,
            on_error: Optional[ErrorFn] = None, force: bool = False) -> RunSummary:
        """Analyse many samples. Any failure of one sample (bad file, degenerate cloud, a detector
        bug) is reported, the sample is skipped and the run goes on; a class that cannot be fitted
        skips that class's samples only.

        :class:`Cancelled` stops the run (the summary says so); a missing-weights error stops it too
        since no sample could be analysed.
        """
        summary = RunSummary()
        t0 = time.perf_counter()
        n = len(refs)
        failed_classes: dict[str, str] = {}
        for i, ref in enumerate(refs):
            if cancel is not None and cancel():
                summary.cancelled = True
                break
            sub = sub_progress(progress, i / n, (i + 1) / n)
            sub_msg = (lambda f, msg="", _i=i, _s=sub: _s(f, f"{_i + 1}/{n} {ref.id}: {msg}")) if sub else None
            if ref.class_name in failed_classes:
                msg = failed_classes[ref.class_name]
                summary.skipped.append((ref.key, msg))
                rec = self.records.get(ref.key)
                if rec is not None:
                    rec.error = msg
                continue
            try:
                if not self.is_fitted(ref.class_name):
                    try:
                        self.fit(ref.class_name, sub_progress(sub_msg, 0.0, 0.5), cancel, on_error)
                    except (Cancelled, MissingWeightsError):
                        raise
                    except Exception as err:  # noqa: BLE001 - one class must not stop the batch
                        if not isinstance(err, MMADError):
                            log.exception("fit failed for class %s", ref.class_name)
                        failed_classes[ref.class_name] = f"class '{ref.class_name}' cannot be fitted: " \
                                                         f"{describe_error(err)}"
                        raise _ClassFailed(failed_classes[ref.class_name]) from err
                a = self.analyze(ref, sub_msg, cancel, on_error, force=force)
            except Cancelled:
                summary.cancelled = True
                break
            except MissingWeightsError:
                raise
            except Exception as err:  # noqa: BLE001 - a bad sample must not stop the batch
                msg = str(err) if isinstance(err, _ClassFailed) else describe_error(err)
                if not isinstance(err, MMADError):
                    log.exception("detector failed on %s", ref.key)
                rec = self.records.get(ref.key)
                if rec is not None:
                    rec.error = msg
                summary.skipped.append((ref.key, msg))
                if on_error is not None:
                    on_error(ref, err.__cause__ if isinstance(err, _ClassFailed) and err.__cause__ else err)
                self.events.records_changed.emit([ref.key])
                continue
            summary.done.append(ref.key)
            if on_result is not None:
                on_result(a)
        summary.seconds = time.perf_counter() - t0
        Detector.report(progress, 1.0, summary.message())
        return summary

    # ------------------------------------------------------------------ fusion (cheap, GUI thread)
    def _entry(self, key: str, any_text: bool = False) -> Optional[CacheEntry]:
        entry: Optional[CacheEntry] = self.components.get(key)
        if entry is None:
            return None
        c = self._refs_by_key[key].class_name if key in self._refs_by_key else ""
        if entry.generation != self._comp_gen.get(c, 0):
            self.components.pop(key)
            return None
        if not any_text and entry.text_generation != self._text_gen:
            return None    # needs a rescore (a worker job), not a re-fuse
        return entry

    def result(self, ref: Union[SampleRef, str]) -> Optional[DetectorResult]:
        """The current fused result of a sample, or None when it must be (re-)extracted or
        re-scored (after a prompt edit).

        When fusion parameters changed since the sample was fused, fusion is re-applied first.
        """
        key = ref if isinstance(ref, str) else ref.key
        entry = self._entry(key)
        if entry is None:
            return None
        if entry.fusion_generation != self._fusion_gen:
            return self._refuse_entry(key, entry)
        return entry.result

    def components_of(self, ref: Union[SampleRef, str]) -> Optional[Components]:
        """The cached (valid) components of a sample, or None."""
        entry = self._entry(ref if isinstance(ref, str) else ref.key)
        return entry.components if entry is not None else None

    def refuse(self, ref: Union[SampleRef, str]) -> Optional[DetectorResult]:
        """Re-apply fusion with the current parameters to a sample's cached components.

        No backbone runs.  Returns the new result, or None when the components are not cached.
        """
        key = ref if isinstance(ref, str) else ref.key
        entry = self._entry(key)
        return None if entry is None else self._refuse_entry(key, entry)

    def _refuse_entry(self, key: str, entry: CacheEntry) -> DetectorResult:
        c = self._refs_by_key[key].class_name if key in self._refs_by_key else ""
        gen = self._fusion_gen
        result = self.instance(c).fuse(entry.components)
        with self._lock:
            entry.result = result
            entry.fusion_generation = gen
            rec = self.records.get(key)
            if rec is not None:
                self._update_record(rec, result)
                rec.stale = False
        return result

    def refuse_all(self) -> int:
        """Re-fuse every cached sample (updates the table's scores); returns how many."""
        n = 0
        keys = []
        for key in self.components.keys():
            if self.refuse(key) is not None:
                n += 1
                keys.append(key)
        if keys:
            self.events.records_changed.emit(keys)
        return n

    def decision_threshold(self, class_name: Optional[str] = None) -> Optional[float]:
        """The threshold a result of ``class_name`` is decided with now: the class's fitted
        instance's (calibrated per class when ``threshold`` is 0), the typed one otherwise; None
        when the detector has none or it is not known yet (a calibrating detector whose class is
        not fitted)."""
        det = self.detector
        if det is None:
            return None
        if class_name and self.is_fitted(class_name):
            return self.instance(class_name).decision_threshold()
        if det.capabilities.calibrates and not det.fitted:
            t = det.get_params().get("threshold")
            return float(t) if t is not None and float(t) > 0 else None
        return det.decision_threshold()

    @staticmethod
    def _update_record(rec: SampleRecord, result: DetectorResult) -> None:
        s = result.image_score
        rec.image_score = None if s is None or not np.isfinite(s) else float(s)
        rec.threshold = result.threshold
        rec.anomalous = result.is_anomalous

    # ------------------------------------------------------------------ misc
    def memory_bytes(self) -> int:
        return self.samples.total_bytes + self.components.total_bytes

    def close(self) -> None:
        """Stop the backend's worker process, if any."""
        self.backend.close()


class _ClassFailed(MMADError):
    """Internal: a class's fit failed; its samples are skipped with this message."""


def _fit_hash(items: Sequence[SupportItem], calibration: Sequence[SupportItem]) -> str:
    """What a fit depends on: the support set's content, and the calibration parts' when any."""
    if not calibration:
        return support_hash(items)
    import hashlib
    return hashlib.sha256(f"{support_hash(items)}|calibration|{support_hash(calibration)}".encode()).hexdigest()


def _failed(item: SupportItem, loaded: Sequence[Sample]) -> bool:
    """Whether a support item is missing from the loaded samples (it failed to load)."""
    if isinstance(item, SampleRef):
        return not any(s.id == item.id and s.class_name == item.class_name and s.split == item.split
                       and s.label == item.label for s in loaded)
    return not any(str(item) in {str(p) for p in s.paths.values()} for s in loaded)


def iter_refs_with_errors(session: Session, refs: Iterable[SampleRef], on_error: ErrorFn):
    """Yield (ref, sample) for each ref that loads; report the others through ``on_error``."""
    for ref in refs:
        try:
            yield ref, session.load(ref)
        except InputError as err:
            on_error(ref, err)


def _require_finite(result: DetectorResult, sample: Sample, detector_id: str) -> None:
    """A NaN / infinite image score is no result: refused naming the sample's file, so that no
    front end ever reports it as scored (NaN compares False with any threshold: "ok")."""
    if not math.isfinite(result.image_score):
        src = sample.paths.get("rgb") or sample.paths.get("points") or sample.key
        raise InvalidResultError(src, f"detector '{detector_id}' gave no finite image score ({result.image_score}) "
                                      f"for this sample: its inputs or the fitted model hold NaN or infinite values")
