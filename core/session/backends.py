"""Where ``fit`` / ``extract`` / ``rescore`` run: in the calling thread or in a worker process.

Both implement :class:`Backend`.  The session always passes *its own* detector instance of the
part class (which holds the parameters and the fitted state); a backend runs the work either on
that instance (:class:`ThreadBackend`, used by ``eval`` and ``score``) or on a twin in a worker
process (:class:`ProcessBackend`, used by the GUI), which receives the instance's state whenever
it lacks it (after a restart, or a state that was loaded from disk).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Optional, Protocol, Sequence

from ..detectors.base import CancelFn, Components, Detector, ProgressFn
from ..detectors.state import FitState
from ..errors import Cancelled, MMADError
from ..sample import Sample


class Backend(Protocol):
    """Runs a detector instance's expensive stages."""

    def fit(self, det: Detector, class_name: str, support: Sequence[Sample], support_key: str,
            progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> FitState: ...

    def extract(self, det: Detector, class_name: str, sample: Sample,
                progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> Components: ...

    def rescore(self, det: Detector, class_name: str, components: Components,
                progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> Components: ...

    def close(self) -> None: ...


class ThreadBackend:
    """Runs the stages in the calling thread, on the session's own instance."""

    def fit(self, det: Detector, class_name: str, support: Sequence[Sample], support_key: str,
            progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> FitState:
        return det.fit(support, class_name=class_name, progress=progress, cancel=cancel, support_key=support_key)

    def extract(self, det: Detector, class_name: str, sample: Sample,
                progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> Components:
        return det.extract(sample, progress, cancel)

    def rescore(self, det: Detector, class_name: str, components: Components,
                progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> Components:
        return det.rescore(components, progress, cancel)

    def close(self) -> None:
        pass


class DetectorProcessError(MMADError):
    """The detector's worker process stopped unexpectedly."""


def _child_main(conn, cancel_event) -> None:  # pragma: no cover - runs in the child process
    """Worker process loop: one detector instance per part class; fit / extract / rescore."""
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
        op, class_name, cls, device, params, state, data = msg
        try:
            inst = instances.get(class_name)
            if inst is None or type(inst) is not cls or inst.device != device:
                inst = cls(device=device, **params)
                instances[class_name] = inst
            else:
                inst.set_params(**params)
            if state is not None:
                inst.load_state(state)
            if op == "fit":
                support, support_key = data
                st = inst.fit(support, class_name=class_name, progress=progress, cancel=cancel_event.is_set,
                              support_key=support_key)
                conn.send(("result", st))
            elif op == "extract":
                conn.send(("result", inst.extract(data, progress, cancel_event.is_set)))
            elif op == "rescore":
                conn.send(("result", inst.rescore(data, progress, cancel_event.is_set)))
            else:
                raise MMADError(f"unknown worker operation {op!r}")
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
        self._child_state: dict[str, str] = {}   # class -> key of the FitState the child holds
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
        self._child_state.clear()
        self.restarts += 1

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def _shutdown(self, kill: bool) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        self._child_state.clear()
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

    def _state_for_child(self, det: Detector, class_name: str) -> Optional[FitState]:
        """The instance's state when the child does not hold it yet (else None: nothing to send)."""
        st = det.state
        if st is None or self._child_state.get(class_name) == st.key:
            return None
        return st

    def _run(self, op: str, det: Detector, class_name: str, data: Any,
             progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> Any:
        with self._call_lock:
            self._start()   # a restart forgets what the child held: decide what to send after it
            state = None if op == "fit" else self._state_for_child(det, class_name)
            out = self._call((op, class_name, type(det), det.device, det.get_params(), state, data),
                             progress, cancel)
            if op == "fit":
                self._child_state[class_name] = out.key
            elif state is not None:
                self._child_state[class_name] = state.key
            return out

    def fit(self, det: Detector, class_name: str, support: Sequence[Sample], support_key: str,
            progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> FitState:
        self._child_state.pop(class_name, None)
        state = self._run("fit", det, class_name, (list(support), support_key), progress, cancel)
        det.load_state(state)     # the instance that fuses holds the state: never hollow
        return state

    def extract(self, det: Detector, class_name: str, sample: Sample,
                progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> Components:
        det.require_fitted()
        return self._run("extract", det, class_name, sample, progress, cancel)

    def rescore(self, det: Detector, class_name: str, components: Components,
                progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> Components:
        det.require_fitted()
        return self._run("rescore", det, class_name, components, progress, cancel)
