"""Small I/O off the GUI thread: :class:`BackgroundLoader` loads the selected sample, thumbnails and
the CUDA probe in single-thread pools, so file access never blocks the event loop (long jobs:
:mod:`app.jobs`).  Signals are emitted from the pool threads on an object living in the GUI thread,
so Qt queues them and every slot runs on the GUI thread.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


def format_eta(seconds: Optional[float]) -> str:
    """'ETA 1:05' style text; empty when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return ""
    s = int(round(seconds))
    if s >= 3600:
        return f"ETA {s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"ETA {s // 60}:{s % 60:02d}"


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
