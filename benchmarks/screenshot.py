"""Write the README screenshot: the workbench on the demo data with both views populated.

Run under X (the real VTK interactor renders only on xcb)::

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/screenshot.py

Options: ``--out resources/screenshot.png``, ``--data DIR`` (default: the built-in demo),
``--sample KEY`` (default: the first ``test`` sample of the wanted ``--label``), ``--size WxH``,
``--run-all`` (analyse every test sample of ``--class`` first, e.g. with ``--dock evaluation_dock``),
``--components`` (show the per-modality maps), ``--demo-mode`` (shoot demo mode after its first result).
Settings go to a temporary ini file so the user's settings are untouched.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "resources" / "screenshot.png"))
    ap.add_argument("--data", help="dataset folder (default: the built-in demo data)")
    ap.add_argument("--class", dest="cls", default="cookie", help="part class to show (demo: cookie)")
    ap.add_argument("--label", default="hole", help="defect kind of the sample to show")
    ap.add_argument("--sample", help="sample key to show (overrides --class/--label)")
    ap.add_argument("--size", default="1600x1000")
    ap.add_argument("--shots", type=int, default=0, help="support size (default: the detector's default)")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--detector", default="memory-bank")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="detector parameter")
    ap.add_argument("--dock", help="dock to raise before the shot (e.g. prompt_dock)")
    ap.add_argument("--no-wait", action="store_true", help="shoot without waiting for a result (e.g. an error)")
    ap.add_argument("--run-all", action="store_true", help="analyse every test sample of --class first")
    ap.add_argument("--components", action="store_true", help="show the per-modality maps strip")
    ap.add_argument("--demo-mode", action="store_true", help="start demo mode and shoot it")
    ap.add_argument("--gt", action="store_true", help="show the ground truth")
    args = ap.parse_args(argv)

    import numpy as np
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication
    app = QApplication([sys.argv[0]])
    from app.main import load_stylesheet
    from app.main_window import MainWindow
    from app.settings import Settings
    from core.session import Session
    app.setStyle("Fusion")
    app.setStyleSheet(load_stylesheet())

    if args.data:
        data = Path(args.data)
    else:
        from core.demo import ensure_demo
        data = ensure_demo()
    ini = Path(tempfile.mkdtemp(prefix="mmad-shot-")) / "settings.ini"
    params = dict(p.split("=", 1) for p in args.param)
    from core.session import ProcessBackend
    win = MainWindow(Settings(ini), Session(detector=args.detector, params=params, backend=ProcessBackend()),
                     restore_layout=False)
    w, h = (int(v) for v in args.size.lower().split("x"))
    win.resize(w, h)
    win.show()
    if not win.open_folder(data):
        print("cannot open", data, ":", win.banner.text(), file=sys.stderr)
        return 2
    if win.session.detector_id != args.detector or params:
        # the dataset's project restores the detector and parameters last used on it: the shot's win
        win.session.set_detector(args.detector, win.session.device, **params)
        win.analysis.detector_changed()

    def pump(cond, timeout):
        t0 = time.time()
        while not cond() and time.time() - t0 < timeout:
            app.processEvents()
            time.sleep(0.01)
        return cond()

    refs = win.session.refs
    if args.sample:
        key = args.sample
    else:
        cand = [r for r in refs if r.split == "test" and r.label == args.label and r.class_name == args.cls] or \
               [r for r in refs if r.split == "test" and not r.is_good] or refs
        key = cand[0].key
    if args.run_all:
        win.browser.class_combo.setCurrentText(args.cls)
        t_all = time.time()
        win.analysis.run_all()
        pump(lambda: win.runner.busy, 10)
        pump(lambda: not win.runner.busy, args.timeout)
        print(f"run all on {args.cls}: {time.time() - t_all:.1f} s ({win.status.timing.text()})")
    if args.components:
        win.inspector.set_components_visible(True)
    if args.gt:
        win.inspector.gt_check.setChecked(True)
    if args.shots > 0:
        c = win.session.ref(key).class_name
        win.analysis.set_support(c, win.session.support_candidates(c)[:args.shots])
    win.browser.select_key(key)
    t0 = time.time()
    ok = pump(lambda: win.dataset.current_key == key and win.inspector.result is not None and not win.runner.busy,
              args.timeout)
    if not ok and not args.no_wait:
        print("no result in time:", win.banner.text(), file=sys.stderr)
        return 1
    if args.dock:
        dock = getattr(win, args.dock)
        dock.show()
        dock.raise_()
        if args.dock == "evaluation_dock":
            win.resizeDocks([dock], [int(h * 0.3)], Qt.Orientation.Vertical)
    if args.demo_mode:
        win.demo_mode.full_screen = False          # (the shot keeps --size)
        win.demo_mode.start()
        pump(lambda: False, 4.0)
    print(f"analysed {key} in {time.time() - t0:.1f} s ({win.status.timing.text()}); "
          f"3D backend: {win.inspector.cloud_view.backend}")
    # show a few more scores in the table, as a user paging through results would
    for r in [r for r in refs if r.split == "test" and r.class_name == win.session.ref(key).class_name][:6]:
        if r.key != key:
            pass  # (the worker process analyses on demand)
    win.browser.model.refresh_all()
    win.inspector.reset_3d_view()
    if ok:
        win.banner.dismiss()
    # hover the highest-scoring pixel: the status bar reads its score and the matching 3D point
    # is marked, as when a user points at the defect
    res = win.inspector.result
    if res is not None and res.pixel_map is not None and np.isfinite(res.pixel_map).any():
        r, c = np.unravel_index(int(np.nanargmax(res.pixel_map)), res.pixel_map.shape)
        win.inspector._on_pixel_hovered(int(r), int(c))
        win.inspector._apply_hover()
    pump(lambda: False, 1.5)
    out = win.save_screenshot(args.out)
    print("wrote", out, "| status bar:", " | ".join(
        w.text() for w in (win.status.hover, win.status.timing, win.status.detector, win.status.device)))
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
