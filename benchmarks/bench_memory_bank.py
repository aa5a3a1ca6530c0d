"""Benchmark of the ``memory-bank`` detector: quality and speed.

Quality (few-shot, MVTec 3D-AD protocol): for every class, fit on the first K ``train/good``
samples, score every ``test`` sample once, then re-fuse the *same* components three ways
(fusion is cheap): RGB only (rgb_weight = 1), 3D only (rgb_weight = 0) and fused (the detector's defaults).
Reports per-class and mean I-AUROC, P-AUROC, AUPRO@30%, point AUROC, s/sample, and the image AUROC
of each defect kind (good vs that kind).

Speed: fit time, per-sample time with a breakdown (load, 3D preprocessing, FPFH/3D descriptors,
RGB descriptors, nearest-neighbour search, fusion), and the same on a synthetic 800 x 800 organized
sample (the demo renderer at MVTec 3D-AD resolution), plus the fusion-only re-apply time.

Usage::

    python benchmarks/bench_memory_bank.py                      # demo data (generated/cached)
    python benchmarks/bench_memory_bank.py --data DIR --shots 5 --classes cookie tube
    python benchmarks/bench_memory_bank.py --set rgb_weight=0.6 --set coreset_ratio=0.1 --json out.json

Report the machine load (printed) with the timings: the numbers are only comparable at low load.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import metrics as M                                   # noqa: E402
from core.detectors import create                               # noqa: E402
from core.detectors.memory_bank import detector as mbd          # noqa: E402
from core.sample import GOOD, Sample                            # noqa: E402

# ------------------------------------------------------------------------------ timing breakdown
TIMES: dict[str, float] = defaultdict(float)
_WRAPPED = {
    "3d preprocessing": ("remove_background_plane", "voxel_downsample", "point_spacing"),
    "3d descriptors (normals+FPFH+shape)": ("geometry_descriptors", "neighbour_counts"),
    "rgb descriptors": ("rgb_descriptors",),
    "nn search (+3d score smoothing)": ("nn_distance", "smooth_points"),
}


def _install_timers() -> None:
    for cat, names in _WRAPPED.items():
        for name in names:
            fn = getattr(mbd, name)

            def wrapper(*a, __fn=fn, __cat=cat, **k):
                t = time.perf_counter()
                try:
                    return __fn(*a, **k)
                finally:
                    TIMES[__cat] += time.perf_counter() - t
            setattr(mbd, name, wrapper)


@contextlib.contextmanager
def timed(cat: str):
    t = time.perf_counter()
    yield
    TIMES[cat] += time.perf_counter() - t


def load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


# ------------------------------------------------------------------------------ data
def open_data(root: Path):
    """The dataset at ``root`` (any layout :func:`core.datasets.open_dataset` knows)."""
    from core.datasets import open_dataset
    return open_dataset(root)


def ensure_data(path: str | None) -> Path:
    if path:
        return Path(path)
    from core.demo import ensure_demo
    return Path(ensure_demo())


# ------------------------------------------------------------------------------ evaluation
def metrics_for(items: list[dict], key: str) -> dict:
    labels = [it["label"] != GOOD for it in items]
    scores = [it[key]["image"] for it in items]
    out = {"image_auroc": M.image_auroc(labels, scores)}
    px = [(it["gt"], it[key]["map"]) for it in items if it["gt"] is not None and it[key]["map"] is not None]
    if px:
        out["pixel_auroc"] = M.pixel_auroc([g for g, _ in px], [m for _, m in px])
        out["aupro_30"] = M.aupro_30([g for g, _ in px], [m for _, m in px])
    pt = [(it["pgt"], it[key]["points"]) for it in items if it["pgt"] is not None and it[key]["points"] is not None]
    if pt:
        out["point_auroc"] = M.point_auroc([g for g, _ in pt], [s for _, s in pt])
    kinds = sorted({it["label"] for it in items} - {GOOD})
    for k in kinds:
        sub = [it for it in items if it["label"] in (GOOD, k)]
        out[f"I:{k}"] = M.image_auroc([it["label"] != GOOD for it in sub], [it[key]["image"] for it in sub])
    return out


MODES = {"rgb": dict(rgb_weight=1.0), "3d": dict(rgb_weight=0.0), "fused": {}}


def run_quality(root: Path, shots: int, classes, params: dict) -> dict:
    ds = open_data(root)
    classes = classes or ds.classes
    results = {}
    for cls in classes:
        det = create("memory-bank", **params)
        t = time.perf_counter()
        with timed("load (support)"):
            support = [ds.load(r) for r in ds.support_refs(cls, shots)]
        t_load = time.perf_counter() - t
        t = time.perf_counter()
        det.fit(support)
        fit_s = time.perf_counter() - t
        items = []
        TIMES.clear()
        per_sample = []
        for ref in ds.select([cls], split="test"):
            t0 = time.perf_counter()
            with timed("load"):
                s = ds.load(ref)
            comps = det.extract(s)
            with timed("fusion"):
                res = det.fuse(comps)
            per_sample.append(time.perf_counter() - t0)
            it = {"label": s.label, "gt": s.pixel_gt(), "pgt": s.point_gt()}
            for mode, over in MODES.items():
                r = res if not over else det.fuse(comps, over)
                it[mode] = {"image": r.image_score, "map": r.pixel_map, "points": r.point_scores}
            items.append(it)
        m = {mode: metrics_for(items, mode) for mode in MODES}
        n = len(per_sample)
        results[cls] = {"metrics": m, "fit_s": fit_s, "support_load_s": t_load, "s_per_sample": float(np.mean(per_sample)),
                        "n_test": n, "breakdown": {k: v / n for k, v in TIMES.items()},
                        "bank": {k: [int(b.features.shape[0]), int(b.n_full)] for k, b in det._banks.items()},
                        "voxel": det._voxel}
        f = m["fused"]
        print(f"[{cls}] fit {fit_s:.2f}s  {results[cls]['s_per_sample']:.2f} s/sample  "
              f"I {f['image_auroc']:.3f}  P {f.get('pixel_auroc', float('nan')):.3f}  "
              f"PRO {f.get('aupro_30', float('nan')):.3f}  Pt {f.get('point_auroc', float('nan')):.3f}  "
              f"(rgb I {m['rgb']['image_auroc']:.3f}, 3d I {m['3d']['image_auroc']:.3f})  load {load_avg()}",
              flush=True)
    return results


def print_tables(results: dict) -> None:
    cols = ("image_auroc", "pixel_auroc", "aupro_30", "point_auroc")
    for mode in MODES:
        print(f"\n== {mode} ==")
        print(f"{'class':<10} {'I-AUROC':>8} {'P-AUROC':>8} {'AUPRO30':>8} {'Pt-AUROC':>8} {'s/sample':>8}")
        rows = []
        for cls, r in results.items():
            m = r["metrics"][mode]
            vals = [m.get(c, float("nan")) for c in cols]
            rows.append(vals + [r["s_per_sample"]])
            print(f"{cls:<10} " + " ".join(f"{v:>8.3f}" for v in vals) + f" {r['s_per_sample']:>8.2f}")
        mean = np.nanmean(np.array(rows, float), axis=0)
        print(f"{'mean':<10} " + " ".join(f"{v:>8.3f}" for v in mean[:-1]) + f" {mean[-1]:>8.2f}")
        kinds = sorted({k for r in results.values() for k in r["metrics"][mode] if k.startswith("I:")})
        per_kind = {k: np.nanmean([r["metrics"][mode].get(k, np.nan) for r in results.values()]) for k in kinds}
        print("per defect kind I-AUROC (mean over classes): "
              + "  ".join(f"{k[2:]} {v:.3f}" for k, v in per_kind.items()))
    print("\nper-sample time breakdown (s, mean over classes):")
    cats = sorted({k for r in results.values() for k in r["breakdown"]})
    for c in cats:
        print(f"  {c:<38} {np.mean([r['breakdown'].get(c, 0.0) for r in results.values()]):.3f}")
    print(f"fit (5-shot) mean {np.mean([r['fit_s'] for r in results.values()]):.2f} s;"
          f" bank sizes {[r['bank'] for r in results.values()][:1]}")


# ------------------------------------------------------------------------------ 800 x 800
def run_large(size: int = 800, shots: int = 3, unit: float = 1.0, params: dict | None = None) -> dict:
    from core.demo import render_part, sample_defect, sample_part

    def to_sample(rend, i, label=GOOD):
        xyz = rend.xyz.astype(np.float32).copy()
        xyz[(xyz == 0).all(-1)] = np.nan
        return Sample(id=f"{i}", class_name="cookie", label=label, rgb=rend.rgb, points=xyz * unit,
                      gt_mask=rend.gt)

    support = [to_sample(render_part(sample_part("cookie", np.random.default_rng(100 + i)), None, size=size), i)
               for i in range(shots)]
    part = sample_part("cookie", np.random.default_rng(7))
    test = to_sample(render_part(part, sample_defect(part, "bump", np.random.default_rng(8)), size=size), 99, "bump")
    det = create("memory-bank", **(params or {}))
    t = time.perf_counter()
    det.fit(support)
    fit_s = time.perf_counter() - t
    det.extract(test)  # warm-up
    TIMES.clear()
    reps = 3
    t = time.perf_counter()
    for _ in range(reps):
        comps = det.extract(test)
    extract_s = (time.perf_counter() - t) / reps
    breakdown = {k: v / reps for k, v in TIMES.items()}
    t = time.perf_counter()
    n = 20
    for i in range(n):
        det.fuse(comps, dict(rgb_weight=0.3 + 0.02 * i, sigma_pct=0.75 + 0.04 * i))
    fuse_s = (time.perf_counter() - t) / n
    r = det.fuse(comps)
    gt = test.gt_mask
    inside = float(np.median(r.pixel_map[gt])) if gt.any() else float("nan")
    outside = float(np.percentile(r.pixel_map[~gt & np.isfinite(test.points).all(-1)], 99))
    out = {"size": size, "unit": unit, "fit_s": fit_s, "extract_s": extract_s, "fuse_s": fuse_s,
           "breakdown": breakdown, "n_points": test.n_points, "voxel": det._voxel,
           "bump_median": inside, "good_p99": outside, "pixel_auroc": M.pixel_auroc([gt], [r.pixel_map])}
    print(f"[{size}x{size}, unit x{unit}] fit({shots}) {fit_s:.2f}s  extract {extract_s:.2f}s  "
          f"fusion-only {1000 * fuse_s:.1f} ms  points {test.n_points}  voxel {det._voxel:.4g}  "
          f"bump median {inside:.2f} vs good p99 {outside:.2f}  P-AUROC {out['pixel_auroc']:.3f}  load {load_avg()}")
    for k, v in breakdown.items():
        print(f"    {k:<38} {v:.3f}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="dataset folder (default: the demo dataset, generated once)")
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--classes", nargs="*")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="detector parameter")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--json", help="write all numbers to this file")
    a = ap.parse_args(argv)
    from core.detectors.aliases import migrate_params
    params = migrate_params("memory-bank", dict(kv.split("=", 1) for kv in a.set), strict=True)
    _install_timers()
    print(f"load average at start: {load_avg()}  (cpus: {os.cpu_count()})")
    out = {"params": params, "load_start": load_avg()}
    if not a.skip_quality:
        root = ensure_data(a.data)
        print(f"data: {root}  shots: {a.shots}  params: {params or 'defaults'}")
        t = time.perf_counter()
        out["quality"] = run_quality(root, a.shots, a.classes, params)
        print_tables(out["quality"])
        print(f"quality run: {time.perf_counter() - t:.0f} s")
    if not a.skip_large:
        out["large_mm"] = run_large(params=params)
        out["large_m"] = run_large(unit=1e-3, params=params)
    out["load_end"] = load_avg()
    print(f"load average at end: {out['load_end']}")
    if a.json:
        def conv(o):
            return float(o) if isinstance(o, (np.floating,)) else str(o)
        Path(a.json).write_text(json.dumps(out, indent=1, default=conv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
