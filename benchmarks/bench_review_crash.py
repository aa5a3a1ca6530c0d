"""Data-loss counts of the review store (the dataset's project): random sessions and kill -9 (a script, not a test).

1. **Sequences**: ``--sequences`` random sessions (default 500, seeds 0..N-1) of open / act / close
   on a fresh dataset each: verdicts C / R / U, final verdicts O / X / unsure, notes, region marks,
   undo / redo, reopen, a read-only second instance, a full disk for a few actions, an older
   version's review journal before the first open and another one later (never imported).  After
   every reopen the project is compared with the in-test model of the acknowledged actions
   (tests/review_crash.py); a difference is a loss.
2. **kill -9**: ``--trials`` writer processes (default 100) do random actions on a project (each
   project shared by ``--per-project`` consecutive trials, so writers also start on a project a
   killed writer left behind), acknowledging each on stdout once its call returned; each is killed
   with SIGKILL after a random delay, and the reopened project is compared with the model.
3. **Disk full**: SQLite's own "database or disk is full" (``max_page_count``): the verdict is kept
   in memory and shown, and ``retry()`` saves it once space is back.

Usage::

    .venv/bin/python benchmarks/bench_review_crash.py [--sequences 500] [--trials 100] [--max-delay 0.25]
        [--per-project 10] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from review_crash import Model, fill_disk, free_disk, kill_trial  # noqa: E402

from core.project import Project, ProjectWriteError  # noqa: E402


def sequences(n: int, seed0: int) -> dict:
    import test_review   # the sequence runner of the tests (pytest is only used for pytest.raises)
    t0 = time.perf_counter()
    total: dict = {"sequences": n, "lost": 0, "failed_seeds": []}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MMAD_CACHE"] = str(Path(tmp) / "cache")    # where older versions kept their journal
        for seed in range(seed0, seed0 + n):
            d = Path(tmp) / f"ds{seed}"
            d.mkdir()
            try:
                stats = test_review.run_sequence(d, seed)
            except AssertionError as err:
                total["lost"] += 1
                total["failed_seeds"].append((seed, str(err)[:200]))
                continue
            for k, v in stats.items():
                total[k] = total.get(k, 0) + v
    total["seconds"] = round(time.perf_counter() - t0, 2)
    return total


def kill_trials(n: int, max_delay: float, seed: int, per_project: int) -> dict:
    rng = random.Random(seed)
    acked = lost = in_flight = in_flight_saved = opened = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = Model()
        for trial in range(n):
            d = Path(tmp) / f"ds{trial // per_project}"
            if trial % per_project == 0:
                d.mkdir()
                model = Model()
            try:
                r = kill_trial(d, model, seed=seed * 100_000 + trial, delay=rng.uniform(0.0, max_delay))
            except Exception as err:  # noqa: BLE001 - a project that does not open is a result
                print(f"trial {trial}: the project did not open: {err}")
                continue
            opened += 1
            acked += r["acked"]
            lost += len(r["lost"])
            in_flight += r["in_flight"]
            in_flight_saved += r["in_flight_saved"]
            if r["lost"]:
                print(f"trial {trial}: " + "; ".join(r["lost"][:3]))
    return {"trials": n, "opened": opened, "acknowledged": acked, "lost": lost,
            "killed_in_flight": in_flight, "in_flight_found_saved": in_flight_saved,
            "seconds": round(time.perf_counter() - t0, 2)}


def disk_full() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        with Project.open(tmp, import_jsonl=False) as p:
            p.record_verdict("k1", "confirm")
            fill_disk(p)
            try:
                p.record_verdict("k2", "reject", note="x" * 5000)
                raised = ""
            except ProjectWriteError as err:
                raised = str(err)
            shown, pending = p.verdict("k2").verdict, p.pending
            free_disk(p)
            written = p.retry()
        with Project.open(tmp, import_jsonl=False) as p:
            saved = p.verdict("k2") is not None and p.verdict("k2").verdict == "rejected"
    return {"raised": raised, "shown_while_pending": shown, "pending_after_failure": pending,
            "retry_wrote": written, "in_the_file_after_retry": saved}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=500)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--max-delay", type=float, default=0.25, help="kill after uniform(0, this) seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--per-project", type=int, default=10, help="consecutive kill trials sharing one project")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    out = {"sequences": sequences(args.sequences, args.seed * 10_000),
           "kill9": kill_trials(args.trials, args.max_delay, args.seed, args.per_project),
           "disk_full": disk_full(), "load_average": os.getloadavg()}
    for part in ("sequences", "kill9", "disk_full"):
        print(f"{part}:")
        for k, v in out[part].items():
            print(f"  {k:28s} {v}")
    print(f"load average: {out['load_average']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
