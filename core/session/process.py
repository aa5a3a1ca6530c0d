"""One runner for work in a child process: detector scoring (:class:`~core.session.backends.ProcessBackend`)
and training (:func:`core.training.train_in_process`) both use :class:`ChildProcess`.

The parent :meth:`~ChildProcess.start`\\ s a ``spawn``-ed child that serves requests through a pipe
with a *handler*: ``handler_factory()`` builds it once in the child (a module-level class, so that
``spawn`` can send it by reference), then every :meth:`~ChildProcess.call` runs
``handler(request, reporter)`` there and sends its return value back.  Messages from the child
(tuples ``(kind, payload)``)::

    ("progress", (fraction, message))   # reporter.progress, throttled to ~20 per second
    (kind, payload)                      # reporter.event: any other kind goes to call(on_event=...)
    ("result", value) | ("cancelled", None) | ("error", (exception, traceback_text))

Cancel is cooperative first: :meth:`~ChildProcess.call`'s ``cancel()`` is forwarded through a shared
event that the handler polls (``reporter.cancelled``); a child that has not answered
``kill_after_s`` later is terminated and the call raises :class:`~core.errors.Cancelled` (the
process restarts on the next call).  A child that dies raises :class:`WorkerProcessError` instead of
taking the caller down.  Only our own processes talk through the pipe (its messages are pickled).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import threading
import time
import traceback
from typing import Any, Callable, Optional

from ..errors import Cancelled, MMADError

__all__ = ["ChildProcess", "RemoteTraceback", "Reporter", "THROTTLE_S", "WorkerProcessError"]

THROTTLE_S = 0.05      # progress and throttled events: at most ~20 messages per second
POLL_S = 0.02          # how often a waiting call checks cancel and the child's health

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
EventFn = Callable[[str, Any], None]


class WorkerProcessError(MMADError):
    """A worker process stopped unexpectedly (or cannot be reached); it restarts on the next call."""


class RemoteTraceback(Exception):
    """The traceback of an error raised in the child (the ``__cause__`` of the re-raised error)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\"\"\"\n{self.text}\"\"\""


class Reporter:
    """The child's side of a call: progress and events to the parent, and the cancel flag."""

    def __init__(self, conn, cancel_event):
        self._conn = conn
        self._cancel = cancel_event
        self._last: dict[str, float] = {}

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def send(self, kind: str, payload: Any = None) -> None:
        try:
            self._conn.send((kind, payload))
        except (BrokenPipeError, OSError):   # the parent is gone: stop
            self._cancel.set()

    def _due(self, kind: str) -> bool:
        now = time.perf_counter()
        if now - self._last.get(kind, 0.0) < THROTTLE_S:
            return False
        self._last[kind] = now
        return True

    def progress(self, fraction: float, message: str = "") -> None:
        """Throttled; the final ``fraction >= 1`` always goes through."""
        if fraction >= 1.0 or self._due("progress"):
            self.send("progress", (float(fraction), str(message)))

    def event(self, kind: str, payload: Any = None, throttle: bool = False) -> None:
        """Any other message for the caller's ``on_event(kind, payload)`` (``throttle``: like progress)."""
        if not throttle or self._due(kind):
            self.send(kind, payload)


def _portable(err: BaseException) -> tuple[BaseException, str]:
    """The error as the parent can receive it (an unpicklable one becomes its text) and its traceback."""
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001 - an unpicklable error becomes its text
        err = MMADError(f"{type(err).__name__}: {err}")
    return err, text


def _child_main(conn, cancel_event, handler_factory: Callable[[], Callable], nice: int) -> None:  # pragma: no cover
    """The child's loop: one handler, built on the first call; ``("call", request)`` or ``("quit",)``."""
    if nice:
        try:
            os.nice(nice)
        except (OSError, AttributeError):
            pass
    reporter = Reporter(conn, cancel_event)
    handler = None
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if msg[0] == "quit":
            return
        try:
            if handler is None:
                handler = handler_factory()
            reporter.send("result", handler(msg[1], reporter))
        except Cancelled:
            reporter.send("cancelled")
        except BaseException as err:  # noqa: BLE001 - everything goes back to the parent
            reporter.send("error", _portable(err))


