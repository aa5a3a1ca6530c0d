"""The headless model behind the workbench, ``eval`` and ``score`` (see :mod:`.session`).

* :mod:`.cache`    - memory-bounded LRU of loaded samples and components;
* :mod:`.backends` - where fit / extract / rescore run (calling thread or a worker process);
* :mod:`.process`  - the child-process runner (scoring and training);
* :mod:`.events`   - observer signals the GUI connects to;
* :mod:`.display`  - Qt-free display helpers (pictures, pixel <-> point, score range, thumbnails);
* :mod:`.checks`   - the one check of ``--shots`` and of saved parameter values;
* :mod:`.session`  - :class:`Session` itself.
"""
from .backends import Backend, DetectorProcessError, ProcessBackend, ThreadBackend
from .cache import ByteLRU, nbytes_of
from .checks import saved_params, support_shots
from .display import display_image, pixel_to_point, point_to_pixel, score_range, thumbnail
from .events import SessionEvents, Signal
from .process import ChildProcess, WorkerProcessError
from .session import (Analysis, RunSummary, SampleRecord, Session, SupportItem, describe_error,
                      iter_refs_with_errors)

__all__ = ["Analysis", "Backend", "ByteLRU", "ChildProcess", "DetectorProcessError", "ProcessBackend", "RunSummary",
           "SampleRecord", "Session", "SessionEvents", "Signal", "SupportItem", "ThreadBackend",
           "describe_error", "display_image", "iter_refs_with_errors", "nbytes_of", "pixel_to_point",
           "point_to_pixel", "saved_params", "score_range", "support_shots", "thumbnail", "WorkerProcessError"]
