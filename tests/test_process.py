"""The child-process runner (core.session.process.ChildProcess) that scoring and training share:
results and events come back, errors keep their type and the child's traceback, cancel is
cooperative and else a kill within ``kill_after_s``, a crash is an error and the next call restarts."""
from __future__ import annotations

import os
import threading
import time

import pytest

from core.errors import Cancelled, InputError
from core.session.process import ChildProcess, RemoteTraceback, WorkerProcessError


class Handler:
    """Requests: ("echo", x), ("events", n), ("error",), ("wait", ignore_cancel), ("crash",), ("pid",)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, request, reporter):
        self.calls += 1
        op = request[0]
        if op == "echo":
            return request[1], self.calls
        if op == "events":
            for i in range(request[1]):
                reporter.event("tick", i)
            reporter.progress(1.0, "done")
            return "ok"
        if op == "error":
            raise InputError("some/file.png", "cannot be read")
        if op == "wait":
            while True:
                if not request[1] and reporter.cancelled():
                    raise Cancelled("stopped")
                time.sleep(0.01)
        if op == "crash":
            os._exit(3)
        if op == "pid":
            return os.getpid()
        raise ValueError(op)


@pytest.fixture
def child():
    c = ChildProcess(Handler, name="mmad-test", what="test process", kill_after_s=0.5)
    yield c
    c.close()


def test_results_events_and_state_across_calls(child):
    assert child.call(("echo", 5)) == (5, 1)
    assert child.call(("echo", "x")) == ("x", 2)        # one handler, built once, persists
    ticks, progress = [], []
    assert child.call(("events", 3), progress=lambda f, m: progress.append((f, m)),
                      on_event=lambda kind, i: ticks.append((kind, i))) == "ok"
    assert ticks == [("tick", 0), ("tick", 1), ("tick", 2)] and progress == [(1.0, "done")]
    assert child.pid != os.getpid() and child.call(("pid",)) == child.pid


def test_errors_keep_their_type_and_the_child_traceback(child):
    with pytest.raises(InputError, match="cannot be read") as e:
        child.call(("error",))
    assert isinstance(e.value.__cause__, RemoteTraceback) and "raise InputError" in e.value.__cause__.text
    assert child.call(("echo", 1)) == (1, 2)            # the process (and its handler) lives on


@pytest.mark.parametrize("ignore_cancel", [False, True])
def test_cancel_is_cooperative_else_the_child_is_killed(child, ignore_cancel):
    child.start()
    pid = child.pid
    flag = threading.Event()
    threading.Timer(0.3, flag.set).start()
    t0 = time.perf_counter()
    with pytest.raises(Cancelled) as e:
        child.call(("wait", ignore_cancel), cancel=flag.is_set)
    took = time.perf_counter() - t0 - 0.3
    assert took < child.kill_after_s + 0.5
    if ignore_cancel:
        assert "was stopped" in str(e.value) and not child.alive()
        assert child.call(("echo", 0)) == (0, 1) and child.pid != pid     # restarted: a new handler
    else:
        assert child.pid == pid and child.call(("echo", 0))[0] == 0


def test_a_crash_is_an_error_and_the_next_call_restarts(child):
    assert child.start() and not child.start()
    with pytest.raises(WorkerProcessError, match="test process stopped unexpectedly"):
        child.call(("crash",))
    assert child.call(("echo", 2)) == (2, 1) and child.restarts == 2


def test_terminate_from_another_thread_ends_a_cancelled_call(child):
    child.start()
    flag = threading.Event()

    def stop():
        flag.set()
        child.terminate()

    threading.Timer(0.2, stop).start()
    with pytest.raises(Cancelled):
        child.call(("wait", True), cancel=flag.is_set)


def test_close_without_waiting_reaps_the_child(child):
    child.start()
    pid = child.pid
    child.close(wait=False)
    assert child.pid is None
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:      # exited and reaped by the runner's thread
            break
        time.sleep(0.05)
    else:
        pytest.fail("the child did not exit")
