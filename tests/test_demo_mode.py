"""Demo mode (offscreen): starts full screen with captions, analyses and advances by itself, orbits
the 3D view, pauses on input, Esc leaves and restores the window."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from app.settings import Settings  # noqa: E402
from core.session import Session  # noqa: E402
from conftest import MemoryDataset  # noqa: E402


@pytest.fixture
def win(qtbot, tmp_path, fake_detector):
    w = MainWindow(Settings(tmp_path / "s.ini"), Session(detector="fake-test"), restore_layout=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    w.detector_panel.auto_run.setChecked(False)
    w.set_dataset(MemoryDataset(tmp_path / "ds", classes=("disc",)))
    yield w
    w.close()


def test_demo_mode_cycles_orbits_pauses_and_esc_leaves(qtbot, win):
    demo = win.new_demo_mode(dwell_s=0.3, resume_after_s=60.0)
    win.demo_mode = demo
    first = win.dataset.current_key
    with qtbot.waitSignal(demo.started, timeout=2000):
        demo.start()
    assert demo.active and win.isFullScreen()
    assert not win.menuBar().isVisible() and not win.browser_dock.isVisible() and demo.caption.isVisible()
    assert win.detector_panel.auto_run.isChecked()          # every shown sample is analysed
    qtbot.waitUntil(lambda: win.inspector.result is not None, timeout=15000)
    assert "disc" in demo.caption.part.text() and demo.caption.verdict.text() in ("OK", "DEFECT")
    assert "score" in demo.caption.score.text()
    cam = win.inspector.cloud_view.plotter.renderer.GetActiveCamera()
    pos0 = np.array(cam.GetPosition())
    with qtbot.waitSignal(demo.advanced, timeout=15000) as blocker:
        pass
    assert blocker.args[0] != first and win.dataset.current_key == blocker.args[0]
    assert not np.allclose(np.array(cam.GetPosition()), pos0)   # the 3D view orbits
    qtbot.waitUntil(lambda: win.inspector.result is not None and win.dataset.current_key == blocker.args[0], timeout=15000)
    # any input pauses: no advance while paused
    qtbot.keyClick(win.inspector.image_view, Qt.Key.Key_Space)
    assert demo.paused and "paused" in demo.caption.hint.text()
    key = win.dataset.current_key
    qtbot.wait(900)
    assert win.dataset.current_key == key
    demo.resume()
    qtbot.waitSignal(demo.advanced, timeout=15000).wait()
    # Esc leaves demo mode (and does not reach the Cancel shortcut), the window comes back
    with qtbot.waitSignal(demo.stopped, timeout=3000):
        qtbot.keyClick(win.inspector.image_view, Qt.Key.Key_Escape)
    assert not demo.active and not demo.caption.isVisible()
    qtbot.waitUntil(lambda: not win.isFullScreen(), timeout=3000)
    assert win.menuBar().isVisible() and win.browser_dock.isVisible()
    assert not win.detector_panel.auto_run.isChecked()      # restored
    k = win.dataset.current_key
    qtbot.wait(800)
    assert win.dataset.current_key == k  # no longer cycling


def test_demo_mode_action_and_cli_flag(qtbot, win):
    from core.cli import build_parser, main
    assert build_parser().parse_args(["--demo"]).demo
    seen = []
    assert main(["--demo"], gui=lambda data, demo=False: seen.append((data, demo)) or 0) == 0
    assert seen == [(None, True)]
    assert main([], gui=lambda data: seen.append(data) or 0) == 0 and seen[-1] is None
    win.action_map["demo_mode"].trigger()                    # View > Demo mode
    assert win.demo_mode.active
    win.action_map["demo_mode"].trigger()
    assert not win.demo_mode.active
