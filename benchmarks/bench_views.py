"""Benchmark of the central views (a script, not a test).

Measures, as medians over repeated runs:

* ImageView, 800 x 800: an opacity-slider move (re-blend + QImage/QPixmap), the same followed by
  a synchronous repaint of the viewport, a new heatmap (colour mapping) and a threshold move
  (cv2.findContours + QPainterPath);
* CloudView, off-screen backend: ``set_scores`` + render at 200k and 1M points (displayed
  decimated to the default 300k, and 1M displayed in full), and a camera orbit + render;
* the same for the real ``QtInteractor`` backend under Xvfb when ``xvfb-run`` exists (run in a
  subprocess with ``QT_QPA_PLATFORM=xcb``).

Usage::

    .venv/bin/python benchmarks/bench_views.py            # everything
    .venv/bin/python benchmarks/bench_views.py --quick    # fewer repeats, no 1M full display
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _median_ms(fn, repeats: int) -> float:
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def bench_image(repeats: int) -> list[tuple[str, float]]:
    import numpy as np

    from app.views.image_view import ImageView

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (800, 800, 3), dtype=np.uint8)
    heat = rng.random((800, 800)).astype(np.float32)
    heat[:100] = np.nan
    view = ImageView()
    view.resize(900, 900)
    view.show()
    view.set_image(rgb)
    view.set_heatmap(heat, 0.0, 1.0)
    view.set_threshold(0.99)
    alphas = np.linspace(0.0, 1.0, repeats)
    rows = [
        ("image 800x800: opacity slider move (blend + QImage)",
         _median_ms(lambda i: view.set_opacity(alphas[i]), repeats)),
        ("image 800x800: opacity move + viewport paint (grab)",
         _median_ms(lambda i: (view.set_opacity(alphas[i]), view.viewport().grab()), repeats)),
        ("image 800x800: new heatmap (colour mapping)",
         _median_ms(lambda i: view.set_heatmap(heat * (1 + 0.01 * i), 0.0, 1.0), max(repeats // 3, 3))),
        ("image 800x800: threshold move (contours, noisy map)",
         _median_ms(lambda i: view.set_threshold(0.9 + 0.001 * i), max(repeats // 3, 3))),
    ]
    view.close()
    return rows


def bench_cloud(backend_label: str, sizes: list[tuple[int, int]], repeats: int) -> list[tuple[str, float]]:
    import numpy as np
    from PySide6.QtWidgets import QApplication

    from app.views.cloud_view import CloudView

    rows = []
    rng = np.random.default_rng(0)
    for n, max_display in sizes:
        pts = rng.normal(size=(n, 3)).astype(np.float32)
        view = CloudView(max_display_points=max_display)
        view.resize(800, 600)
        view.show()
        for _ in range(5):
            QApplication.processEvents()
        if view.backend != backend_label:
            raise SystemExit(f"expected the {backend_label} backend, got {view.backend}")
        t0 = time.perf_counter()
        view.set_cloud(pts)
        view.render_now()
        first = (time.perf_counter() - t0) * 1000.0
        scores = [rng.random(n).astype(np.float32) for _ in range(2)]

        def frame(i):
            view.set_scores(scores[i % 2], 0.0, 1.0)
            view.render_now()

        shown = len(view.display_indices)
        label = f"{n // 1000}k pts" + (f" (shown {shown // 1000}k)" if shown != n else "")
        rows.append((f"cloud {backend_label}: {label}: set_cloud + first frame", first))
        rows.append((f"cloud {backend_label}: {label}: set_scores + render", _median_ms(frame, repeats)))
        rows.append((f"cloud {backend_label}: {label}: orbit + render",
                     _median_ms(lambda i: (view.orbit(10, 0), view.render_now()), repeats)))
        view.close()
    return rows


def _print_table(title: str, rows: list[tuple[str, float]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n{title}")
    print(f"{'measure':<{width}}  median ms")
    print("-" * (width + 11))
    for name, ms in rows:
        print(f"{name:<{width}}  {ms:9.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats, skip 1M points shown in full")
    ap.add_argument("--interactor-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    repeats = 5 if args.quick else 11
    sizes = [(200_000, 300_000), (1_000_000, 300_000)]
    if not args.quick:
        sizes.append((1_000_000, 1_000_000))

    if args.interactor_child:
        from PySide6.QtWidgets import QApplication

        app = QApplication([])  # noqa: F841
        rows = bench_cloud("interactor", sizes, repeats)
        print("JSON" + json.dumps(rows))
        return

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication([])  # noqa: F841
    print(f"Qt platform: {QApplication.platformName()}; cpus: {os.cpu_count()}")
    rows = bench_image(max(repeats * 3, 21))
    rows += bench_cloud("offscreen", sizes, repeats)
    _print_table("Views (offscreen platform)", rows)

    if shutil.which("xvfb-run") is None:
        print("\nxvfb-run not found: interactor backend not measured")
        return
    env = dict(os.environ, QT_QPA_PLATFORM="xcb")
    env.pop("MMAD_FORCE_OFFSCREEN_3D", None)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", sys.executable, __file__, "--interactor-child"]
    if args.quick:
        cmd.append("--quick")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("JSON")), None)
    if res.returncode != 0 or line is None:
        print("\ninteractor benchmark failed:\n" + res.stdout[-2000:] + res.stderr[-2000:])
        return
    _print_table("CloudView, QtInteractor under Xvfb (llvmpipe)", [tuple(r) for r in json.loads(line[4:])])


if __name__ == "__main__":
    main()
