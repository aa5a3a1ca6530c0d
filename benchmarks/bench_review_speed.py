"""Verdicts per minute a keyboard user can record on the demo data (issue 11).

Opens the window offscreen on the demo with the memory-bank detector, lets it score the first
class's test samples once ("Run all"), then presses C / R / U (with "go to the next sample") through
real key events, as an annotator would, and reports verdicts per minute (each one written to the
dataset's project, the one store of verdicts).  The detector's speed is
not measured here: results are cached before the key presses start.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_review_speed.py [--n 60]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    args = ap.parse_args()
    os.environ.setdefault("MMAD_CACHE", tempfile.mkdtemp(prefix="mmad-bench-"))
    os.environ.setdefault("MMAD_DATA", tempfile.mkdtemp(prefix="mmad-bench-data-"))
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from app.main_window import MainWindow
    from app.settings import Settings
    from core.demo import ensure_demo
    from core.session import ProcessBackend, Session
    import shutil
    data = Path(tempfile.mkdtemp()) / "demo"
    shutil.copytree(ensure_demo(), data)
    win = MainWindow(Settings(Path(tempfile.mkdtemp()) / "s.ini"), Session(detector="memory-bank",
                     backend=ProcessBackend()), restore_layout=False)
    win.resize(1600, 1000)
    win.show()
    win.open_folder(data)

    def pump(cond, timeout=600):
        t0 = time.time()
        while not cond() and time.time() - t0 < timeout:
            app.processEvents()
            time.sleep(0.005)
        return cond()

    cls = win.session.classes[0]
    refs = [r for r in win.session.refs if r.class_name == cls and r.split == "test"]
    t0 = time.time()
    pump(lambda: win.inspector.result is not None and not win.runner.busy)
    for r in refs:                     # cache every result first (the detector is not what we time)
        win.session.analyze(r)
    print(f"scored {len(refs)} samples in {time.time() - t0:.0f} s")
    win.browser.select_key(refs[0].key)
    pump(lambda: win.inspector.result is not None)
    keys = [Qt.Key.Key_C, Qt.Key.Key_R, Qt.Key.Key_U]
    n = min(args.n, len(refs))
    t0 = time.perf_counter()
    done = 0
    for i in range(n):
        before = sum(win.review.store.verdict_counts().values())
        QTest.keyClick(win, keys[i % 3])
        pump(lambda: sum(win.review.store.verdict_counts().values()) > before and win.inspector.result is not None, 10)
        done = sum(win.review.store.verdict_counts().values())
    dt = time.perf_counter() - t0
    print(f"{done} verdicts in {dt:.2f} s = {60 * done / dt:.0f} verdicts/minute (key press to the next "
          f"sample shown, including the project write, the one store of verdicts)")
    win.close()


if __name__ == "__main__":
    main()
