"""The window's layout from 1280 x 720 up (offscreen): the views keep priority, no visible widget is
squeezed below its minimum size, every toolbar control is also in a menu."""
from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")
from PySide6.QtWidgets import QAbstractScrollArea, QMenu, QToolBar, QToolButton, QWidget  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from app.settings import Settings  # noqa: E402
from core.session import Session  # noqa: E402
from conftest import MemoryDataset  # noqa: E402


def _window(qtbot, tmp_path, w, h):
    win = MainWindow(Settings(tmp_path / "s.ini"), Session(detector="fake-test"), restore_layout=False)
    qtbot.addWidget(win)
    win.resize(w, h)
    win.show()
    qtbot.waitExposed(win)
    win.set_dataset(MemoryDataset(tmp_path / "ds", classes=("disc",)))
    qtbot.waitUntil(lambda: not win.runner.busy and win.inspector.result is not None, timeout=15000)
    qtbot.wait(50)
    return win


def _inside_scroll_area(w: QWidget) -> bool:
    p = w.parentWidget()
    while p is not None:
        if isinstance(p, QAbstractScrollArea):
            return True
        p = p.parentWidget()
    return False


def _squeezed(win) -> list[str]:
    bad = []
    for w in win.findChildren(QWidget):
        if not w.isVisible() or _inside_scroll_area(w) or w.isWindow() or w.objectName().startswith("qt_"):
            continue   # (qt_*: a complex widget's own parts, e.g. a spin box's line edit, placed by its style)
        hint = w.minimumSizeHint()
        lo_w = max(w.minimumWidth(), hint.width() if hint.width() > 0 else 0)
        lo_h = max(w.minimumHeight(), hint.height() if hint.height() > 0 else 0)
        if w.width() < lo_w or w.height() < lo_h:
            bad.append(f"{type(w).__name__} {w.objectName()!r} {w.width()}x{w.height()} < {lo_w}x{lo_h}")
    return bad


@pytest.mark.parametrize("size", [(1280, 720), (1600, 1000)])
def test_views_keep_priority_and_nothing_is_squeezed(qtbot, tmp_path, fake_detector, size):
    win = _window(qtbot, tmp_path, *size)
    assert win.inspector.image_pane.width() >= 400 and win.inspector.cloud_pane.width() >= 400, (win.inspector.image_pane.width(),
                                                                            win.inspector.cloud_pane.width())
    assert win.inspector.image_view.height() >= 300 and win.inspector.cloud_view.height() >= 300
    assert _squeezed(win) == []
    # the view options fit: no toolbar control hides behind an overflow handle
    for tb in win.findChildren(QToolBar):
        ext = [b for b in tb.findChildren(QToolButton) if b.objectName() == "qt_toolbar_ext_button"]
        assert not any(b.isVisible() for b in ext), tb.objectName()
    # with the evaluation dock and the modality maps open the views still keep their width
    win.evaluation_dock.show()
    win.inspector.set_components_visible(True)
    qtbot.wait(50)
    assert win.inspector.image_pane.width() >= 400 and win.inspector.cloud_pane.width() >= 400
    assert _squeezed(win) == []
    win.close()


def test_every_toolbar_control_is_also_a_menu_entry(qtbot, tmp_path, fake_detector):
    win = _window(qtbot, tmp_path, 1280, 720)
    menu_texts = {a.text().replace("&", "").rstrip("…").lower()
                  for m in win.menuBar().findChildren(QMenu) for a in m.actions() if a.text()}
    missing = []
    for tb in win.findChildren(QToolBar):
        for a in tb.actions():
            if a.text() and a.text().replace("&", "").rstrip("…").lower() not in menu_texts:
                missing.append(a.text())
        for b in tb.findChildren(QToolButton):
            if b.objectName() == "qt_toolbar_ext_button" or b.defaultAction() is not None:
                continue
            words = b.text().lower().split()
            if not any(all(wd in t for wd in words) for t in menu_texts):
                missing.append(b.text())
    assert missing == []
    # the right-hand panels scroll instead of collapsing
    for dock in (win.detector_dock, win.fusion_dock, win.prompt_dock, win.fewshot_dock):
        assert isinstance(dock.widget(), QAbstractScrollArea), dock.objectName()
    # the View menu toggles the modality strip (RGB / 3D / fused side by side) and shows the badge
    win.action_map["toggle_components"].trigger()
    assert win.inspector.components_visible()
    titles = win.inspector.map_strip.titles()
    assert titles[0] == "RGB" and titles[-1] == "Fused" and "3D" in titles
    assert win.inspector.badge.isVisible() and "RGB" in win.inspector.badge.text()
    win.action_map["toggle_components"].trigger()
    assert not win.inspector.components_visible()
    win.close()
