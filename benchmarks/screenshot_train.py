"""Write a screenshot of the Train panel DURING training: resources/screenshot-train.png.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/screenshot_train.py

Opens the demo data (or ``--data``), starts training ``--detector`` on every class in the worker
process, waits until ``--epochs-shown`` epochs are plotted (or ``--timeout``), shoots the window
with the Train dock raised, then cancels.  Training uses a coarse feature grid (``--fast``, the
default) so the curve fills up in minutes on a laptop CPU; the picture is what matters here.
Settings go to a temporary ini file; the checkpoint to a temporary folder.
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
    ap.add_argument("--out", default=str(ROOT / "resources" / "screenshot-train.png"))
    ap.add_argument("--data", help="dataset folder (default: a small demo made for the shot: 4 classes, "
                                   "6 good training samples each, 128 px)")
    ap.add_argument("--detector", default="unified-moe")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--epochs-shown", type=int, default=4, help="shoot once this many epochs are plotted")
    ap.add_argument("--size", default="1600x1000")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--full", action="store_true", help="the default feature grid (slow), not the coarse one")
    args = ap.parse_args(argv)

    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication
    app = QApplication([sys.argv[0]])
    from app.main import load_stylesheet
    from app.main_window import MainWindow
    from app.settings import Settings
    from core.features.grid import FeatureConfig
    from core.session import Session, ThreadBackend
    app.setStyle("Fusion")
    app.setStyleSheet(load_stylesheet())
    tmp = Path(tempfile.mkdtemp(prefix="mmad-shot-train-"))
    if args.data:
        data = Path(args.data)
    else:
        from core.demo import generate_demo
        data = generate_demo(tmp / "demo", n_train=6, n_val=0, n_test_good=2, n_per_defect=1, size=128)
    win = MainWindow(Settings(tmp / "settings.ini"), Session(detector="memory-bank", backend=ThreadBackend()),
                     restore_layout=False)
    w, h = (int(v) for v in args.size.lower().split("x"))
    win.resize(w, h)
    win.detector_panel.auto_run.setChecked(False)
    win.show()
    if not win.open_folder(data):
        print("cannot open", data, win.banner.text())
        return 1
    win.show_train_panel()
    if not args.full:
        win.training.train_kwargs = {"features": FeatureConfig(working_size=64, stride=4, target_points=1500),
                                     "batch_size": 128}
    p = win.train_panel
    p.detector_combo.setCurrentIndex(max(0, p.detector_combo.findData(args.detector)))
    p.epochs.setValue(args.epochs)
    p.out_edit.setText(str(tmp / f"{args.detector}-model"))
    win.resizeDocks([win.train_dock], [440], Qt.Orientation.Horizontal)
    # the loss plot is what the shot is for: give the Train dock the height (the sample list keeps a few rows)
    win.resizeDocks([win.browser_dock, win.train_dock], [int(h * 0.3), int(h * 0.7)], Qt.Orientation.Vertical)
    if not win.training.start():
        print("training did not start:", win.banner.text())
        return 1
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.timeout:
        app.processEvents()
        time.sleep(0.02)
        if len(p.plot.epoch_x) >= args.epochs_shown or not win.training.running:
            break
    for _ in range(20):             # let the last batch points and the progress text paint
        app.processEvents()
        time.sleep(0.05)
    out = win.save_screenshot(args.out)
    print(f"{out}: {len(p.plot.epoch_x)} epoch(s) plotted, {len(p.plot.batch_x)} batch points, "
          f"running={win.training.running}, status: {p.status.text()!r}, progress {p.progress.text()!r}")
    win.training.cancel()
    t1 = time.perf_counter()
    while win.training.running and time.perf_counter() - t1 < 5:
        app.processEvents()
        time.sleep(0.01)
    print(f"cancelled in {win.training.last_cancel_ms} ms")
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
