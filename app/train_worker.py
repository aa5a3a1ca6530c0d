"""Training in a worker **process** (Qt-free: the child imports neither Qt nor the window).

Training in a thread of the GUI process stalls the event loop for more than a second at a time
(feature extraction and torch hold the GIL; measured with a 5 ms QTimer), so the Train panel runs
:func:`core.training.train` in a ``spawn``-ed child: messages come back through a pipe, cancel is
an event the training loop polls before every batch; a child that has not stopped
``kill_after_s`` after cancel is terminated (the checkpoint of the last finished epoch is on
disk: :class:`core.checkpoint.Checkpoint` writes atomically).

Messages (tuples) from the child, in order::

    ("progress", fraction, message)       # throttled to ~20 per second
    ("batch", epoch_float, running_loss)  # throttled likewise
    ("epoch", epoch, mean_loss)
    ("done", {path, epochs, losses, n_samples, skipped, feature_seconds, train_seconds, peak_rss_mb})
    ("cancelled",) | ("error", description, details)
"""
from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Optional

THROTTLE_S = 0.05


@dataclass
class TrainJob:
    dataset: Any                  # a core.datasets.Dataset (pickled to the child)
    detector_id: str
    classes: list[str]
    epochs: int
    out: str
    kwargs: dict[str, Any] = field(default_factory=dict)   # more keyword arguments of core.training.train
    nice: int = 5                 # the child's niceness increment: the window stays responsive meanwhile


def _child(conn, cancel_event, job: TrainJob) -> None:  # pragma: no cover - runs in the child process
    try:
        if job.nice:
            os.nice(job.nice)
    except (OSError, AttributeError):
        pass
    last = {"progress": 0.0, "batch": 0.0}

    def send(*msg) -> None:
        try:
            conn.send(msg)
        except (BrokenPipeError, OSError):   # the window is gone: stop
            cancel_event.set()

    def throttled(kind: str, *msg) -> None:
        now = time.perf_counter()
        if now - last[kind] >= THROTTLE_S:
            last[kind] = now
            send(kind, *msg)

    try:
        from core.errors import Cancelled
        from core.session import describe_error
        from core.training import train
    except Exception as err:  # noqa: BLE001 - reported to the window
        send("error", f"cannot start training: {err}", traceback.format_exc())
        return
    try:
        r = train(job.dataset, job.detector_id, classes=job.classes, epochs=job.epochs, out=job.out,
                  progress=lambda f, m: throttled("progress", float(f), str(m)), cancel=cancel_event.is_set,
                  on_epoch=lambda e, loss: send("epoch", int(e), float(loss)),
                  on_batch=lambda e, loss: throttled("batch", float(e), float(loss)), **job.kwargs)
    except Cancelled:
        send("cancelled")
        return
    except Exception as err:  # noqa: BLE001 - every failure is shown in the window
        from core.errors import MMADError
        send("error", describe_error(err), "" if isinstance(err, MMADError) else traceback.format_exc())
        return
    send("done", {"path": str(r.path), "detector": r.detector, "classes": r.classes, "epochs": r.epochs,
                  "losses": list(r.losses), "n_samples": r.n_samples, "skipped": list(r.skipped),
                  "feature_seconds": r.feature_seconds, "train_seconds": r.train_seconds,
                  "peak_rss_mb": r.peak_rss_mb})


class TrainProcess:
    """One training run in a child process: :meth:`start`, then :meth:`poll` from a timer."""

    def __init__(self, job: TrainJob, kill_after_s: float = 0.8, start_method: str = "spawn"):
        self.job = job
        self.kill_after_s = kill_after_s
        self._ctx = mp.get_context(start_method)
        self._cancel = self._ctx.Event()
        self._conn = None
        self._proc = None
        self.t_cancel: Optional[float] = None
        self.finished = False

    def start(self) -> None:
        parent, child = self._ctx.Pipe(duplex=False)
        self._proc = self._ctx.Process(target=_child, args=(child, self._cancel, self.job), daemon=True,
                                       name="mmad-train")
        self._proc.start()
        child.close()
        self._conn = parent

    @property
    def pid(self) -> Optional[int]:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def poll(self) -> list[tuple]:
        """The messages that arrived (never blocks).  Ends with ``("cancelled",)`` or ``("error", ...)``
        when the child stopped without saying why (killed after cancel, crashed)."""
        out: list[tuple] = []
        if self.finished or self._conn is None:
            return out
        try:
            while self._conn.poll():
                out.append(self._conn.recv())
        except (EOFError, OSError):
            pass
        if out and out[-1][0] in ("done", "cancelled", "error"):
            self._finish()
            return out
        killed = False
        if self.t_cancel is not None and time.perf_counter() - self.t_cancel > self.kill_after_s and self.alive():
            self._proc.terminate()     # reaped by _finish's thread: the GUI thread never waits for it
            killed = True
        if killed or not self.alive():
            try:                       # what it sent just before it ended
                while self._conn.poll():
                    out.append(self._conn.recv())
            except (EOFError, OSError):
                pass
            if not out or out[-1][0] not in ("done", "cancelled", "error"):
                code = self._proc.exitcode
                out.append(("cancelled",) if self.t_cancel is not None else
                           ("error", f"the training process stopped unexpectedly (exit code {code})", ""))
            self._finish()
        return out

    def cancel(self) -> None:
        if self.t_cancel is None and not self.finished:
            self.t_cancel = time.perf_counter()
            self._cancel.set()

    def _finish(self) -> None:
        """Close the pipe and reap the child on a thread (its interpreter may take a while to exit)."""
        self.finished = True
        if self._conn is not None:
            self._conn.close()
        proc = self._proc
        if proc is not None:
            def reap() -> None:
                proc.join(3.0)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(2.0)
            threading.Thread(target=reap, name="mmad-train-reaper", daemon=True).start()

    def shutdown(self) -> None:
        """Stop the child now (window closing)."""
        if self._proc is not None and not self.finished:
            self._cancel.set()
            self._proc.join(0.5)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(1.0)
            self._finish()
