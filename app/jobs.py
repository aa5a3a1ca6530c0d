"""Every piece of work off the GUI thread goes through one :class:`JobRunner`, with per-job callbacks
(napari's worker habit)::

    runner.submit(f"Analysing {key}", lambda progress, cancel, emit: session.analyze(ref, progress, cancel),
                  on_result=self.show, on_error=self.report, on_cancel=self.cancelled)

``fn(progress, cancel, emit)`` runs on the worker thread of its *lane*; ``progress(fraction,
message)`` is throttled (then ``on_progress(fraction, message, eta_s)``, eta -1 when unknown),
``emit(obj)`` delivers a partial result to ``on_partial(obj)``, ``cancel()`` returns True once the
job was cancelled (:meth:`Job.cancel`; the session passes it on to the detector process, which
raises :class:`core.errors.Cancelled` at its next check).  Then exactly one of ``on_result(value)``,
``on_error(exception)`` or ``on_cancel()`` runs, then ``on_done(job)``.  Every callback runs on the
GUI thread, in the order the worker produced them.

Each lane is one worker thread; its jobs run in the order they were submitted:

* :data:`MAIN` - the window's foreground job (an analysis, preparing the demo data): one at a
  time (``submit`` refuses a second one), shown by the runner's signals ``started(job)``,
  ``progress(fraction, message, eta_s)`` and ``finished(job)`` (after the job's callbacks);
  :attr:`JobRunner.busy` is True meanwhile;
* any other name - e.g. ``"load"`` (the selected sample), ``"thumb"`` (thumbnails; :meth:`JobRunner.clear`
  drops the queued ones), ``"probe"`` (devices), ``"train"`` (a training run, ``exclusive``).

:func:`on_gui_thread` marshals other calls (session observers) to the GUI thread the same way.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal

from core.errors import Cancelled

log = logging.getLogger(__name__)

JobFn = Callable[[Callable[[float, str], None], Callable[[], bool], Callable[[Any], None]], Any]

MAIN = "job"
PROGRESS_INTERVAL_S = 0.05   # at most ~20 progress updates per second reach the GUI


def format_eta(seconds: Optional[float]) -> str:
    """'ETA 1:05' style text; empty when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    s = int(round(seconds))
    if s >= 3600:
        return f"ETA {s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"ETA {s // 60}:{s % 60:02d}"


# ---------------------------------------------------------------------- the GUI thread
class _Bridge(QObject):
    """Lives in the application's thread; a posted ``(fn, args)`` runs there (queued connection)."""

    posted = Signal(object)

    def __init__(self):
        super().__init__()
        self.moveToThread(QCoreApplication.instance().thread())
        self.posted.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def _run(self, item: tuple) -> None:
        fn, args = item
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a failing callback must not stop the others
            log.exception("callback %r failed", fn)


_bridge: Optional[_Bridge] = None
_bridge_lock = threading.Lock()


def _gui_bridge() -> _Bridge:
    global _bridge
    with _bridge_lock:
        if _bridge is None:
            _bridge = _Bridge()
        return _bridge


def _on_gui() -> bool:
    return threading.current_thread() is threading.main_thread()


def post(fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` on the GUI thread at its next event-loop turn (from any thread)."""
    try:
        _gui_bridge().posted.emit((fn, args))
    except RuntimeError:   # the application is gone (shutdown)
        pass


def on_gui_thread(fn: Callable[..., Any]) -> Callable[..., None]:
    """Wrap ``fn`` so that calling it from any thread runs it on the GUI thread (at once when
    called there, else on the next loop turn): for session observers that may fire in a job."""
    _gui_bridge()          # created now, on the GUI thread

    def call(*args: Any) -> None:
        if _on_gui():
            fn(*args)
        else:
            post(fn, *args)

    return call


# ---------------------------------------------------------------------- jobs
class Job:
    """One submitted job: its name, lane, key, and :meth:`cancel`."""

    def __init__(self, runner: "JobRunner", name: str, lane: str, key: Any, fn: JobFn, callbacks: dict):
        self.runner, self.name, self.lane, self.key = runner, name, lane, key
        self._fn = fn
        self._cb = callbacks
        self._cancel = threading.Event()
        self._work_done = threading.Event()     # fn has returned (its callbacks may still be queued)
        self.future: Optional[Future] = None
        self.t_cancel: Optional[float] = None   # when cancel was asked (perf_counter)
        self.done = False                       # its callbacks have run

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the job to stop (the detector notices at its next check, well within 1 s)."""
        if not self.done and not self._cancel.is_set():
            self.t_cancel = time.perf_counter()
            self._cancel.set()

    def wait(self, timeout_s: float) -> bool:
        """Block until ``fn`` has returned (True) or ``timeout_s`` passed."""
        return self._work_done.wait(timeout_s)

    def __repr__(self) -> str:
        return f"Job({self.name!r}, lane={self.lane!r})"

    # ------------------------------------------------------------------ on the worker thread
    def _work(self) -> None:
        t0 = time.perf_counter()
        last = [0.0]

        def progress(fraction: float, message: str = "") -> None:
            now = time.perf_counter()
            if fraction < 1.0 and now - last[0] < PROGRESS_INTERVAL_S:
                return
            last[0] = now
            elapsed = now - t0
            eta = elapsed / fraction * (1.0 - fraction) if fraction > 0.02 and elapsed > 0.3 else -1.0
            post(self.runner._progress, self, float(fraction), str(message), float(eta))

        def emit(obj: Any) -> None:
            post(self._callback, "on_partial", obj)

        try:
            out = self._fn(progress, self._cancel.is_set, emit)
        except Cancelled:
            outcome = ("on_cancel",)
        except BaseException as err:  # noqa: BLE001 - delivered to on_error
            outcome = ("on_error", err)
        else:
            outcome = ("on_result", out)
        finally:
            self._work_done.set()
        post(self.runner._finish, self, outcome)

    # ------------------------------------------------------------------ on the GUI thread
    def _callback(self, name: str, *args: Any) -> None:
        fn = self._cb.get(name)
        if fn is not None and not self.runner.closed:
            fn(*args)


class JobRunner(QObject):
    """Runs the window's jobs; see the module docstring.  Signals (the :data:`MAIN` lane):
    ``started(job)``, ``progress(fraction, message, eta_s)`` and ``finished(job)``."""

    started = Signal(object)
    progress = Signal(float, str, float)
    finished = Signal(object)

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        _gui_bridge()
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._jobs: dict[str, list[Job]] = {}    # lane -> its queued and running jobs, in order
        self.closed = False

    # ------------------------------------------------------------------ submitting
    def submit(self, name: str, fn: JobFn, *, lane: str = MAIN, key: Any = None, exclusive: Optional[bool] = None,
               on_result: Optional[Callable[[Any], None]] = None, on_error: Optional[Callable[[BaseException], None]] = None,
               on_cancel: Optional[Callable[[], None]] = None, on_partial: Optional[Callable[[Any], None]] = None,
               on_progress: Optional[Callable[[float, str, float], None]] = None,
               on_done: Optional[Callable[[Job], None]] = None) -> Optional[Job]:
        """Queue ``fn`` on ``lane``; None (nothing queued) while an ``exclusive`` lane has a job
        (default: exclusive on :data:`MAIN` only) or after :meth:`shutdown`."""
        if self.closed:
            return None
        jobs = self._jobs.setdefault(lane, [])
        if (lane == MAIN if exclusive is None else exclusive) and jobs:
            return None
        job = Job(self, name, lane, key, fn, dict(on_result=on_result, on_error=on_error, on_cancel=on_cancel,
                                                  on_partial=on_partial, on_progress=on_progress, on_done=on_done))
        jobs.append(job)
        pool = self._pools.get(lane)
        if pool is None:
            pool = self._pools[lane] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mmad-{lane}")
        if lane == MAIN:
            self.started.emit(job)
        job.future = pool.submit(job._work)
        return job

    # ------------------------------------------------------------------ state
    def jobs(self, lane: str = MAIN) -> list[Job]:
        """The lane's queued and running jobs, oldest first."""
        return list(self._jobs.get(lane, ()))

    def current(self, lane: str = MAIN) -> Optional[Job]:
        jobs = self._jobs.get(lane)
        return jobs[0] if jobs else None

    @property
    def busy(self) -> bool:
        """A :data:`MAIN` job is queued or running (or its callbacks are still to run)."""
        return bool(self._jobs.get(MAIN))

    # ------------------------------------------------------------------ control
    def cancel(self, lane: str = MAIN) -> None:
        """Cancel every job of the lane (queued ones never start: they end as cancelled)."""
        for job in self.jobs(lane):
            job.cancel()

    def clear(self, lane: str) -> None:
        """Drop the lane's queued jobs that have not started (no callback runs for them)."""
        for job in self.jobs(lane):
            if job.future is not None and job.future.cancel():
                job.done = True
                job._work_done.set()
                self._jobs[lane].remove(job)

    def wait(self, timeout_s: float = 10.0, lane: str = MAIN) -> bool:
        """Block until the lane's worker thread is idle (shutdown, detector switch).  True if it is."""
        deadline = time.perf_counter() + timeout_s
        for job in self.jobs(lane):
            if not job.wait(max(0.0, deadline - time.perf_counter())):
                return False
        return True

    def shutdown(self, timeout_s: float = 3.0) -> None:
        """Cancel everything, wait up to ``timeout_s`` for the foreground job; no callback runs after."""
        for lane in list(self._jobs):
            self.clear(lane)
            self.cancel(lane)
        self.wait(timeout_s)
        self.closed = True
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ delivery (GUI thread)
    def _progress(self, job: Job, fraction: float, message: str, eta: float) -> None:
        if self.closed or job.done:
            return
        job._callback("on_progress", fraction, message, eta)
        if job.lane == MAIN:
            self.progress.emit(fraction, message, eta)

    def _finish(self, job: Job, outcome: tuple) -> None:
        try:
            if outcome[0] == "on_error" and job._cb.get("on_error") is None:
                err = outcome[1]
                log.error("job %r failed", job.name, exc_info=(type(err), err, err.__traceback__))
            job._callback(*outcome)
        finally:
            job.done = True
            lane = self._jobs.get(job.lane, [])
            if job in lane:
                lane.remove(job)
            try:
                job._callback("on_done", job)
            finally:
                if job.lane == MAIN and not self.closed:
                    self.finished.emit(job)
