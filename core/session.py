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
text      the detector drops its text-side caches (``on_invalidate``); components are stale,
          the fitted support state is kept
fit       the detectors are refitted on demand; components are stale
========  =========================================================================

Changing the support set of a class (:meth:`Session.set_support`) refits that class only.

Long operations (:meth:`Session.fit`, :meth:`Session.analyze`, :meth:`Session.run`) take the
detector's ``progress(fraction, message)`` and ``cancel() -> bool`` callbacks, so a front-end runs
them in a worker thread; :meth:`Session.refuse` is cheap and meant for the GUI thread.  Results
computed while a parameter changed underneath are returned but flagged stale and never cached.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import cv2
import numpy as np

from .datasets.base import Dataset, SampleRef
from .detectors import registry
from .detectors.base import (STAGE_FIT, STAGE_FUSION, STAGE_SCORE, STAGE_TEXT, CancelFn, Components,
                             Detector, DetectorResult, ProgressFn)
from .errors import Cancelled, InputError, MissingWeightsError, MMADError, SampleLoadError
from .sample import Sample

log = logging.getLogger(__name__)

SupportItem = Union[SampleRef, Path]          # a dataset sample or a file chosen by the user
ErrorFn = Callable[[object, Exception], None]  # (ref or path, error)

DEFAULT_COMPONENT_CACHE = 1 << 30    # 1 GiB of cached components + fused maps
DEFAULT_SAMPLE_CACHE = 512 << 20     # 512 MiB of loaded samples


# ---------------------------------------------------------------------- memory-bounded LRU
def nbytes_of(obj: Any, _depth: int = 0) -> int:
    """Approximate memory held by numpy arrays inside ``obj`` (dataclasses, dicts, lists)."""
    if obj is None or _depth > 4:
        return 0
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(nbytes_of(v, _depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes_of(v, _depth + 1) for v in obj)
    if hasattr(obj, "__dict__"):
        return sum(nbytes_of(v, _depth + 1) for v in vars(obj).values())
    return 0


class ByteLRU:
    """A thread-safe LRU mapping bounded by the total size of its values (``sizeof``, bytes).

    The most recently inserted item is always kept, even when alone it exceeds the budget.
    """

    def __init__(self, max_bytes: int, sizeof: Callable[[Any], int] = nbytes_of):
        self.max_bytes = int(max_bytes)
        self._sizeof = sizeof
        self._data: "OrderedDict[str, tuple[Any, int]]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return default
            self._data.move_to_end(key)
            return item[0]

    def put(self, key: str, value: Any) -> None:
        size = self._sizeof(value)
        with self._lock:
            self.pop(key)
            self._data[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._data) > 1:
                _, (_, s) = self._data.popitem(last=False)
                self._bytes -= s

    def pop(self, key: str) -> Any:
        with self._lock:
            item = self._data.pop(key, None)
            if item is None:
                return None
            self._bytes -= item[1]
            return item[0]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._data)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)


# ---------------------------------------------------------------------- records
@dataclass
class SampleRecord:
    """What the session knows about one sample; cheap, kept for every sample of the dataset."""
    ref: SampleRef
    image_score: Optional[float] = None
    threshold: Optional[float] = None
    anomalous: Optional[bool] = None
    stale: bool = False            # the score was computed with parameters that changed since
    error: Optional[str] = None    # why the last analysis failed (plain words)
    seconds: float = 0.0           # extract time of the last analysis

    @property
    def key(self) -> str:
        return self.ref.key

    @property
    def decision(self) -> Optional[str]:
        if self.anomalous is None:
            return None
        return "anomalous" if self.anomalous else "good"


@dataclass
class _CacheEntry:
    components: Components
    result: DetectorResult
    generation: int          # component generation of the sample's class when extracted
    fusion_generation: int   # fusion parameters the result was fused with


@dataclass
class Analysis:
    """The outcome of :meth:`Session.analyze` for one sample."""
    ref: SampleRef
    sample: Sample
    result: DetectorResult
    seconds: float
    fit_seconds: float = 0.0
    stale: bool = False


