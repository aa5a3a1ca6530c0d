"""Project store figures: store size per 1,000 verdicts, verdicts per second, and the time to reopen
the demo with 128 cached scores (a fresh process: open the dataset, open the project, restore the
detector, support sets and scores into a Session), plus the time to export the HTML report of 100
demo samples (thumbnails included).

    python benchmarks/bench_project.py

The project file is written to a temporary folder (``Project.open(path=...)``), never beside the demo.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REOPEN = r"""
import json, sys, time
t0 = time.perf_counter()
from core.datasets import open_dataset
from core.project import Project, restore_session
from core.session import Session
ds = open_dataset(sys.argv[1])
ta = time.perf_counter()
from core.detectors import registry
registry.get("memory-bank")           # the detector's import (torch): paid by any start, project or not
t1 = time.perf_counter()
s = Session(ds, fit_store=None)
with Project.open(ds.root, path=sys.argv[2], import_jsonl=False) as p:
    t2 = time.perf_counter()
    rep = restore_session(p, s)
    t3 = time.perf_counter()
    n_verdicts = len(p.verdicts())
print(json.dumps({"imports_and_dataset_s": ta - t0, "detector_import_s": t1 - ta, "project_open_s": t2 - t1, "restore_s": t3 - t2,
                  "project_total_s": t3 - t1, "total_s": t3 - t0, "scores": rep.scores, "detector": rep.detector,
                  "support_classes": len(rep.support_classes), "verdicts": n_verdicts}))
"""


def size_of(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (path, Path(str(path) + "-wal")) if p.exists())


def bench_verdicts(tmp: Path) -> dict:
    from core.project import Project
    rng = random.Random(0)
    ds = tmp / "ds"
    ds.mkdir()
    with Project.open(ds, import_jsonl=False) as p:
        t0 = time.perf_counter()
        for i in range(1000):
            p.record_verdict(f"class{i % 10}/test/crack/{i:03d}", rng.choice(("confirm", "reject", "unsure")),
                             final=rng.choice(("ok", "nok")), note="scratch near the rim" if i % 3 == 0 else "",
                             reviewer="ana", image_score=rng.random() * 3, decision="anomalous", detector="memory-bank")
        dt = time.perf_counter() - t0
        path = p.path
    return {"verdicts": 1000, "seconds": round(dt, 3), "verdicts_per_s": round(1000 / dt, 1),
            "store_bytes_per_1000_verdicts": size_of(path)}


def prepare_reopen(tmp: Path, demo: Path) -> Path:
    from core.datasets import open_dataset
    from core.project import Project, remember_session
    from core.session import Session
    ds = open_dataset(demo)
    s = Session(ds, "memory-bank", fit_store=None)
    refs = ds.select(split="test")[:128]
    rng = random.Random(1)
    for r in refs:                       # scores as a run would leave them (no detector run needed here)
        rec = s.records[r.key]
        rec.image_score, rec.threshold = rng.random() * 2, 1.0
        rec.anomalous = rec.image_score >= 1.0
    path = tmp / "demo-project.sqlite"
    with Project.open(ds.root, path=path, import_jsonl=False) as p:
        for c in ds.classes:
            p.set_support(c, s.support(c))
        for r in refs[:40]:
            p.record_verdict(r.key, "confirm", final="nok")
        n = remember_session(p, s)
    assert n == len(refs), n
    return path


def bench_report(tmp: Path, demo: Path) -> dict:
    from core.datasets import open_dataset
    from core.project import Project
    from core.project.report import write_html_report
    from core.session import SampleRecord
    ds = open_dataset(demo)
    refs = ds.select(split="test")[:100]
    rng = random.Random(2)
    records = {}
    for r in refs:
        s = rng.random() * 2 + (0.6 if r.label != "good" else 0.0)
        records[r.key] = SampleRecord(r, image_score=s, threshold=1.0, anomalous=s >= 1.0)
    with Project.open(ds.root, path=tmp / "demo-project.sqlite", import_jsonl=False) as p:
        verdicts = p.verdicts()
    t0 = time.perf_counter()
    out = write_html_report(tmp / "report.html", refs, records, verdicts, dataset=ds, detector="memory-bank")
    dt = time.perf_counter() - t0
    return {"samples": len(refs), "classes": len({r.class_name for r in refs}), "seconds": round(dt, 2),
            "html_bytes": out.stat().st_size}


def main() -> None:
    from core.demo import ensure_demo
    demo = ensure_demo()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print("verdicts:", json.dumps(bench_verdicts(tmp)))
        project = prepare_reopen(tmp, demo)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        for i in range(3):
            out = subprocess.run([sys.executable, "-c", REOPEN, str(demo), str(project)], capture_output=True,
                                 text=True, check=True, env=env, cwd=str(ROOT))
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"reopen {i + 1} (128 cached scores):", json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                                                       for k, v in r.items()}))
        print("html report:", json.dumps(bench_report(tmp, demo)))


if __name__ == "__main__":
    main()
