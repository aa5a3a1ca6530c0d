"""Where ``fit`` / ``extract`` / ``rescore`` run: in the calling thread or in a worker process.

Both implement :class:`Backend`.  The session always passes *its own* detector instance of the
part class (which holds the parameters and the fitted state); a backend runs the work either on
that instance (:class:`ThreadBackend`, used by ``eval`` and ``score``) or on a twin in a worker
process (:class:`ProcessBackend`, used by the GUI; it runs on :class:`.process.ChildProcess`),
which receives the instance's state whenever it lacks it (after a restart, or a state that was
loaded from disk).
"""
from __future__ import annotations

from typing import Any, Optional, Protocol, Sequence

from ..detectors.base import CancelFn, Components, Detector, ProgressFn
from ..detectors.state import FitState
from ..errors import MMADError
from ..sample import Sample
from .process import ChildProcess, Reporter, WorkerProcessError


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


#: The detector's worker process stopped unexpectedly (the runner's error, under its old name).
DetectorProcessError = WorkerProcessError


class _DetectorHost:  # pragma: no cover - runs in the child process
    """The worker process's handler: one detector instance per part class; fit / extract / rescore."""

    def __init__(self):
        self.instances: dict[str, Detector] = {}

    def __call__(self, request: tuple, reporter: Reporter) -> Any:
        op, class_name, cls, device, params, state, data = request
        inst = self.instances.get(class_name)
        if inst is None or type(inst) is not cls or inst.device != device:
            inst = cls(device=device, **params)
            self.instances[class_name] = inst
        else:
            inst.set_params(**params)
        if state is not None:
            inst.load_state(state)
        if op == "fit":
            support, support_key = data
            return inst.fit(support, class_name=class_name, progress=reporter.progress, cancel=reporter.cancelled,
                            support_key=support_key)
        if op == "extract":
            return inst.extract(data, reporter.progress, reporter.cancelled)
        if op == "rescore":
            return inst.rescore(data, reporter.progress, reporter.cancelled)
        raise MMADError(f"unknown worker operation {op!r}")


class ProcessBackend:
    """Runs ``fit``/``extract`` in a persistent worker process (a :class:`~core.session.process.ChildProcess`).

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
        self._child = ChildProcess(_DetectorHost, name="mmad-detector", what="detector process",
                                   start_method=start_method, kill_after_s=kill_after_s)
        self._child_state: dict[str, str] = {}   # class -> key of the FitState the child holds

    @property
    def kill_after_s(self) -> float:
        return self._child.kill_after_s

    @property
    def pid(self) -> Optional[int]:
        return self._child.pid

    def _start(self) -> None:
        if self._child.start():           # a new process holds no fitted state
            self._child_state.clear()

    def start(self) -> None:
        """Start the worker process now (it imports the detector libraries: seconds, once)."""
        with self._child.lock:
            self._start()

    def close(self) -> None:
        with self._child.lock:
            self._child.close()
            self._child_state.clear()

    # ------------------------------------------------------------------ calls
    def _state_for_child(self, det: Detector, class_name: str) -> Optional[FitState]:
        """The instance's state when the child does not hold it yet (else None: nothing to send)."""
        st = det.state
        if st is None or self._child_state.get(class_name) == st.key:
            return None
        return st

    def _run(self, op: str, det: Detector, class_name: str, data: Any,
             progress: Optional[ProgressFn], cancel: Optional[CancelFn]) -> Any:
        with self._child.lock:
            self._start()   # a restart forgets what the child held: decide what to send after it
            state = None if op == "fit" else self._state_for_child(det, class_name)
            out = self._child.call((op, class_name, type(det), det.device, det.get_params(), state, data),
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
