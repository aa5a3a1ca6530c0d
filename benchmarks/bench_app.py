"""Benchmarks of the workbench window (a script, not a test).

1. **Event-loop stall** while the memory-bank detector fits and scores a demo sample in the worker
   thread: a 5 ms QTimer records the gaps between its ticks; the longest gap is the longest time the
   GUI could not react (target < 100 ms).
2. **Slider → repainted views** for an 800 x 800 map and a 200k-point cloud: the real memory-bank
   ``fuse`` on cached components (a detector subclass returns precomputed 800 x 800 component maps so
   the backbone does not run), then the image composite and the 3D view's next rendered frame
   (target < 50 ms median).  Two cases: *drag* (the slider is held down) and *step* (isolated
   moves, e.g. arrow keys); in both the 3D view draws its decimated preview subset, and the
   full display subset comes back once the slider rests (its frame time is reported too).  Breakdown,
   measured separately: detector fuse (the detector's own cost), 2D heatmap + contour, 3D colour
   update, 3D frame; "Qt side" = total minus fuse.  "Repainted" = the 3D frame is rendered and
   the image viewport has painted the new heatmap.
3. **Peak memory** (max RSS) of the app with the demo dataset open, all thumbnails made, and a few
   samples analysed.

Usage::

    .venv/bin/python benchmarks/bench_app.py [--shots 5] [--moves 30] [--json out.json]
    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/bench_app.py --xcb   # real VTK widget

The machine is shared: the load average is printed with the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xcb", action="store_true", help="use the X11 platform (run under xvfb-run): real VTK widget")
    ap.add_argument("--shots", type=int, default=0, help="support size for the stall benchmark (0: default)")
    ap.add_argument("--moves", type=int, default=30, help="slider moves for the repaint benchmark")
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=800)
    ap.add_argument("--analyse", type=int, default=4, help="samples analysed for the memory benchmark")
    ap.add_argument("--json", help="write the numbers to this file")
    ap.add_argument("--only", choices=("all", "stall", "slider"), default="all",
                    help="run only the event-loop stall + memory part, or only the slider part")
    ap.add_argument("--thread", action="store_true",
                    help="run the detector in a thread of the GUI process instead of the worker process")
    args = ap.parse_args(argv)
    if not args.xcb:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("MMAD_CACHE", str(Path(tempfile.gettempdir()) / "mmad-bench-cache"))

    from PySide6.QtWidgets import QApplication

    app = QApplication([sys.argv[0]])
    from app.main import load_stylesheet

    app.setStyle("Fusion")
    app.setStyleSheet(load_stylesheet())
    results: dict[str, float | str] = {"platform": app.platformName(), "load_avg": os.getloadavg()[0]}

    def pump(cond, timeout=600.0):
        t0 = time.perf_counter()
        while not cond() and time.perf_counter() - t0 < timeout:
            app.processEvents()
            time.sleep(0.002)
        return cond()

    ini_dir = Path(tempfile.mkdtemp(prefix="mmad-bench-"))
    rss0 = rss_mb()

    if args.only != "slider":
        stall_and_memory(args, app, results, pump, ini_dir)
    if args.only != "stall":
        slider_to_views(args, app, results, pump, ini_dir)
    results["peak_rss_mb"] = peak_mb()
    results["rss_start_mb"] = rss0

    w = max(len(k) for k in results)
    for k, v in results.items():
        print(f"{k:<{w}}  {v:.1f}" if isinstance(v, float) else f"{k:<{w}}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def stall_and_memory(args, app, results, pump, ini_dir) -> None:
    """1 + 3: the demo data and the real detector."""
    import numpy as np
    from PySide6.QtCore import QTimer

    from app.main_window import MainWindow
    from app.settings import Settings
    from core.demo import ensure_demo
    from core.session import ProcessBackend, Session, ThreadBackend

    t = time.perf_counter()
    demo = ensure_demo()
    results["demo_ready_s"] = time.perf_counter() - t
    backend = ThreadBackend() if args.thread else ProcessBackend()
    results["backend"] = type(backend).__name__
    win = MainWindow(Settings(ini_dir / "a.ini"), Session(detector="memory-bank", backend=backend),
                     restore_layout=False)
    win.resize(1600, 1000)
    win.show()
    win.detector_panel.auto_run.setChecked(False)
    assert win.open_folder(demo), win.banner.text()
    results["rss_window_mb"] = rss_mb()
    # thumbnails of every sample (the browser asks for the visible ones; ask for all)
    for r in win.session.refs:
        win.dataset.want_thumbnail(r.key)
    pump(lambda: len(win.dataset.thumbs) >= len(win.session.refs), 300)
    results["rss_open_thumbs_mb"] = rss_mb()

    bad = next(r for r in win.session.refs if r.split == "test" and not r.is_good)
    if args.shots:
        win.analysis.set_support(bad.class_name, win.session.support_candidates(bad.class_name)[:args.shots])
    win.browser.select_key(bad.key)
    pump(lambda: win.inspector.sample is not None, 60)
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timeline: list[tuple[float, str]] = []
    win.runner.progress.connect(lambda f, m, e: timeline.append((time.perf_counter(), f"progress {f:.2f} {m}")))
    win.resultShown.connect(lambda k: timeline.append((time.perf_counter(), "result shown")))
    win.runner.finished.connect(lambda _job: timeline.append((time.perf_counter(), "job idle")))
    ends: list[float] = []
    gaps_at = ends
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: (tick(), ends.append(time.perf_counter())))
    timer.start()
    t = time.perf_counter()
    win.analysis.run_current(force=True)
    pump(lambda: not win.runner.busy and win.inspector.result is not None, 900)
    job_s = time.perf_counter() - t
    timer.stop()
    results["stall_job_s"] = job_s
    results["stall_job"] = win.status.timing.text()
    results["stall_max_ms"] = max(gaps) * 1000
    results["stall_p99_ms"] = float(np.percentile(gaps, 99) * 1000)
    results["stall_ticks"] = len(gaps)
    for g, t_end in sorted(zip(gaps, gaps_at), reverse=True)[:4]:
        before = [m for (te, m) in timeline if te <= t_end]
        print(f"  gap {g * 1000:6.1f} ms at +{t_end - t:6.2f} s, last event: {before[-1] if before else '-'}")

    refs = [r for r in win.session.refs if r.split == "test" and r.class_name == bad.class_name][:args.analyse]
    t = time.perf_counter()
    win.session.run(refs)
    results["analyse_s_per_sample"] = (time.perf_counter() - t) / max(len(refs), 1)
    results["rss_after_analysis_mb"] = rss_mb()
    if win.session.backend.pid:
        import psutil
        results["worker_rss_mb"] = psutil.Process(win.session.backend.pid).memory_info().rss / 2**20
    results["session_cache_mb"] = win.session.memory_bytes() / 2**20
    print({k: (round(v, 1) if isinstance(v, float) else v) for k, v in results.items()}, flush=True)
    win.close()


def slider_to_views(args, app, results, pump, ini_dir) -> None:
    """2: slider → repainted views at 800 x 800 / 200k points."""
    import numpy as np

    from app.main_window import MainWindow
    from app.settings import Settings
    from core.datasets.base import Dataset, SampleRef
    from core.detectors import registry
    from core.detectors.base import Components, Needs
    from core.sample import Sample
    from core.session import Session

    MB = registry.get("memory-bank")
    n = args.size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:n, :n].astype(np.float32)
    radius = np.sqrt(args.points / np.pi)
    valid = np.hypot(yy - n / 2, xx - n / 2) < radius
    pts = np.full((n, n, 3), np.nan, np.float32)
    pts[valid] = np.stack([xx[valid], yy[valid], 300 - 0.002 * ((yy[valid] - n / 2) ** 2 + (xx[valid] - n / 2) ** 2)], -1)
    rgb = (rng.random((n, n, 3)) * 60 + 90).astype(np.uint8)

    def smooth_field(seed):
        import cv2
        f = np.random.default_rng(seed).normal(size=(n // 8, n // 8)).astype(np.float32)
        return cv2.resize(f, (n, n), interpolation=cv2.INTER_CUBIC) * 0.5 + 0.5

    comp_rgb = smooth_field(1)
    comp_geo = np.where(valid, smooth_field(2), np.nan).astype(np.float32)

    class Precomputed(MB):
        """memory-bank's fuse on precomputed 800 x 800 components (no backbone)."""
        id = "bench-precomputed"
        needs = Needs(rgb="optional", points="optional", support=0)

        def fit(self, support, progress=None, cancel=None):
            self.fitted = True

        def extract(self, sample, progress=None, cancel=None):
            return Components(maps={"rgb": comp_rgb, "geometry": comp_geo}, shape=(n, n), valid=valid)

    class Big(Dataset):
        def load(self, ref):
            return Sample(ref.id, ref.class_name, "good", "test", rgb=rgb, points=pts)

    registry.register(Precomputed)
    ds = Big(Path(ini_dir) / "big", [SampleRef("000", "big", "test", "good")])
    sess = Session(detector="bench-precomputed")
    win = MainWindow(Settings(ini_dir / "b.ini"), sess, restore_layout=False)
    win.resize(1600, 1000)
    win.show()
    win.set_dataset(ds)
    assert pump(lambda: win.inspector.result is not None and not win.runner.busy, 120), win.banner.text()
    results["cloud_points"] = int(valid.sum())
    results["cloud_backend"] = win.inspector.cloud_view.backend
    frames: list[float] = []
    win.inspector.cloud_view.frameRendered.connect(lambda ms: frames.append(time.perf_counter()))
    pump(lambda: False, 1.0)
    slider = win.fusion_panel.editor("rgb_weight").slider
    det = sess.instance("big")
    comps = sess.components_of(ds.refs[0].key)
    shown: list[float] = []      # resultShown times
    painted: list[float] = []    # image viewport paints that follow a resultShown
    win.resultShown.connect(lambda k: shown.append(time.perf_counter()))
    win.inspector.image_view.painted.connect(lambda: painted.append(time.perf_counter()) if shown else None)
    swapped: list[float] = []    # interactor: the window composited the GL frame (on screen)
    if win.inspector.cloud_view.backend == "interactor":
        win.inspector.cloud_view.plotter.frameSwapped.connect(lambda: swapped.append(time.perf_counter()))
    step = [0]

    def move(gap_s: float) -> tuple[float, float, float, int, float]:
        """One slider move; returns (to both views repainted ms, to 2D repainted ms, 3D frame ms,
        points drawn, to the window's next GL composition after both (interactor only) ms)."""
        i = step[0]
        step[0] += 1
        v = slider.maximum() * (0.2 + 0.6 * ((i * 7) % 11) / 10)
        if int(v) == slider.value():
            v += 1
        nf = len(frames)
        shown.clear()
        painted.clear()
        swapped.clear()
        t0 = time.perf_counter()
        slider.setValue(int(v))
        ok = pump(lambda: len(frames) > nf and bool(painted), 10)
        t2 = painted[0] if painted else float("nan")
        t_both = max(frames[nf], t2) if ok else float("nan")
        on_screen = float("nan")
        if win.inspector.cloud_view.backend == "interactor" and ok:
            pump(lambda: any(t >= t_both for t in swapped), 2)
            on_screen = (min((t for t in swapped if t >= t_both), default=float("nan")) - t0) * 1000
        out = ((t_both - t0) * 1000, (t2 - t0) * 1000,
               win.inspector.cloud_view.last_frame_ms, win.inspector.cloud_view.displayed_count, on_screen)
        pump(lambda: False, gap_s)
        return out

    for case, down, gap in (("drag", True, 0.03), ("step", False, 0.35)):
        slider.setSliderDown(down)          # as while the user holds the handle
        move(gap)                           # settle into the mode
        rows = [move(gap) for _ in range(args.moves)]
        slider.setSliderDown(False)
        pump(lambda: not win.inspector.cloud_view.preview_active, 2.0)
        pump(lambda: False, 0.4)
        tot = [r[0] for r in rows]
        results[f"{case}_slider_to_views_median_ms"] = float(np.nanmedian(tot))
        results[f"{case}_slider_to_views_p90_ms"] = float(np.nanpercentile(tot, 90))
        results[f"{case}_slider_to_2d_median_ms"] = float(np.nanmedian([r[1] for r in rows]))
        results[f"{case}_3d_frame_median_ms"] = float(np.nanmedian([r[2] for r in rows]))
        results[f"{case}_3d_points_drawn"] = int(np.median([r[3] for r in rows]))
        if win.inspector.cloud_view.backend == "interactor":
            results[f"{case}_slider_to_screen_median_ms (GL composited)"] = float(np.nanmedian([r[4] for r in rows]))
    results["preview_restored"] = str(not win.inspector.cloud_view.preview_active)
    full = []
    for _ in range(5):
        nf = len(frames)
        win.inspector.cloud_view.set_preview(True)
        win.inspector.cloud_view.set_preview(False)
        pump(lambda: len(frames) > nf, 5)
        full.append(win.inspector.cloud_view.last_frame_ms)
        pump(lambda: False, 0.1)
    results["full_subset_3d_frame_median_ms"] = statistics.median(full)
    results["full_subset_3d_points"] = int(win.inspector.cloud_view.displayed_count)

    # Breakdown, measured separately so the numbers above are undisturbed.
    fuse_ms, heat_ms, colors_ms, colors_prev_ms = [], [], [], []
    res = det.fuse(comps)
    from core.session import score_range
    vmin, vmax = score_range(res)
    for i in range(max(args.moves // 2, 5)):
        t = time.perf_counter()
        res = det.fuse(comps)
        fuse_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        win.inspector.image_view.set_heatmap(res.pixel_map, vmin, vmax, threshold=res.threshold)
        heat_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        win.inspector.cloud_view.set_scores(res.point_scores, vmin, vmax, threshold=res.threshold)
        colors_ms.append((time.perf_counter() - t) * 1000)
        win.inspector.cloud_view.set_preview(True)
        t = time.perf_counter()
        win.inspector.cloud_view.set_scores(res.point_scores, vmin, vmax, threshold=res.threshold)
        colors_prev_ms.append((time.perf_counter() - t) * 1000)
        win.inspector.cloud_view.set_preview(False)
        pump(lambda: False, 0.05)
    med = statistics.median
    results["fuse_800_median_ms (detector)"] = med(fuse_ms)
    results["image_set_heatmap_median_ms"] = med(heat_ms)
    results["cloud_set_scores_full_median_ms"] = med(colors_ms)
    results["cloud_set_scores_preview_median_ms"] = med(colors_prev_ms)
    for case in ("drag", "step"):
        results[f"{case}_qt_side_median_ms (total - fuse)"] = results[f"{case}_slider_to_views_median_ms"] - med(fuse_ms)
    results["window_fusion_ms_last"] = win.analysis.last_fusion_ms or float("nan")
    win.close()
    registry.unregister(Precomputed.id)


if __name__ == "__main__":
    sys.exit(main())
