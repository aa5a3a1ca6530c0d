"""Work off the GUI thread.

* :class:`JobRunner` runs one long job at a time (fit / extract / batch run / demo generation) in a
  ``QThread``.  The job is a callable ``fn(progress, cancel, emit)``: ``progress(fraction, message)``
  is throttled and turned into a signal with an ETA, ``cancel()`` returns True once the user asked
  to stop (the detector checks it between steps and raises :class:`core.errors.Cancelled`), and
  ``emit(obj)`` delivers partial results (e.g. one sample of a batch) to the GUI thread.
* :class:`BackgroundLoader` does the small I/O jobs (loading the selected sample, thumbnails) in
  thread pools so that file access never blocks the event loop.

Signals are emitted from the worker threads on objects living in the GUI thread, so Qt queues them
and every slot runs on the GUI thread.
"""
from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, Signal

from core.errors import Cancelled

JobFn = Callable[[Callable[[float, str], None], Callable[[], bool], Callable[[Any], None]], Any]

PROGRESS_INTERVAL_S = 0.05   # at most ~20 progress signals per second reach the GUI


def format_eta(seconds: Optional[float]) -> str:
    """'ETA 1:05' style text; empty when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    s = int(round(seconds))
    if s >= 3600:
        return f"ETA {s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"ETA {s // 60}:{s % 60:02d}"


class _JobThread(QThread):
    progressed = Signal(float, str, float)   # fraction, message, eta seconds (-1: unknown)
    partial = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object, str)             # exception, formatted traceback
    was_cancelled = Signal()

    def __init__(self, fn: JobFn, cancel_event: threading.Event, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._fn = fn
        self._cancel = cancel_event
        self._last_emit = 0.0
        self.t0 = 0.0

    def _progress(self, fraction: float, message: str = "") -> None:
        now = time.perf_counter()
        if fraction < 1.0 and now - self._last_emit < PROGRESS_INTERVAL_S:
            return
        self._last_emit = now
        elapsed = now - self.t0
        eta = elapsed / fraction * (1.0 - fraction) if fraction > 0.02 and elapsed > 0.3 else -1.0
        self.progressed.emit(float(fraction), str(message), float(eta))

    def run(self) -> None:  # noqa: D401 - QThread API
        self.t0 = time.perf_counter()
        try:
            result = self._fn(self._progress, self._cancel.is_set, self.partial.emit)
        except Cancelled:
            self.was_cancelled.emit()
        except BaseException as err:  # noqa: BLE001 - every failure is shown in the window
            self.failed.emit(err, traceback.format_exc())
        else:
            self.succeeded.emit(result)


class JobRunner(QObject):
    """Runs one job at a time in a worker thread; see the module docstring.

    Signals: ``started(name)``, ``progress(fraction, message, eta_s)``, ``partial(obj)``,
    ``finished(name, result)``, ``failed(name, error, traceback)``, ``cancelled(name)`` and
    ``idle()`` after any of the last three.
    """

    started = Signal(str)
    progress = Signal(float, str, float)
    partial = Signal(object)
    finished = Signal(str, object)
    failed = Signal(str, object, str)
    cancelled = Signal(str)
    idle = Signal()

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._thread: Optional[_JobThread] = None
        self._cancel = threading.Event()
        self.name = ""
        self.t_cancel: Optional[float] = None

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def start(self, name: str, fn: JobFn) -> bool:
        """Start a job; returns False (and does nothing) while another job runs."""
        if self._thread is not None:
            return False
        self._cancel = threading.Event()
        self.name = name
        self.t_cancel = None
        th = _JobThread(fn, self._cancel, self)
        th.progressed.connect(self.progress)
        th.partial.connect(self.partial)
        th.succeeded.connect(lambda r, n=name: self.finished.emit(n, r))
        th.failed.connect(lambda e, tb, n=name: self.failed.emit(n, e, tb))
        th.was_cancelled.connect(lambda n=name: self.cancelled.emit(n))
        th.finished.connect(self._on_thread_finished)
        self._thread = th
        self.started.emit(name)
        th.start()
        return True

    def cancel(self) -> None:
        """Ask the running job to stop (the detector notices at its next check, well within 1 s)."""
        if self._thread is not None and not self._cancel.is_set():
            self.t_cancel = time.perf_counter()
            self._cancel.set()

    @property
    def cancelling(self) -> bool:
        return self._thread is not None and self._cancel.is_set()

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Block until the job's thread ends (for shutdown and tests). True if it ended."""
        th = self._thread
        return True if th is None else th.wait(int(timeout_s * 1000))

    def _on_thread_finished(self) -> None:
        th = self._thread
        self._thread = None
        if th is not None:
            th.deleteLater()
        self.idle.emit()


# ---------------------------------------------------------------------- small I/O jobs
class _Signals(QObject):
    done = Signal(str, object, object)   # kind, key, result
    error = Signal(str, object, object)  # kind, key, exception


class _Task(QRunnable):
    def __init__(self, signals: _Signals, kind: str, key: Any, fn: Callable[[], Any]):
        super().__init__()
        self.signals, self.kind, self.key, self.fn = signals, kind, key, fn
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            out = self.fn()
        except BaseException as err:  # noqa: BLE001 - reported to the GUI
            try:
                self.signals.error.emit(self.kind, self.key, err)
            except RuntimeError:  # the receiver is gone (window closed)
                pass
        else:
            try:
                self.signals.done.emit(self.kind, self.key, out)
            except RuntimeError:
                pass


class BackgroundLoader(QObject):
    """Thread pools for file I/O: ``submit(kind, key, fn)`` → ``done(kind, key, result)`` or
    ``error(kind, key, exception)`` on the GUI thread.  Each kind has its own single-thread pool, so
    thumbnails ("thumb") never delay loading the sample the user is looking at ("load")."""

    done = Signal(str, object, object)
    error = Signal(str, object, object)

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._signals = _Signals(self)
        self._signals.done.connect(self.done)
        self._signals.error.connect(self.error)
        self._pools: dict[str, QThreadPool] = {}

    def _pool(self, kind: str) -> QThreadPool:
        """One single-thread pool per kind of job ("load", "thumb", "probe"...)."""
        pool = self._pools.get(kind)
        if pool is None:
            pool = QThreadPool(self)
            pool.setMaxThreadCount(1)
            self._pools[kind] = pool
        return pool

    def submit(self, kind: str, key: Any, fn: Callable[[], Any]) -> None:
        self._pool(kind).start(_Task(self._signals, kind, key, fn))

    def clear(self, kind: str = "thumb") -> None:
        """Drop queued (not yet started) jobs of a kind."""
        self._pool(kind).clear()

    def wait(self, timeout_s: float = 5.0) -> None:
        for p in self._pools.values():
            p.clear()
            p.waitForDone(int(timeout_s * 1000))
