"""Benchmark of ``memory-bank`` on real photographs (and the synthetic demo): quality per defect kind.

For each data set, class and number of shots: fit on the first K ``train/good`` samples, score
every test sample once (RGB only on RGB-only sets, the detector's default fusion on the demo), and
report per defect kind (good test parts vs that kind) and for all kinds together:

* I-AUROC, P-AUROC, AUPRO@30 % and @1 % (:mod:`core.metrics`);
* ``max-in``: the fraction of defective maps whose maximum lies inside the defect mask;
* ``FA``: the false-alarm rate of the good test parts at the threshold the detector reports
  (``threshold`` = 0: calibrated on held-out good parts, ``validation/good`` and the
  ``train/good`` ones the support left out, else the support's leave-one-out scores), and that threshold;
* ``s/sample``: extract + fuse seconds per test sample (and the fit seconds).

Usage::

    python benchmarks/bench_real.py                                   # grid + hazelnut, 1/5/all shots
    python benchmarks/bench_real.py --sets grid --shots 5 --set rgb_mode=texture
    python benchmarks/bench_real.py --sets demo --demo-seed 7         # a demo made with another seed
    python benchmarks/bench_real.py --json out.json

Real sets are read by path from ``MMAD_REAL_DATA`` (default ``/work/shared/data/real``); they are
never copied.  Timings are only comparable at low machine load (printed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import metrics as M                      # noqa: E402
from core.datasets import open_dataset             # noqa: E402
from core.detectors import create                  # noqa: E402

REAL = Path(os.environ.get("MMAD_REAL_DATA", "/work/shared/data/real"))
SETS = {"grid": REAL / "mvtec_ad" / "grid", "hazelnut": REAL / "hazelnut_toy"}


def _safe(fn, *a) -> float:
    try:
        return float(fn(*a))
    except Exception:  # noqa: BLE001 - an undefined metric (one class only) is reported as NaN
        return float("nan")


def kind_metrics(rows: list[dict], kind: str | None) -> dict:
    """Metrics of good parts vs one defect ``kind`` (None: every kind)."""
    good = [r for r in rows if r["good"]]
    bad = [r for r in rows if not r["good"] and (kind is None or r["kind"] == kind)]
    sel = good + bad
    labels = [0] * len(good) + [1] * len(bad)
    scores = [r["score"] for r in sel]
    masks = [r["mask"] for r in sel]
    maps = [r["map"] for r in sel]
    out = {"n_good": len(good), "n_bad": len(bad),
           "image_auroc": _safe(M.image_auroc, labels, scores)}
    if all(m is not None for m in maps) and all(m is not None for m in masks):
        out["pixel_auroc"] = _safe(M.pixel_auroc, masks, maps)
        out["aupro_30"] = _safe(M.aupro_30, masks, maps)
        out["aupro_1"] = _safe(M.aupro_1, masks, maps)
        inside = [bool(r["mask"].flat[int(np.nanargmax(r["map"]))]) for r in bad if r["mask"].any()]
        out["max_in_defect"] = float(np.mean(inside)) if inside else float("nan")
    thr = [r["threshold"] for r in sel if r["threshold"] is not None]
    out["threshold"] = float(np.median(thr)) if thr else float("nan")
    out["false_alarm_rate"] = (float(np.mean([r["score"] >= r["threshold"] for r in good]))
                               if good and thr else float("nan"))
    out["detection_rate"] = (float(np.mean([r["score"] >= r["threshold"] for r in bad]))
                             if bad and thr else float("nan"))
    out["seconds_per_sample"] = float(np.mean([r["seconds"] for r in sel])) if sel else float("nan")
    return out


def write_pictures(rows: list[dict], out: Path, n: int, tag: str) -> list[Path]:
    """For the first ``n`` defective samples, one picture image | mask | map (the map coloured over
    the sample's own range, the calibrated threshold drawn as the map's contour)."""
    import cv2
    from core.colormaps import apply_colormap
    out.mkdir(parents=True, exist_ok=True)
    written = []
    bad = [r for r in rows if not r["good"] and r["map"] is not None and r["mask"] is not None]
    firsts = list({r["kind"]: r for r in reversed(bad)}.values())[::-1]     # one per defect kind first
    chosen = (firsts + [r for r in bad if all(r is not f for f in firsts)])[:n]
    for r in chosen:
        h = 320
        def fit(a):
            return cv2.resize(a, (int(round(a.shape[1] * h / a.shape[0])), h), interpolation=cv2.INTER_AREA)
        rgb = fit(r["rgb"] if r["rgb"].ndim == 3 else np.repeat(r["rgb"][..., None], 3, -1))
        mask = fit((r["mask"].astype(np.uint8) * 255)[..., None].repeat(3, -1))
        m = r["map"].astype(np.float32)
        v = m[np.isfinite(m)]
        heat = fit(apply_colormap(m, float(np.percentile(v, 1)), float(np.percentile(v, 99.5)), "inferno"))
        if r["threshold"] is not None and np.isfinite(r["threshold"]):
            over = fit((np.nan_to_num(m) >= r["threshold"]).astype(np.uint8) * 255)
            cs, _ = cv2.findContours((over > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            heat = np.ascontiguousarray(heat)
            cv2.drawContours(heat, cs, -1, (0, 255, 255), 1)
        pic = np.hstack([rgb, np.full((h, 4, 3), 255, np.uint8), mask, np.full((h, 4, 3), 255, np.uint8), heat])
        path = out / f"{tag}_{r['kind']}_{r['id']}.png"
        cv2.imwrite(str(path), pic[..., ::-1])
        written.append(path)
    return written


def run_class(ds, cls: str, shots: int, params: dict, fuse_params: dict,
              validation: bool = True, keep_images: bool = False) -> tuple[list[dict], float, int, dict]:
    refs = ds.select([cls], split="train")
    n_train = len([r for r in refs if r.is_good])
    k = n_train if shots <= 0 else min(shots, n_train)
    det = create("memory-bank", **params)
    support_refs = ds.support_refs(cls, k)
    support = [ds.load(r) for r in support_refs]
    t0 = time.perf_counter()
    det.fit(support, class_name=cls)
    val = ds.calibration_refs(cls, support_refs) if validation else []
    if val:   # threshold calibration on good parts the bank never saw (as the Session does)
        det.calibrate([det.extract(ds.load(r)) for r in val])
    fit_s = time.perf_counter() - t0
    rows = []
    for ref in ds.select([cls], split="test"):
        s = ds.load(ref)
        t0 = time.perf_counter()
        r = det.fuse(det.extract(s), fuse_params)
        dt = time.perf_counter() - t0
        mask = s.pixel_gt() if s.grid_shape is not None else None
        pm = r.pixel_map
        if pm is not None and mask is not None and pm.shape != mask.shape:
            from core.sample import resize_map
            pm = resize_map(pm, mask.shape)
        rows.append({"good": not s.is_anomalous, "kind": ref.label, "score": float(r.image_score),
                     "threshold": r.threshold, "mask": mask, "map": pm, "seconds": dt, "id": ref.id,
                     "rgb": s.rgb if keep_images else None})
    return rows, fit_s, k, dict(det.state.meta) if det.state is not None else {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["grid", "hazelnut"], help="grid, hazelnut, demo or folders")
    ap.add_argument("--shots", nargs="+", type=int, default=[1, 5, 0], help="0 = every train/good sample")
    ap.add_argument("--classes", nargs="+", help="only these classes")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="detector parameter")
    ap.add_argument("--demo-seed", type=int, default=None, help="generate the demo with this seed")
    ap.add_argument("--no-validation", action="store_true",
                    help="calibrate on the support's leave-one-out scores even where held-out good parts exist")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--pictures", help="write image | mask | map pictures of defective samples to this folder "
                                       "(never commit pictures of licensed data)")
    ap.add_argument("--n-pictures", type=int, default=3, help="pictures per class and shot count")
    args = ap.parse_args(argv)
    from core.detectors.aliases import migrate_params
    params = migrate_params("memory-bank", dict(a.split("=", 1) for a in args.set), strict=True)
    fuse_keys = {"rgb_weight", "agreement_weight", "max_weight", "sigma_pct", "threshold", "image_top_fraction",
                 "false_alarm_rate", "calibration_confidence"}
    fit_params = {k: v for k, v in params.items() if k not in fuse_keys}
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    results = []
    for name in args.sets:
        if name == "demo":
            from core.demo import ensure_demo, generate_demo
            if args.demo_seed is not None:
                import tempfile
                path = generate_demo(Path(tempfile.mkdtemp(prefix="mmad-demo-")) / "demo", seed=args.demo_seed)
            else:
                path = ensure_demo()
            fuse = {k: v for k, v in params.items() if k in fuse_keys}
        else:
            path = SETS.get(name, Path(name))
            if not path.exists():
                print(f"skip {name}: {path} not found")
                continue
            rgb_only = path.name != "demo"       # a demo folder made earlier keeps the demo's fusion
            fuse = {**({"rgb_weight": 1.0} if rgb_only else {}), **{k: v for k, v in params.items() if k in fuse_keys}}
        ds = open_dataset(path)
        for shots in args.shots:
            for cls in [c for c in ds.classes if not args.classes or c in args.classes]:
                rows, fit_s, k, meta = run_class(ds, cls, shots, fit_params, fuse, not args.no_validation,
                                                 keep_images=bool(args.pictures))
                if args.pictures:
                    for p in write_pictures(rows, Path(args.pictures), args.n_pictures, f"{name}_{cls}_{k}shot"):
                        print(f"picture: {p}")
                kinds = sorted({r["kind"] for r in rows if not r["good"]})
                for kind in [None] + kinds:
                    m = kind_metrics(rows, kind)
                    m.update(set=name, cls=cls, shots=k, kind=kind or "all", fit_seconds=fit_s,
                             rgb_mode=meta.get("rgb_mode"))
                    results.append(m)
                    print(f"{name:9s} {cls:10s} {k:3d}-shot {m['kind']:20s} I {m['image_auroc']:.3f}  "
                          f"P {m.get('pixel_auroc', float('nan')):.3f}  PRO30 {m.get('aupro_30', float('nan')):.3f}  "
                          f"PRO1 {m.get('aupro_1', float('nan')):.3f}  max-in {m.get('max_in_defect', float('nan')):.2f}  "
                          f"FA {m['false_alarm_rate']:.2f} @ {m['threshold']:.2f}  "
                          f"det {m['detection_rate']:.2f}  {m['seconds_per_sample']:.2f} s/sample  "
                          f"(fit {fit_s:.1f} s, {meta.get('rgb_mode')})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
