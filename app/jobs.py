"""Long jobs as coroutines on a qasync event loop.

The asyncio event loop of the GUI is a :class:`qasync.QEventLoop` over the QApplication
(:func:`install_event_loop`; ``app/main.py`` and the window install it, so scripts and tests get
it too).  A controller launches a coroutine with :meth:`JobRunner.launch` and, inside it, awaits
blocking work with :meth:`JobRunner.call`::

    async def _analyse(self, ref):
        try:
            a = await self.runner.call(lambda progress, cancel, emit: session.analyze(ref, progress, cancel))
        except Cancelled:
            ...
        self.show(a)            # continues here, on the GUI thread

``call`` runs ``fn(progress, cancel, emit)`` with ``loop.run_in_executor`` on a single worker
thread (so the GUI thread never blocks; the detector itself runs in the session's worker
process).  ``progress(fraction, message)`` is throttled and marshalled to the GUI thread with
``loop.call_soon_threadsafe`` (then the ``progress`` signal, with an ETA); ``emit(obj)`` delivers
partial results to the ``on_partial`` callback on the GUI thread; ``cancel()`` returns True once
:meth:`JobRunner.cancel` was called (the session passes it on to the worker process, which raises
:class:`core.errors.Cancelled` at its next check).

One job at a time: :attr:`JobRunner.busy` is True from :meth:`launch` until the launched coroutine
has finished, result handling included.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Coroutine, Optional

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

JobFn = Callable[[Callable[[float, str], None], Callable[[], bool], Callable[[Any], None]], Any]

PROGRESS_INTERVAL_S = 0.05   # at most ~20 progress updates per second reach the GUI


def install_event_loop(app: Optional[QApplication] = None) -> asyncio.AbstractEventLoop:
    """Make a :class:`qasync.QEventLoop` over the QApplication the current asyncio event loop.

    Idempotent: an open qasync loop already installed is returned as it is.  Qt's own event loop
    (``app.exec()``, pytest-qt's ``qtbot.wait*``, ``processEvents``) runs its callbacks.
    """
    import qasync  # noqa: PLC0415

    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if isinstance(loop, qasync.QEventLoop) and not loop.is_closed():
        return loop
    loop = qasync.QEventLoop(app or QApplication.instance())
    asyncio.set_event_loop(loop)
    return loop


def on_gui_thread(fn: Callable[..., Any]) -> Callable[..., None]:
    """Wrap ``fn`` so that calling it from any thread runs it on the GUI thread (at once when
    called there, else on the next loop turn): for session observers that may fire in a job."""
    loop = install_event_loop()
    gui = threading.get_ident()

    def call(*args: Any) -> None:
        if threading.get_ident() == gui:
            fn(*args)
        else:
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:   # the loop is closed (shutdown)
                pass

    return call


class JobRunner(QObject):
    """Runs one job coroutine at a time; see the module docstring.

    Signals: ``started(name)``, ``progress(fraction, message, eta_s)`` (eta -1: unknown) and
    ``idle()`` once the launched coroutine has finished.
    """

    started = Signal(str)
    progress = Signal(float, str, float)
    idle = Signal()

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._loop = install_event_loop()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmad-job")
        self._task: Optional[asyncio.Future] = None
        self._cancel = threading.Event()
        self._thread_idle = threading.Event()
        self._thread_idle.set()
        self.name = ""
        self.t_cancel: Optional[float] = None

    @property
    def busy(self) -> bool:
        return self._task is not None

    @property
    def cancelling(self) -> bool:
        return self.busy and self._cancel.is_set()

    def launch(self, name: str, coro: Coroutine) -> bool:
        """Schedule ``coro`` as the current job; False (and ``coro`` is closed) while one runs."""
        if self._task is not None:
            coro.close()
            return False
        self._cancel = threading.Event()
        self.name = name
        self.t_cancel = None
        self._task = asyncio.ensure_future(coro, loop=self._loop)
        self._task.add_done_callback(self._finished)
        self.started.emit(name)
        return True

    async def call(self, fn: JobFn, on_partial: Optional[Callable[[Any], None]] = None) -> Any:
        """Run ``fn(progress, cancel, emit)`` on the worker thread and return its result (or raise
        what it raised) on the GUI thread."""
        loop = self._loop
        cancel = self._cancel
        t0 = time.perf_counter()
        last = [0.0]

        def soon(cb, *args) -> None:
            try:
                loop.call_soon_threadsafe(cb, *args)
            except RuntimeError:   # the loop is closed (shutdown)
                pass

        def progress(fraction: float, message: str = "") -> None:
            now = time.perf_counter()
            if fraction < 1.0 and now - last[0] < PROGRESS_INTERVAL_S:
                return
            last[0] = now
            elapsed = now - t0
            eta = elapsed / fraction * (1.0 - fraction) if fraction > 0.02 and elapsed > 0.3 else -1.0
            soon(self._emit_progress, float(fraction), str(message), float(eta))

        def emit(obj: Any) -> None:
            if on_partial is not None:
                soon(on_partial, obj)

        def work() -> Any:
            try:
                return fn(progress, cancel.is_set, emit)
            finally:
                self._thread_idle.set()

        self._thread_idle.clear()
        return await loop.run_in_executor(self._pool, work)

    def _emit_progress(self, fraction: float, message: str, eta: float) -> None:
        try:
            self.progress.emit(fraction, message, eta)
        except RuntimeError:   # the window is gone
            pass

    def cancel(self) -> None:
        """Ask the running job to stop (the detector notices at its next check, well within 1 s)."""
        if self._task is not None and not self._cancel.is_set():
            self.t_cancel = time.perf_counter()
            self._cancel.set()

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Block until the worker thread is idle (shutdown, detector switch). True if it is."""
        return self._thread_idle.wait(timeout_s)

    def shutdown(self) -> None:
        self.cancel()
        self.wait(3.0)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _finished(self, task: asyncio.Future) -> None:
        self._task = None
        if not task.cancelled() and task.exception() is not None:
            err = task.exception()
            log.error("job %r failed", self.name, exc_info=(type(err), err, err.__traceback__))
        try:
            self.idle.emit()
        except RuntimeError:
            pass
