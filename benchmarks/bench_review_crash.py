"""kill -9 and disk-full trials on the review store (a script, not a test).

1. **kill -9**: ``--trials`` writer processes (default 100) append verdicts to a review file in a
   loop (each file is shared by ``--per-file`` consecutive trials, so writers also start on a file
   a killed writer left behind), each acknowledging a verdict on stdout once ``record()`` has returned; each is killed with
   SIGKILL after a random delay.  After every kill the store is reopened: the numbers are the
   verdicts acknowledged, those lost (must be 0), kills that landed between the write and the
   acknowledgement (a verdict on disk but not acknowledged), partial lines skipped on reopen, and
   whether the file always opened.
2. **Disk full**: ``os.write`` is made to write half a record and then fail with ENOSPC (what a
   filling disk does): ``record()`` raises ``ReviewWriteError``, the file is cut back to its previous
   bytes, the verdict stays pending, and ``retry()`` saves it once space is back.

Usage::

    .venv/bin/python benchmarks/bench_review_crash.py [--trials 100] [--max-delay 0.15] [--per-file 10] [--json out.json]
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import core.review as review_mod  # noqa: E402
from core.review import ReviewStore, ReviewWriteError  # noqa: E402
from review_crash import kill_trial  # noqa: E402


def kill_trials(n: int, max_delay: float, seed: int, per_file: int) -> dict:
    rng = random.Random(seed)
    acked = lost = unacked_on_disk = opened = skipped = on_disk = size = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for trial in range(n):
            path = Path(tmp) / f"r{trial // per_file}.jsonl"
            try:
                r = kill_trial(path, rng, trial, max_delay=max_delay)
            except Exception as err:  # noqa: BLE001 - a store that does not open is a result
                print(f"trial {trial}: the store did not open: {err}")
                continue
            opened += 1
            acked += len(r["acked"])
            lost += len(r["lost"])
            unacked_on_disk += len(r["on_disk"] - r["acked"])
        for path in Path(tmp).glob("r*.jsonl"):
            final = ReviewStore(path)
            skipped += final.skipped_lines
            on_disk += sum(len(final.history(k)) for k in final.keys())
            size += path.stat().st_size
    return {"trials": n, "opened": opened, "acknowledged": acked, "lost": lost,
            "on_disk_not_acknowledged": unacked_on_disk, "partial_lines_skipped": skipped,
            "verdicts_on_disk": on_disk, "bytes_written": size, "seconds": round(time.perf_counter() - t0, 2)}


def disk_full() -> dict:
    real = os.write
    state = {"calls": 0}

    def filling(fd, data):
        state["calls"] += 1
        if state["calls"] == 1:
            return real(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.jsonl"
        st = ReviewStore(path)
        st.record("k1", "confirmed")
        before = path.read_bytes()
        review_mod.os.write = filling
        try:
            try:
                st.record("k2", "rejected")
                raised = ""
            except ReviewWriteError as err:
                raised = str(err)
            cut_back = path.read_bytes() == before
            pending = st.pending
        finally:
            review_mod.os.write = real
        written = st.retry()
        reopened = ReviewStore(path)
        return {"raised": raised, "file_cut_back": cut_back, "pending_after_failure": pending,
                "retry_wrote": written, "on_disk_after_retry": reopened.verdict("k2") == "rejected",
                "warnings_on_reopen": len(reopened.warnings)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--max-delay", type=float, default=0.15, help="kill after uniform(0, this) seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-file", type=int, default=10, help="consecutive trials sharing one review file")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    out = {"kill9": kill_trials(args.trials, args.max_delay, args.seed, args.per_file), "disk_full": disk_full(),
           "load_average": os.getloadavg()}
    for part in ("kill9", "disk_full"):
        print(f"{part}:")
        for k, v in out[part].items():
            print(f"  {k:28s} {v}")
    print(f"load average: {out['load_average']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