@dataclass
class RunSummary:
    """The outcome of :meth:`Session.run`: analysed keys, skipped samples with the reason."""
    done: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0

    def message(self) -> str:
        parts = [f"{len(self.done)} sample(s) analysed in {self.seconds:.1f} s"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.cancelled:
            parts.append("cancelled")
        return ", ".join(parts)


def _sub_progress(progress: Optional[ProgressFn], lo: float, hi: float) -> Optional[ProgressFn]:
    if progress is None:
        return None
    return lambda f, msg="": progress(lo + (hi - lo) * min(max(float(f), 0.0), 1.0), msg)


def describe_error(err: BaseException) -> str:
    """A plain-words message for an error, with what to do for the kinds the user can fix."""
    if isinstance(err, MissingWeightsError):
        return (f"{err} - the detector's weights are not on this machine. Download them as described "
                f"in the README (or pick a detector that needs no weights, e.g. memory-bank).")
    if isinstance(err, SampleLoadError):
        return f"{err} - the file is skipped; replace or remove it and reload the folder."
    if isinstance(err, MMADError):
        return str(err)
    if isinstance(err, MemoryError):
        return "out of memory - close other programs or lower the detector's working size."
    return f"unexpected error in the detector ({type(err).__name__}: {err})"


# ---------------------------------------------------------------------- where fit / extract run
class ThreadBackend:
    """Runs ``fit``/``extract`` in the calling thread on the session's own detector instances."""

    def fit(self, session: "Session", class_name: str, support: Sequence[Sample],
            progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> None:
        session.instance(class_name).fit(support, progress, cancel)

    def extract(self, session: "Session", class_name: str, sample: Sample,
                progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> Components:
        return session.instance(class_name).extract(sample, progress, cancel)

    def is_fitted(self, class_name: str) -> bool:
        return True   # the session's instances are the state; Session.is_fitted checks them

    def close(self) -> None:
        pass


class DetectorProcessError(MMADError):
    """The detector's worker process stopped unexpectedly."""


def _child_main(conn, cancel_event) -> None:  # pragma: no cover - runs in the child process
    """Worker process loop: one detector instance per part class, fit / extract on request."""
    instances: dict[str, Detector] = {}
    last = [0.0]

    def progress(f: float, msg: str = "") -> None:
        now = time.perf_counter()
        if f < 1.0 and now - last[0] < 0.05:
            return
        last[0] = now
        conn.send(("progress", (float(f), str(msg))))

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if msg[0] == "quit":
            return
        op, class_name, cls, device, params, data = msg
        try:
            inst = instances.get(class_name)
            if inst is None or type(inst) is not cls or inst.device != device:
                inst = cls(device=device, **params)
                instances[class_name] = inst
            else:
                inst.set_params(**params)
            if op == "fit":
                inst.fit(data, progress, cancel_event.is_set)
                conn.send(("result", None))
            else:
                conn.send(("result", inst.extract(data, progress, cancel_event.is_set)))
        except Cancelled:
            conn.send(("cancelled", None))
        except BaseException as err:  # noqa: BLE001 - everything goes back to the parent
            import pickle
            try:
                pickle.dumps(err)
            except Exception:  # noqa: BLE001 - an unpicklable error becomes its text
                err = MMADError(f"{type(err).__name__}: {err}")
            conn.send(("error", err))


class ProcessBackend:
    """Runs ``fit``/``extract`` in a persistent worker process.

    Detectors call native code that may hold Python's GIL for a long time (open3d's FPFH holds it
    for ~0.5-0.8 s); in a thread that freezes the caller's GUI.  In a child process it cannot.  The
    child keeps one fitted detector per part class; the samples go there pickled and the
    :class:`Components` come back (``fuse`` stays in the parent: it is pure and cheap).

    ``cancel()`` is forwarded through a shared event that the detector polls; a detector that does
    not notice within ``kill_after_s`` is terminated (the process restarts on the next call), so a
    cancel always stops in about a second.  A crash of the child raises
    :class:`DetectorProcessError` instead of killing the application.
    """

    def __init__(self, start_method: str = "spawn", kill_after_s: float = 0.8):
        import multiprocessing as mp
        self._ctx = mp.get_context(start_method)
        self.kill_after_s = kill_after_s
        self._proc = None
        self._conn = None
        self._cancel = self._ctx.Event()
        self._call_lock = threading.RLock()
        self._fitted: set[str] = set()
        self.restarts = 0

    # ------------------------------------------------------------------ process management
    def start(self) -> None:
        """Start the worker process now (it imports the detector libraries: seconds, once)."""
        with self._call_lock:
            self._start()

    def _start(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._shutdown(kill=True)
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_child_main, args=(child, self._cancel), daemon=True,
                                 name="mmad-detector")
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        self._fitted.clear()
        self.restarts += 1

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def _shutdown(self, kill: bool) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self._fitted.clear()
        if proc is None:
            return
        try:
            if not kill and conn is not None:
                conn.send(("quit",))
                proc.join(2.0)
        except (OSError, ValueError):
            pass
        if proc.is_alive():
            proc.terminate()
            proc.join(2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        with self._call_lock:
            self._shutdown(kill=False)

    def is_fitted(self, class_name: str) -> bool:
        return class_name in self._fitted

    # ------------------------------------------------------------------ calls
    def _call(self, msg: tuple, progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> Any:
        with self._call_lock:
            self._start()
            self._cancel.clear()
            conn, proc = self._conn, self._proc
            try:
                conn.send(msg)
            except (OSError, ValueError) as err:
                self._shutdown(kill=True)
                raise DetectorProcessError(f"cannot reach the detector process ({err}); it restarts on the next run")
            t_cancel: Optional[float] = None
            while True:
                if conn.poll(0.02):
                    try:
                        kind, payload = conn.recv()
                    except (EOFError, OSError):
                        self._shutdown(kill=True)
                        raise DetectorProcessError(
                            "the detector process stopped unexpectedly (out of memory or a crash in native "
                            "code?); it restarts on the next run") from None
                    if kind == "progress":
                        if progress is not None:
                            progress(*payload)
                    elif kind == "result":
                        return payload
                    elif kind == "cancelled":
                        raise Cancelled("cancelled by the user")
                    elif kind == "error":
                        raise payload
                    continue
                if not proc.is_alive():
                    code = proc.exitcode
                    self._shutdown(kill=True)
                    raise DetectorProcessError(f"the detector process stopped unexpectedly (exit code {code}); "
                                               f"it restarts on the next run")
                if cancel is not None and cancel():
                    now = time.perf_counter()
                    if t_cancel is None:
                        t_cancel = now
                        self._cancel.set()
                    elif now - t_cancel > self.kill_after_s:
                        self._shutdown(kill=True)   # the detector did not notice in time
                        raise Cancelled("cancelled by the user (the detector process was stopped)")

    def fit(self, session: "Session", class_name: str, support: Sequence[Sample],
            progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> None:
        det = session._need_detector()
        self._fitted.discard(class_name)
        self._call(("fit", class_name, type(det), session.device, det.get_params(), list(support)), progress, cancel)
        self._fitted.add(class_name)

    def extract(self, session: "Session", class_name: str, sample: Sample,
                progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> Components:
        det = session._need_detector()
        return self._call(("extract", class_name, type(det), session.device, det.get_params(), sample),
                          progress, cancel)


# ---------------------------------------------------------------------- the session
class Session:
    """Dataset + detector parameters + per-class fitted detectors + cached results (Qt-free)."""

    def __init__(self, dataset: Optional[Dataset] = None, detector: Union[str, Detector, None] = None,
                 device: str = "cpu", params: Optional[dict[str, Any]] = None, *,
                 component_cache_bytes: int = DEFAULT_COMPONENT_CACHE,
                 sample_cache_bytes: int = DEFAULT_SAMPLE_CACHE,
                 backend: Union[ThreadBackend, ProcessBackend, None] = None):
        self._lock = threading.RLock()
        self.backend = backend if backend is not None else ThreadBackend()
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
        self.device = device
        self.detector: Optional[Detector] = None  # the "template": holds the parameter values
        self.detector_error: Optional[str] = None
        if detector is not None:
            self.set_detector(detector, device, **(params or {}))
        if dataset is not None:
            self.set_dataset(dataset)

    # ------------------------------------------------------------------ dataset
    def open(self, path: str | Path) -> Dataset:
        """Open a folder (lists files only; samples load lazily) and make it the session's dataset."""
        from .datasets import open_dataset  # the loaders; imported late to keep this module light
        ds = open_dataset(path)
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
            self.samples.clear()
            self.components.clear()

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
            raise KeyError(f"no sample '{key}' in the dataset") from None

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
            # keep only the saved values this detector still declares, and those that are valid
            known = {p.name: p for p in cls.params}
            ok = {}
            for k, v in params.items():
                if k in known:
                    try:
                        ok[k] = known[k].coerce(v)
                    except ValueError as err:
                        log.warning("ignoring saved value: %s", err)
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
            self._bump_all(fit=True)
            self.components.clear()
            self._mark_all_stale()
        return det

    @property
    def detector_id(self) -> str:
        return self.detector.id if self.detector is not None else ""

    @property
    def params(self) -> dict[str, Any]:
        return self.detector.get_params() if self.detector is not None else {}

    def set_params(self, **values: Any) -> set[str]:
        """Set detector parameters; return the invalidated stages (see the module docstring).

        Raises ValueError (with the parameter name) for an invalid value; nothing is changed then.
        """
        det = self._need_detector()
        # validate everything first so that a bad value changes nothing
        coerced = {k: det.param(k).coerce(v) for k, v in values.items()}
        with self._lock:
            touched = det.set_params(**coerced)
            for inst in self._instances.values():
                inst.set_params(**coerced)
            if STAGE_FIT in touched:
                self._bump_all(fit=True)
            elif touched & {STAGE_TEXT, STAGE_SCORE}:
                self._bump_all(fit=False)
            if touched - {STAGE_FUSION}:
                self.components.clear()
                self._mark_all_stale()
            if STAGE_FUSION in touched:
                self._fusion_gen += 1
            if touched == {STAGE_FUSION}:
                # image scores of samples whose components are no longer cached can't be re-fused
                cached = set(self.components.keys())
                for k, rec in self.records.items():
                    if rec.image_score is not None and k not in cached:
                        rec.stale = True
        return touched

    def set_device(self, device: str) -> None:
        """Move to another device: every class is refitted on demand."""
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
        """The detector instance of a part class (created on first use with the current params)."""
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
        return changed

    def is_fitted(self, class_name: str) -> bool:
        inst = self._instances.get(class_name)
        return (inst is not None and inst.fitted and self.backend.is_fitted(class_name)
                and self._fitted_at.get(class_name) == self._fit_gen.get(class_name, 0))

    def _load_support_item(self, item: SupportItem) -> Sample:
        if isinstance(item, SampleRef):
            return self.load(item)
        from .datasets import load_sample
        return load_sample(Path(item))

    def fit(self, class_name: str, progress: Optional[ProgressFn] = None, cancel: Optional[CancelFn] = None,
            on_error: Optional[ErrorFn] = None) -> float:
        """Fit the class's detector on its support set; returns the seconds spent.

        A support sample that fails to load is reported through ``on_error`` and left out; fewer
        usable samples than the detector needs raises :class:`InputError`.
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
        inst = self.instance(class_name)
        self.backend.fit(self, class_name, support, _sub_progress(progress, 0.3, 1.0), cancel)
        inst.fitted = True   # with a process backend the fitted state lives in the worker process
        with self._lock:
            if self._fit_gen.get(class_name, 0) == gen:
                self._fitted_at[class_name] = gen
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ analysis
    def analyze(self, ref: SampleRef, progress: Optional[ProgressFn] = None, cancel: Optional[CancelFn] = None,
                on_error: Optional[ErrorFn] = None, force: bool = False) -> Analysis:
        """Load, fit the class if needed, extract and fuse one sample (cached unless ``force``)."""
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
        fusion_gen = self._fusion_gen
        fit_s = 0.0
        lo = 0.0
        if not self.is_fitted(c):
            fit_s = self.fit(c, _sub_progress(progress, 0.0, 0.5), cancel, on_error)
            lo = 0.5
        Detector.check_cancel(cancel)
        inst = self.instance(c)
        t0 = time.perf_counter()
        comps = self.backend.extract(self, c, sample, _sub_progress(progress, lo, 1.0), cancel)
        seconds = time.perf_counter() - t0
        comps.seconds = comps.seconds or seconds
        result = inst.fuse(comps)
        with self._lock:
            stale = self._comp_gen.get(c, 0) != gen or self.detector is not det
            if not stale and fusion_gen != self._fusion_gen:   # a slider moved while extracting
                result = inst.fuse(comps)
                fusion_gen = self._fusion_gen
            rec = self.records.get(ref.key)
            if not stale:
                self.components.put(ref.key, _CacheEntry(comps, result, gen, fusion_gen))
            if rec is not None:
                self._update_record(rec, result)
                rec.stale = stale
                rec.error = None
                rec.seconds = seconds
        Detector.report(progress, 1.0, "done")
        return Analysis(ref, sample, result, seconds, fit_s, stale)

    def run(self, refs: Sequence[SampleRef], progress: Optional[ProgressFn] = None,
            cancel: Optional[CancelFn] = None, on_result: Optional[Callable[[Analysis], None]] = None,
            on_error: Optional[ErrorFn] = None, force: bool = False) -> RunSummary:
        """Analyse many samples. A sample that fails (bad file, ...) is skipped and the run goes on.

        :class:`Cancelled` stops the run (the summary says so); a missing-weights error stops it too
        since no sample could be analysed.
        """
        summary = RunSummary()
        t0 = time.perf_counter()
        n = len(refs)
        for i, ref in enumerate(refs):
            if cancel is not None and cancel():
                summary.cancelled = True
                break
            sub = _sub_progress(progress, i / n, (i + 1) / n)
            sub_msg = (lambda f, msg="", _i=i, _s=sub: _s(f, f"{_i + 1}/{n} {ref.id}: {msg}")) if sub else None
            try:
                a = self.analyze(ref, sub_msg, cancel, on_error, force=force)
            except Cancelled:
                summary.cancelled = True
                break
            except MissingWeightsError:
                raise
            except Exception as err:  # noqa: BLE001 - a bad sample must not stop the batch
                msg = describe_error(err)
                if not isinstance(err, MMADError):
                    log.exception("detector failed on %s", ref.key)
                rec = self.records.get(ref.key)
                if rec is not None:
                    rec.error = msg
                summary.skipped.append((ref.key, msg))
                if on_error is not None:
                    on_error(ref, err)
                continue
            summary.done.append(ref.key)
            if on_result is not None:
                on_result(a)
        summary.seconds = time.perf_counter() - t0
        Detector.report(progress, 1.0, summary.message())
        return summary

    # ------------------------------------------------------------------ fusion (cheap, GUI thread)
    def _entry(self, key: str) -> Optional[_CacheEntry]:
        entry: Optional[_CacheEntry] = self.components.get(key)
        if entry is None:
            return None
        c = self._refs_by_key[key].class_name if key in self._refs_by_key else ""
        if entry.generation != self._comp_gen.get(c, 0):
            self.components.pop(key)
            return None
        return entry

    def result(self, ref: Union[SampleRef, str]) -> Optional[DetectorResult]:
        """The current fused result of a sample, or None when it must be (re-)extracted.

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

    def _refuse_entry(self, key: str, entry: _CacheEntry) -> DetectorResult:
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
        for key in self.components.keys():
            if self.refuse(key) is not None:
                n += 1
        return n

    def decision_threshold(self) -> Optional[float]:
        det = self.detector
        if det is None:
            return None
        try:
            return float(det["threshold"])
        except (KeyError, TypeError, ValueError):
            return None

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


# ---------------------------------------------------------------------- display helpers (Qt-free)
def display_image(sample: Sample) -> Optional[np.ndarray]:
    """The picture to show for a sample: its RGB, else a shaded depth image of an organized cloud."""
    if sample.rgb is not None:
        return sample.rgb
    if not sample.organized:
        return None
    z = sample.points[..., 2].astype(np.float32)  # type: ignore[index]
    ok = np.isfinite(z)
    if not ok.any():
        return None
    lo, hi = np.percentile(z[ok], [1, 99])
    g = np.zeros(z.shape, np.float32)
    g[ok] = 1.0 - np.clip((z[ok] - lo) / max(hi - lo, 1e-9), 0, 1)   # near = bright
    # cheap Lambert shading from the depth gradient makes the shape readable
    zf = np.where(ok, z, np.nanmedian(z[ok]))
    gy, gx = np.gradient(zf / max(hi - lo, 1e-9) * 40.0)
    shade = 1.0 / np.sqrt(1.0 + gx * gx + gy * gy)
    img = (40 + 200 * (0.35 * g + 0.65 * shade)) * ok
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def pixel_to_point(sample: Sample, row: int, col: int) -> Optional[int]:
    """Index (into ``sample.valid_points()``) of the 3D point under a pixel, or None."""
    if not sample.organized:
        return None
    h, w = sample.points.shape[:2]  # type: ignore[union-attr]
    if not (0 <= row < h and 0 <= col < w):
        return None
    flat = row * w + col
    idx = sample.valid_index()
    i = int(np.searchsorted(idx, flat))
    return i if i < idx.size and idx[i] == flat else None


def point_to_pixel(sample: Sample, index: int) -> Optional[tuple[int, int]]:
    """(row, col) of a point of an organized cloud, or None for unorganized clouds / bad index."""
    if not sample.organized:
        return None
    idx = sample.valid_index()
    if not 0 <= index < idx.size:
        return None
    w = sample.points.shape[1]  # type: ignore[union-attr]
    r, c = divmod(int(idx[index]), w)
    return r, c


def score_range(result: Optional[DetectorResult]) -> tuple[float, float]:
    """Colour range shared by both views.

    With a decision threshold ``t > 0`` the range is fixed to ``[0, 2 t]`` so colours mean the same
    on every sample (paging through results compares like with like); otherwise the 1st-99.5th
    percentile of the sample's own scores.
    """
    if result is None:
        return 0.0, 1.0
    t = result.threshold
    if t is not None and np.isfinite(t) and t > 0:
        return 0.0, 2.0 * float(t)
    vals = [a[np.isfinite(a)] for a in (result.pixel_map, result.point_scores) if a is not None]
    vals = [v for v in vals if v.size]
    if not vals:
        return 0.0, 1.0
    v = np.concatenate([x.ravel() for x in vals])
    lo, hi = np.percentile(v, [1, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1e-6)


def thumbnail(dataset: Dataset, ref: SampleRef, size: int = 96, sample: Optional[Sample] = None) -> np.ndarray:
    """A size x size RGB thumbnail (letterboxed): the RGB image if any, else the shaded depth/cloud.

    Reads only the RGB file when there is one (fast); raises :class:`SampleLoadError` on a bad file.
    """
    img = None
    rgb_path = ref.paths.get("rgb") if sample is None else None
    if rgb_path is not None:
        from . import io as _io  # the loaders' readers
        img = _io.read_rgb(rgb_path)
    else:
        s = sample if sample is not None else dataset.load(ref)
        img = display_image(s)
        if img is None and s.has_points:
            img = _cloud_silhouette(s.valid_points(), s.valid_colors(), size)
    out = np.full((size, size, 3), 40, np.uint8)
    if img is None:
        return out
    h, w = img.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    small = cv2.resize(np.ascontiguousarray(img), (nw, nh), interpolation=cv2.INTER_AREA)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


def _cloud_silhouette(points: np.ndarray, colors: Optional[np.ndarray], size: int) -> Optional[np.ndarray]:
    """Top view (x, y) of an unorganized cloud, coloured by height (or its colours)."""
    if points.size == 0:
        return None
    xy = points[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    span = float(max((hi - lo).max(), 1e-9))
    ij = ((xy - lo) / span * (size - 1)).astype(int)
    img = np.full((size, size, 3), 40, np.uint8)
    if colors is None:
        z = points[:, 2]
        zz = ((z - z.min()) / max(float(np.ptp(z)), 1e-9) * 180 + 60).astype(np.uint8)
        cols = np.repeat(zz[:, None], 3, axis=1)
    else:
        cols = colors
    order = np.argsort(points[:, 2])
    img[size - 1 - ij[order, 1], ij[order, 0]] = cols[order]
    return img


def iter_refs_with_errors(session: Session, refs: Iterable[SampleRef], on_error: ErrorFn):
    """Yield (ref, sample) for each ref that loads; report the others through ``on_error``."""
    for ref in refs:
        try:
            yield ref, session.load(ref)
        except InputError as err:
            on_error(ref, err)


__all__ = ["Analysis", "ByteLRU", "DetectorProcessError", "ProcessBackend", "ThreadBackend", "RunSummary", "SampleRecord", "Session", "SupportItem", "describe_error",
           "display_image", "iter_refs_with_errors", "nbytes_of", "pixel_to_point", "point_to_pixel",
           "score_range", "thumbnail"]
