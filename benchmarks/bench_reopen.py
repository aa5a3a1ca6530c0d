"""Time to reopen the demo dataset and show the first result, without and with a saved fit.

Each run is a fresh process (as a user restarting the app): open the demo, analyse the first test
sample of the first class with ``memory-bank`` (5 shots) through the session.  The first run fits
and saves the fit; the second finds it by content and loads it.

    python benchmarks/bench_reopen.py
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from core.demo import ensure_demo
from core.session import Session
from core.detectors.state import FitStore
s = Session(None, "memory-bank", fit_store=FitStore(sys.argv[1]))
ds = s.open(ensure_demo())
cls = ds.classes[0]
ref = ds.select([cls], split="test")[0]
t1 = time.perf_counter()
a = s.analyze(ref)
t2 = time.perf_counter()
print(json.dumps({"open_s": t1 - t0, "first_result_s": t2 - t1, "total_s": t2 - t0,
                  "fit_source": s.fit_sources[cls], "fit_s": a.fit_seconds, "score": a.result.image_score}))
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        rows = []
        for label in ("first open (fit + save)", "reopen (saved fit)"):
            out = subprocess.run([sys.executable, "-c", CHILD, d], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((label, r))
        for label, r in rows:
            print(f"{label:<26} fit source {r['fit_source']:<7} fit {r['fit_s']:6.2f} s   first result "
                  f"{r['first_result_s']:6.2f} s   (process total {r['total_s']:.2f} s)  score {r['score']:.4f}")


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t:.1f} s)")