class ChildProcess:
    """A persistent ``spawn``-ed worker process that serves :meth:`call`\\ s; see the module docstring.

    ``what`` names the process in error messages ("detector process"); ``nice`` is the child's
    niceness increment (the caller stays responsive while it works).  Thread-safe: calls are
    serialized (:attr:`lock` is re-entrant, so a caller may hold it around :meth:`start` and
    :meth:`call`); :meth:`terminate` may come from any thread.
    """

    def __init__(self, handler_factory: Callable[[], Callable], *, name: str = "mmad-worker",
                 what: str = "worker process", start_method: str = "spawn", kill_after_s: float = 0.8,
                 nice: int = 0):
        self.handler_factory = handler_factory
        self.name = name
        self.what = what
        self.kill_after_s = kill_after_s
        self.nice = nice
        self._ctx = mp.get_context(start_method)
        self._cancel = self._ctx.Event()
        self._proc = None
        self._conn = None
        self.lock = threading.RLock()
        self.restarts = 0            # processes started so far

    # ------------------------------------------------------------------ process management
    @property
    def pid(self) -> Optional[int]:
        proc = self._proc
        return proc.pid if proc is not None else None

    def alive(self) -> bool:
        proc = self._proc
        return proc is not None and proc.is_alive()

    def start(self) -> bool:
        """Start the process unless it runs; True when a new one was started (it holds nothing yet)."""
        with self.lock:
            if self.alive():
                return False
            self._shutdown(kill=True)
            parent, child = self._ctx.Pipe()
            proc = self._ctx.Process(target=_child_main, args=(child, self._cancel, self.handler_factory, self.nice),
                                     daemon=True, name=self.name)
            try:
                proc.start()
            except Exception as err:  # noqa: BLE001 - e.g. an argument that cannot be sent to the process
                parent.close()
                raise WorkerProcessError(f"cannot start the {self.what}: {err}") from err
            finally:
                child.close()
            self._proc, self._conn = proc, parent
            self.restarts += 1
            return True

    def terminate(self) -> None:
        """Stop the process now, from any thread; a call in progress ends (Cancelled if it was cancelled)."""
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.terminate()

    def _shutdown(self, kill: bool) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
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

    def close(self, wait: bool = True) -> None:
        """Ask the process to quit (terminated if it does not within 2 s).  ``wait=False``: the
        caller goes on at once and a thread reaps the child (its interpreter may take a while to exit)."""
        with self.lock:
            if wait:
                self._shutdown(kill=False)
                return
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
        if proc is None:
            return
        try:
            conn.send(("quit",))
        except (OSError, ValueError):
            pass
        conn.close()

        def reap() -> None:
            proc.join(3.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)

        threading.Thread(target=reap, name=f"{self.name}-reaper", daemon=True).start()

    # ------------------------------------------------------------------ calls
    def _gone(self, why: str) -> WorkerProcessError:
        self._shutdown(kill=True)
        return WorkerProcessError(f"the {self.what} {why}; it restarts on the next run")

    def call(self, request: Any, progress: Optional[ProgressFn] = None, cancel: Optional[CancelFn] = None,
             on_event: Optional[EventFn] = None) -> Any:
        """Run ``handler(request, reporter)`` in the child (started if needed) and return its result,
        or raise what it raised (with its traceback as ``__cause__``), :class:`Cancelled`, or
        :class:`WorkerProcessError`.  ``progress`` and ``on_event`` are called in the calling thread."""
        with self.lock:
            self.start()
            self._cancel.clear()
            conn, proc = self._conn, self._proc
            try:
                conn.send(("call", request))
            except (OSError, ValueError) as err:
                raise self._gone(f"cannot be reached ({err})") from None
            t_cancel: Optional[float] = None
            while True:
                if conn.poll(POLL_S):
                    try:
                        kind, payload = conn.recv()
                    except (EOFError, OSError):
                        if t_cancel is not None or (cancel is not None and cancel()):
                            self._shutdown(kill=True)     # stopped after a cancel (killed, terminated)
                            raise Cancelled(f"cancelled by the user (the {self.what} was stopped)") from None
                        raise self._gone("stopped unexpectedly (out of memory or a crash in native code?)") from None
                    if kind == "result":
                        return payload
                    if kind == "cancelled":
                        raise Cancelled("cancelled by the user")
                    if kind == "error":
                        err, text = payload
                        raise err from RemoteTraceback(text)
                    if kind == "progress":
                        if progress is not None:
                            progress(*payload)
                    elif on_event is not None:
                        on_event(kind, payload)
                    continue
                cancelling = cancel is not None and cancel()
                if not proc.is_alive():
                    if cancelling:
                        self._shutdown(kill=True)
                        raise Cancelled(f"cancelled by the user (the {self.what} was stopped)")
                    raise self._gone(f"stopped unexpectedly (exit code {proc.exitcode})")
                if cancelling:
                    now = time.perf_counter()
                    if t_cancel is None:
                        t_cancel = now
                        self._cancel.set()
                    elif now - t_cancel > self.kill_after_s:
                        self._shutdown(kill=True)   # the handler did not notice in time
                        raise Cancelled(f"cancelled by the user (the {self.what} was stopped)")
