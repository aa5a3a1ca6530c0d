"""Trained detectors on a dataset: training time and peak memory of one model over all classes, then
``eval`` of each trained detector beside ``memory-bank``, per class (I-AUROC, P-AUROC, AUPRO).

    .venv/bin/python benchmarks/bench_trained.py [--data demo] [--epochs 10] [--out-dir /tmp/ck]
        [--detectors unified-moe,cross-modal] [--skip-train] [--json results.json]

Every step runs the real CLI (``python main.py train`` / ``eval``) in a child process; its wall time
and peak RSS (the child's own ``ru_maxrss``, from ``os.wait4``) are reported.  ``--skip-train`` evaluates the existing
checkpoints ``<out-dir>/<data-name>_<detector>``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB of the child, stdout) of one CLI call; raises on failure."""
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *cmd], stdout=out, stderr=err, text=True, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)          # this child's own rusage (ru_maxrss in KB on Linux)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0, stdout


def per_class(metrics_json: Path) -> dict:
    d = json.loads(metrics_json.read_text())
    return d.get("per_class", d)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="demo")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out-dir", default="/tmp/ck")
    ap.add_argument("--detectors", default="unified-moe,cross-modal")
    ap.add_argument("--baseline", default="memory-bank", help="detector evaluated beside them ('' for none)")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--json", help="write all results here")
    args = ap.parse_args(argv)
    name = Path(args.data).name or "data"
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mmad-bench-trained-"))
    results: dict = {"data": args.data, "epochs": args.epochs, "cpu_count": os.cpu_count(),
                     "loadavg_start": os.getloadavg()[0], "train": {}, "eval": {}}
    for det in [d for d in args.detectors.split(",") if d]:
        ck = out_dir / f"{name}_{det}"
        if not args.skip_train:
            wall, rss, _ = run(["train", "--data", args.data, "--detector", det, "--out", str(ck),
                                "--epochs", str(args.epochs), "--quiet"])
            results["train"][det] = {"seconds": wall, "peak_rss_mb": rss}
            print(f"train {det}: {wall:.0f} s, peak RSS {rss:.0f} MB")
        j = tmp / f"{det}.json"
        wall, rss, _ = run(["eval", "--data", args.data, "--detector", det, "--checkpoint", str(ck), "--json", str(j),
                            "--quiet"])
        results["eval"][det] = {"seconds": wall, "peak_rss_mb": rss, "metrics": per_class(j)}
        print(f"eval {det}: {wall:.0f} s")
    if args.baseline:
        j = tmp / "baseline.json"
        wall, rss, _ = run(["eval", "--data", args.data, "--detector", args.baseline, "--json", str(j), "--quiet"])
        results["eval"][args.baseline] = {"seconds": wall, "peak_rss_mb": rss, "metrics": per_class(j)}
    results["loadavg_end"] = os.getloadavg()[0]
    print(json.dumps(results["eval"], indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
