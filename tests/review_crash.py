"""kill -9 trials on the review store, shared by tests/test_review.py and benchmarks/bench_review_crash.py."""
from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.review import ReviewStore

CHILD = Path(__file__).with_name("review_crash_child.py")
ROOT = Path(__file__).resolve().parents[1]


def kill_trial(store_path: Path, rng: random.Random, trial: int, max_delay: float = 0.15) -> dict:
    """Start a writer, SIGKILL it after a random delay, reopen the store.

    Returns ``acked`` (verdicts whose record() had returned), ``lost`` (acked but missing on reopen),
    ``on_disk`` (verdicts on disk), ``skipped`` (unreadable lines skipped on reopen).
    """
    note = rng.choice((0, 200, 2000))              # long notes make the kill land inside a write more often
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, str(CHILD), str(store_path), str(note), f"t{trial}-"], stdout=subprocess.PIPE,
                            env=env, cwd=str(ROOT))
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(rng.uniform(0.0, max_delay))
    os.kill(proc.pid, signal.SIGKILL)
    out = proc.stdout.read()             # everything printed before the kill
    proc.wait()
    proc.stdout.close()
    acked = {f"t{trial}-{int(x)}" for x in out.split()}
    logging.getLogger("core.review").disabled = True     # the truncated line (if any) is expected
    try:
        st = ReviewStore(store_path)
    finally:
        logging.getLogger("core.review").disabled = False
    on_disk = {k for k in st.keys() if k.startswith(f"t{trial}-")}
    return {"acked": acked, "lost": acked - on_disk, "on_disk": on_disk, "skipped": st.skipped_lines}
