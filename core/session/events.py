"""Observer signals for the headless model (napari-style: the model knows nothing of Qt and
emits events; a GUI connects callbacks and marshals them to its own thread)."""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)


class Signal:
    """A list of callbacks called with the emitted arguments, in connection order.

    A failing callback is logged and does not stop the others (the model must not break because a
    view did).  Callbacks run in the emitting thread.
    """

    def __init__(self, name: str = ""):
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []
        self._lock = threading.Lock()

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        with self._lock:
            if callback not in self._callbacks:
                self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                cb(*args)
            except Exception:  # noqa: BLE001 - a view's bug must not break the model
                log.exception("callback of %s failed", self.name)


class SessionEvents:
    """The session's signals.

    * ``dataset_changed()``: a dataset was opened;
    * ``detector_changed()``: another detector or device was chosen;
    * ``params_changed(stages)``: parameter values changed (the set of invalidated stages);
    * ``records_changed(keys)``: scores / decisions / errors of these sample keys changed;
    * ``fitted(class_name, seconds, from_saved)``: a class was fitted (or its saved fit reused);
    * ``support_changed(class_name)``: the support set of a class changed.
    """

    def __init__(self) -> None:
        self.dataset_changed = Signal("dataset_changed")
        self.detector_changed = Signal("detector_changed")
        self.params_changed = Signal("params_changed")
        self.records_changed = Signal("records_changed")
        self.fitted = Signal("fitted")
        self.support_changed = Signal("support_changed")
