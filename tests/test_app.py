"""GUI tests of the main window (pytest-qt).  Offscreen Qt platform (the 3D view uses its off-screen
fallback); one test runs the real VTK interactor under Xvfb in a subprocess."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from app.settings import Settings  # noqa: E402
from core.session import ProcessBackend, Session  # noqa: E402
from conftest import FakeDetector, MemoryDataset  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def settings(tmp_path):
    return Settings(tmp_path / "settings.ini")


def make_window(qtbot, settings, detector="fake-test", params=None, backend=None) -> MainWindow:
    win = MainWindow(settings, Session(detector=detector, params=params, backend=backend), restore_layout=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    return win


def wait_result(qtbot, win, timeout=15000):
    qtbot.waitUntil(lambda: win.inspector.result is not None and not win.runner.busy, timeout=timeout)


def close(win):
    win.close()


# ---------------------------------------------------------------------- fake detector: fast tests
def test_run_then_alpha_repaints_both_views(qtbot, settings, fake_detector, tmp_path):
    win = make_window(qtbot, settings)
    win.set_dataset(MemoryDataset(tmp_path / "ds", classes=("disc",)))
    assert win.inspector.cloud_view.backend == "offscreen"
    wait_result(qtbot, win)                       # auto-run on the first sample
    key = win.dataset.current_key
    assert win.session.record(key).image_score is not None
    assert "Score" in [win.browser.model.headerData(i, Qt.Orientation.Horizontal) for i in range(5)]
    row = win.browser.model.row_of(key)
    assert win.browser.model.index(row, 3).data() != ""      # the score column is filled
    img0 = win.inspector.image_view.composited().copy()
    col0 = win.inspector.cloud_view.point_colors().copy()
    n_extract = FakeDetector.counters["extract"]
    slider = win.fusion_panel.editor("alpha").slider
    assert slider is not None
    slider.setValue(slider.maximum())                         # alpha = 1: the RGB map only
    qtbot.waitUntil(lambda: win.session.params["alpha"] == 1.0 and win.analysis.last_fusion_ms is not None)
    qtbot.waitUntil(lambda: not np.array_equal(win.inspector.image_view.composited(), img0))
    assert not np.array_equal(win.inspector.cloud_view.point_colors(), col0)
    assert FakeDetector.counters["extract"] == n_extract      # no backbone rerun
    # the heatmap shown is the fusion of the cached components with alpha = 1
    comps = win.session.components_of(key)
    np.testing.assert_allclose(win.inspector.result.pixel_map, comps.maps["rgb"] * comps.extra["text"], rtol=1e-5)
    assert win.fusion_panel.editor("alpha").spin.value() == pytest.approx(1.0)
    close(win)


def test_fusion_drag_coalesces_and_previews_3d(qtbot, settings, fake_detector, tmp_path):
    from app.controllers.analysis import PREVIEW_HOLD_MS
    from app.views.colormap import apply_colormap
    from core.session import score_range

    win = make_window(qtbot, settings)
    win.inspector.weighted_check.setChecked(False)                # plain colormap colours: easy to check below
    win.inspector.cloud_view.preview_points = 200               # the 32 x 32 parts have more points
    win.set_dataset(MemoryDataset(tmp_path / "ds", classes=("disc",)))
    wait_result(qtbot, win)
    n_full = win.inspector.cloud_view.displayed_count
    assert n_full > 200 and not win.inspector.cloud_view.preview_active
    slider = win.fusion_panel.editor("alpha").slider
    slider.setSliderDown(True)                          # the user grabs the handle ...
    n_fuse = FakeDetector.counters["fuse"]
    for v in (10, 30, 60, slider.maximum()):            # ... and several moves arrive in one turn
        slider.setValue(v)
    qtbot.waitUntil(lambda: win.analysis.last_fusion_ms is not None and FakeDetector.counters["fuse"] > n_fuse)
    qtbot.wait(50)
    assert FakeDetector.counters["fuse"] == n_fuse + 1  # one re-fuse + repaint for the burst
    assert win.inspector.cloud_view.preview_active and win.inspector.cloud_view.displayed_count == 200
    qtbot.wait(PREVIEW_HOLD_MS + 150)
    assert win.inspector.cloud_view.preview_active                # still held: still the preview
    slider.setSliderDown(False)
    qtbot.waitUntil(lambda: not win.inspector.cloud_view.preview_active, timeout=3000)
    assert win.inspector.cloud_view.displayed_count == n_full
    # the restored full subset shows the new fusion (alpha = 1), not the colours from before
    res = win.inspector.result
    assert win.session.params["alpha"] == 1.0
    vmin, vmax = score_range(res)
    expected = apply_colormap(res.point_scores[win.inspector.cloud_view.display_indices], vmin, vmax,
                              win.inspector.cloud_view.colormap)
    np.testing.assert_array_equal(np.asarray(win.inspector.cloud_view._mesh.point_data["rgb"]), expected)
    close(win)


def test_fade_low_scores_toggle(qtbot, settings, fake_detector, tmp_path):
    win = make_window(qtbot, settings)
    win.set_dataset(MemoryDataset(tmp_path / "ds", classes=("disc",)))
    wait_result(qtbot, win)
    assert win.inspector.weighted_check.isChecked() and win.inspector.image_view.alpha_gamma > 0   # on by default
    weighted_img, weighted_pts = win.inspector.image_view.composited(), win.inspector.cloud_view.point_colors()
    win.inspector.weighted_check.setChecked(False)
    assert win.inspector.image_view.alpha_gamma == 0.0
    assert not np.array_equal(win.inspector.image_view.composited(), weighted_img)
    assert not np.array_equal(win.inspector.cloud_view.point_colors(), weighted_pts)
    assert settings.value("view/weighted_overlay", True, bool) is False        # remembered
    close(win)


def test_status_bar_shows_job_progress(qtbot, settings, fake_detector, tmp_path):
    win = make_window(qtbot, settings, params={"delay": 1.0})
    win.detector_panel.auto_run.setChecked(False)
    win.set_dataset(MemoryDataset(tmp_path / "ds", classes=("disc",)))
    qtbot.waitUntil(lambda: win.inspector.sample is not None)
    assert not win.status.progress.isVisible()
    assert win.analysis.run_current(force=True)
    qtbot.waitUntil(lambda: win.status.progress.isVisible() and win.status.progress.value() > 0, timeout=5000)
    assert win.status.job.isVisible() and win.status.job.text()
    wait_result(qtbot, win, timeout=20000)
    qtbot.waitUntil(lambda: not win.status.progress.isVisible())
    assert not win.status.job.isVisible()
    close(win)


def test_cancel_stops_within_a_second(qtbot, settings, fake_detector, tmp_path):
    win = make_window(qtbot, settings, params={"delay": 5.0})
    win.detector_panel.auto_run.setChecked(False)
    win.set_dataset(MemoryDataset(tmp_path / "ds", classes=("disc",)))
    assert win.analysis.run_all()
    qtbot.waitUntil(lambda: win.detector_panel.progress.value() > 0, timeout=5000)
    assert win.detector_panel.cancel_btn.isEnabled() and not win.detector_panel.run_btn.isEnabled()
    t0 = time.perf_counter()
    win.detector_panel.cancel_btn.click()
    qtbot.waitUntil(lambda: not win.runner.busy, timeout=1000)
    assert time.perf_counter() - t0 < 1.0
    assert win.analysis.last_cancel_ms is not None and win.analysis.last_cancel_ms < 1000
    assert "cancel" in win.banner.text().lower()
    assert all(r.image_score is None for r in win.session.records.values())
    assert win.detector_panel.run_btn.isEnabled()
    close(win)


def test_param_prompt_and_support_edits_invalidate_the_right_stage(qtbot, settings, fake_detector, tmp_path):
    win = make_window(qtbot, settings)
    ds = MemoryDataset(tmp_path / "ds", classes=("disc",), n_train=4)
    win.set_dataset(ds)
    wait_result(qtbot, win)
    assert FakeDetector.counters["fit"] == 1
    # prompts: only text caches; no refit, one new text encoding after the rerun
    assert win.prompt_panel.isEnabled()
    n_text = FakeDetector.counters["text"]
    ed = win.prompt_panel.form.editors["normal_states"]
    ed.edit.setPlainText("spotless {}\nflawless {}")
    win.prompt_panel.apply()
    assert win.session.params["normal_states"] == ("spotless {}", "flawless {}")
    wait_result(qtbot, win)
    qtbot.waitUntil(lambda: FakeDetector.counters["text"] == n_text + 1)
    assert FakeDetector.counters["fit"] == 1
    # few-shot: the panel lists the good training samples; a new support refits this class
    items = [win.fewshot_panel.list.item(i) for i in range(win.fewshot_panel.list.count())]
    assert len(items) == 4 and sum(it.isSelected() for it in items) == 2   # default_support = 2
    chosen = items[3].toolTip()
    win.fewshot_panel.select_keys([chosen])
    win.fewshot_panel.apply()
    assert [r.key for r in win.session.support("disc")] == [chosen]
    assert [it.toolTip() for it in win.fewshot_panel.list.selectedItems()] == [chosen]
    qtbot.waitUntil(lambda: FakeDetector.counters["fit"] == 2, timeout=5000)
    wait_result(qtbot, win)
    # a score-stage parameter from the detector panel re-extracts without refitting
    n_extract = FakeDetector.counters["extract"]
    win.detector_panel.form.editors["gain"].spin.setValue(3.0)
    qtbot.waitUntil(lambda: FakeDetector.counters["extract"] > n_extract, timeout=5000)
    wait_result(qtbot, win)
    assert FakeDetector.counters["fit"] == 2
    close(win)


def test_verdict_keys_update_table_and_store(qtbot, settings, fake_detector, tmp_path):
    win = make_window(qtbot, settings)
    win.detector_panel.auto_run.setChecked(False)
    win.set_dataset(MemoryDataset(tmp_path / "ds", classes=("disc",)))
    qtbot.waitUntil(lambda: win.inspector.sample is not None)
    first = win.dataset.current_key
    win.review_panel.annotator.setText("ana")
    win.activateWindow()
    win.browser.table.setFocus()
    qtbot.keyClick(win.browser.table, Qt.Key.Key_C)
    assert win.review.store.verdict(first).verdict == "confirmed"
    assert win.review.store.verdict(first).reviewer == "ana"
    model = win.browser.model
    assert "confirmed" in model.index(model.row_of(first), 4).data()
    second = win.dataset.current_key
    assert second != first                                     # advanced to the next sample
    qtbot.keyClick(win.browser.table, Qt.Key.Key_R)
    assert win.review.store.verdict(second).verdict == "rejected"
    qtbot.keyClick(win.browser.table, Qt.Key.Key_Up)
    qtbot.keyClick(win.browser.table, Qt.Key.Key_Up)
    assert win.dataset.current_key == first
    qtbot.keyClick(win.browser.table, Qt.Key.Key_U)
    assert win.review.store.verdict(first).verdict == "unsure"
    out = win.review.export_verdicts(tmp_path / "v.csv")
    rows = {r["key"]: r["verdict"] for r in csv.DictReader(open(out))}
    assert rows == {first: "unsure", second: "rejected"}
    close(win)


def test_browser_filters_sort_and_settings_persist(qtbot, tmp_path, fake_detector):
    ini = tmp_path / "s.ini"
    win = make_window(qtbot, Settings(ini))
    win.detector_panel.auto_run.setChecked(False)
    ds = MemoryDataset(tmp_path / "ds", classes=("disc", "ring"))
    win.set_dataset(ds)
    b = win.browser
    assert b.proxy.rowCount() == 8                             # test split by default (2 classes x 4)
    b.class_combo.setCurrentText("ring")
    b.label_combo.setCurrentText("blob")
    assert {r.key for r in b.visible_refs()} == {r.key for r in ds.select(["ring"], "test", "blob")}
    b.class_combo.setCurrentText("(all)")
    b.label_combo.setCurrentText("(all)")
    assert win.analysis.run_all()
    qtbot.waitUntil(lambda: not win.runner.busy, timeout=15000)
    b.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
    scores = [win.session.record(r).image_score for r in b.visible_refs()]
    assert scores == sorted(scores, reverse=True) and len(scores) == 8
    # grid (thumbnail) mode shares the model; thumbnails arrive in the background
    b.set_grid_mode(True)
    qtbot.waitUntil(lambda: any(b.model.has_thumbnail(r.key) for r in ds.refs), timeout=5000)
    # remember parameters, detector and layout
    win.fusion_panel.editor("alpha").spin.setValue(0.8)
    win.inspector.cmap_combo.setCurrentText("viridis")
    win.fusion_dock.hide()
    win.close()
    s2 = Settings(ini)                        # per-user preferences in the settings file ...
    assert not s2.contains("params/fake-test") and s2.legacy_detector_params("fake-test") == {}
    assert s2.detector_id == "fake-test" and s2.view_options()["colormap"] == "viridis"
    assert s2.last_folder == str(ds.root)
    from core.project import Project
    with Project.open(ds.root) as p:          # ... the dataset's parameters in its project only
        assert p.detector_params("fake-test")["alpha"] == pytest.approx(0.8)
    win2 = MainWindow(s2, Session(), restore_layout=True)
    qtbot.addWidget(win2)
    assert win2.session.detector_id == "fake-test"
    win2.detector_panel.auto_run.setChecked(False)
    win2.set_dataset(MemoryDataset(ds.root, classes=("disc", "ring")))
    assert win2.session.params["alpha"] == pytest.approx(0.8)
    assert win2.fusion_panel.editor("alpha").spin.value() == pytest.approx(0.8)
    assert win2.inspector.cmap_combo.currentText() == "viridis"
    assert win2.fusion_dock.isHidden()
    win2.close()


def test_missing_support_is_shown_in_the_window(qtbot, settings, fake_detector, tmp_path):
    win = make_window(qtbot, settings)
    win.set_dataset(MemoryDataset(tmp_path / "ds", classes=("disc",), n_train=0))
    qtbot.waitUntil(lambda: win.banner.isVisible() and win.banner.level == "error", timeout=5000)
    assert "support" in win.banner.text() and "Few-shot" in win.banner.text()
    close(win)


# ---------------------------------------------------------------------- real loaders + demo data
@pytest.fixture
def demo_copy(small_demo, tmp_path):
    dst = tmp_path / "demo"
    shutil.copytree(small_demo, dst, ignore=shutil.ignore_patterns(".mmad"))  # no other test's project
    return dst


def test_corrupt_file_message_and_batch_skips_it(qtbot, settings, fake_detector, demo_copy):
    pytest.importorskip("core.datasets")
    bad = sorted(demo_copy.glob("*/test/crack/rgb/*.png"))[0]
    bad.write_bytes(bad.read_bytes()[:100])                  # truncated PNG
    win = make_window(qtbot, settings)
    assert win.open_folder(demo_copy)
    assert win.windowTitle().startswith("demo")
    key = next(r.key for r in win.session.refs if r.split == "test" and r.label == "crack")
    assert win.browser.select_key(key)
    qtbot.waitUntil(lambda: win.banner.isVisible() and win.banner.level == "error", timeout=10000)
    msg = win.banner.text()
    assert bad.name in msg and ("truncated" in msg.lower() or "corrupt" in msg.lower())
    # a batch run lists the file as skipped and analyses every other sample
    qtbot.waitUntil(lambda: not win.runner.busy, timeout=10000)
    assert win.analysis.run_all()
    qtbot.waitUntil(lambda: not win.runner.busy, timeout=30000)
    assert win.banner.level == "warning" and "skipped" in win.banner.text()
    assert bad.name in win.banner.details.toPlainText()
    tests = [r for r in win.session.refs if r.split == "test"]
    done = [r for r in tests if win.session.record(r).image_score is not None]
    assert len(done) == len(tests) - 1
    assert win.session.record(key).error and bad.name in win.session.record(key).error
    close(win)


def test_open_bad_folder_shows_message(qtbot, settings, fake_detector, tmp_path):
    pytest.importorskip("core.datasets")
    (tmp_path / "empty").mkdir()
    win = make_window(qtbot, settings)
    assert not win.open_folder(tmp_path / "empty")
    assert win.banner.level == "error" and "empty" in win.banner.text()
    assert not win.open_folder(tmp_path / "nope")
    assert "nope" in win.banner.text()
    close(win)


def test_real_detector_on_demo_and_screenshot(qtbot, settings, small_demo, tmp_path):
    """Open the demo data, run the real memory-bank detector (in its worker process, as the app does)
    to completion, move the RGB weight, save a PNG."""
    pytest.importorskip("core.datasets")
    win = make_window(qtbot, settings, detector="memory-bank", backend=ProcessBackend())
    assert win.open_folder(small_demo)
    # one support shot keeps the test fast; the panel path is the one a user takes
    cls = win.session.classes[0]
    win.analysis.set_support(cls, win.session.support_candidates(cls)[:1])
    bad = next(r for r in win.session.refs if r.split == "test" and r.label in ("hole", "crack", "stain"))
    win.browser.select_key(bad.key)
    qtbot.waitUntil(lambda: win.dataset.current_key == bad.key and win.inspector.result is not None
                    and not win.runner.busy, timeout=120000)
    res = win.inspector.result
    sample = win.inspector.sample
    assert res.pixel_map.shape == sample.grid_shape and res.point_scores.shape == (sample.n_points,)
    img0 = win.inspector.image_view.composited().copy()
    col0 = win.inspector.cloud_view.point_colors().copy()
    assert not np.array_equal(img0, sample.rgb)                 # the heatmap is overlaid
    assert len(np.unique(col0.reshape(-1, 3), axis=0)) > 10      # points coloured by score
    weight = win.fusion_panel.editor("rgb_weight")
    weight.slider.setValue(0 if weight.value() > 0.5 else weight.slider.maximum())
    qtbot.waitUntil(lambda: not np.array_equal(win.inspector.image_view.composited(), img0), timeout=5000)
    assert not np.array_equal(win.inspector.cloud_view.point_colors(), col0)
    out = win.save_screenshot(tmp_path / "window.png")
    shot = QImage(str(out))
    assert shot.width() >= 1000 and shot.height() >= 600
    close(win)


# ---------------------------------------------------------------------- the real 3D widget (Xvfb)
XCB_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{root!r}, {tests!r}]
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from conftest import FakeDetector, MemoryDataset
    from core.detectors import registry
    from core.session import Session
    from app.main_window import MainWindow
    from app.settings import Settings
    registry.discover(); registry.register(FakeDetector)
    win = MainWindow(Settings({ini!r}), Session(detector="fake-test"), restore_layout=False)
    win.resize(1400, 900); win.show()
    win.set_dataset(MemoryDataset({data!r}, classes=("disc",), size=48))
    t0 = time.time()
    while (win.inspector.result is None or win.runner.busy) and time.time() - t0 < 30:
        app.processEvents()
    assert win.inspector.result is not None, "no result"
    for _ in range(20):
        app.processEvents(); time.sleep(0.02)
    frame = win.inspector.cloud_view.render_image()
    win.save_screenshot({png!r})
    print("BACKEND", win.inspector.cloud_view.backend, "FRAME_STD", float(frame.std()))
    win.close()
""")


def test_real_interactor_under_xvfb(tmp_path, request):
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    xvfb = request.getfixturevalue("xvfb")
    if xvfb is None:
        pytest.skip("pytest-xvfb did not start a display")
    png = tmp_path / "xcb.png"
    script = XCB_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests"), ini=str(tmp_path / "s.ini"),
                               data=str(tmp_path / "ds"), png=str(png))
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=f":{xvfb.display}")
    env.pop("VTK_DEFAULT_OPENGL_WINDOW", None)
    env.pop("MMAD_FORCE_OFFSCREEN_3D", None)
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    line = [l for l in p.stdout.splitlines() if l.startswith("BACKEND")][-1].split()
    assert line[1] == "interactor"
    assert float(line[3]) > 1.0                                # a non-blank 3D frame
    shot = QImage(str(png))
    assert not shot.isNull() and shot.width() >= 1000


def test_linked_cursor_and_ground_truth_toggle(qtbot, settings, fake_detector, tmp_path):
    from core.session import pixel_to_point, point_to_pixel
    win = make_window(qtbot, settings)
    ds = MemoryDataset(tmp_path / "ds", classes=("disc",))
    win.set_dataset(ds)
    bad = ds.select(label="blob")[0]
    win.browser.select_key(bad.key)
    qtbot.waitUntil(lambda: win.dataset.current_key == bad.key and win.inspector.result is not None
                    and not win.runner.busy, timeout=10000)
    s = win.inspector.sample
    # 2D -> 3D: clicking a pixel marks its point; 3D -> 2D: picking a point marks its pixel
    win.inspector.image_view.pixelClicked.emit(10, 12)
    assert win.inspector.cloud_view.marked_index == pixel_to_point(s, 10, 12) is not None
    win.inspector.cloud_view.pointPicked.emit(37)
    assert tuple(win.inspector.image_view.marker) == point_to_pixel(s, 37)
    win.inspector.image_view.pixelHovered.emit(20, 5)
    qtbot.waitUntil(lambda: win.inspector.cloud_view.marked_index == pixel_to_point(s, 20, 5))
    assert "pixel (20, 5)" in win.status.hover.text()
    # ground truth: the defect outline appears on the image, GT colours on the points
    assert win.inspector.gt_check.isEnabled()
    win.inspector.gt_check.setChecked(False)
    img0, col0 = win.inspector.image_view.composited().copy(), win.inspector.cloud_view.point_colors().copy()
    win.inspector.gt_check.setChecked(True)
    assert not np.array_equal(win.inspector.image_view.composited(), img0)
    assert not np.array_equal(win.inspector.cloud_view.point_colors(), col0)
    close(win)


@pytest.mark.parametrize("modality", ["rgb", "points"])
def test_single_modality_samples_show_what_they_have(qtbot, settings, fake_detector, tmp_path, modality):
    win = make_window(qtbot, settings)
    ds = MemoryDataset(tmp_path / "ds", classes=("disc",), rgb=modality == "rgb", points=modality == "points")
    win.set_dataset(ds)
    wait_result(qtbot, win)
    assert win.banner.level != "error" or not win.banner.isVisible()
    if modality == "rgb":
        assert win.inspector.cloud_view.n_points == 0 and "No point cloud" in win.inspector.cloud_pane.caption.text()
        assert win.inspector.image_view.composited() is not None
    else:
        assert win.inspector.cloud_view.n_points == win.inspector.sample.n_points > 0
        assert "no RGB" in win.inspector.image_pane.caption.text()      # a shaded depth image is shown instead
        assert win.inspector.image_view.composited() is not None
    close(win)


def test_drop_folder_and_create_window(qtbot, settings, fake_detector, demo_copy):
    small_demo = demo_copy     # a fresh copy: no project of another test restores its detector
    pytest.importorskip("core.datasets")
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent
    from app.main import create_window
    settings.detector_id = "fake-test"
    win = create_window(str(small_demo), settings)
    qtbot.addWidget(win)
    assert win.session.dataset is not None and Path(win.session.dataset.root) == Path(small_demo)
    assert settings.last_folder == str(small_demo)
    assert win.session.detector_id == "fake-test"
    win.close()
    win2 = make_window(qtbot, settings)
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(small_demo))])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, md, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    win2.dropEvent(ev)
    assert win2.session.dataset is not None and win2.windowTitle().startswith(Path(small_demo).name)
    close(win2)


# ---------------------------------------------------------------------- the parts of the window
def test_actions_table_drives_menus_toolbar_shortcuts_and_help(qtbot, settings, fake_detector):
    from PySide6.QtWidgets import QToolBar
    from app.actions import ACTIONS, resolve, shortcuts_text
    win = make_window(qtbot, settings)
    specs = [s for s in ACTIONS if s.id != "-"]
    from PySide6.QtWidgets import QMenu
    menu_actions = {a for m in win.menuBar().findChildren(QMenu) for a in m.actions()}
    toolbar = win.findChild(QToolBar, "toolbarMain")
    keys = []
    for s in specs:
        act = win.action_map[s.id]
        assert callable(resolve(win, s.slot)), s.slot                  # every slot exists
        assert act in menu_actions, s.id                               # every action is in a menu
        assert (act in toolbar.actions()) == s.toolbar
        if s.shortcut is not None:
            keys.append(act.shortcut().toString())
    assert len(keys) == len(set(keys))                                 # no shortcut bound twice
    help_text = shortcuts_text()
    assert all(k in help_text for k in keys)
    before = win.inspector.gt_check.isChecked()
    win.action_map["toggle_gt"].trigger()                              # the table's slot runs
    assert win.inspector.gt_check.isChecked() != before
    close(win)


def test_inspector_shows_sample_and_result_without_a_session(qtbot, fake_detector, tmp_path):
    from app.inspector import InspectorView
    from core.colormaps import score_range
    from core.detectors import create
    from core.session import pixel_to_point
    ds = MemoryDataset(tmp_path / "ds", classes=("disc",))
    sample = ds.load(ds.select(label="blob")[0])
    det = create("fake-test")
    det.fit([ds.load(r) for r in ds.select(split="train")])
    res = det.score(sample)
    opts = {"opacity": 0.6, "colormap": "viridis", "show_gt": False, "point_size": 3}
    view = InspectorView(opts)
    qtbot.addWidget(view)
    view.resize(900, 500)
    view.show()
    view.show_sample(sample)
    plain, own = view.image_view.composited().copy(), view.cloud_view.point_colors().copy()
    view.show_result(res)
    assert not np.array_equal(view.cloud_view.point_colors(), own)
    assert view.result is res and not np.array_equal(view.image_view.composited(), plain)
    assert view.colorbar.range == pytest.approx(score_range(res))
    hover = []
    view.hoverText.connect(hover.append)
    view.image_view.pixelClicked.emit(10, 12)
    assert view.cloud_view.marked_index == pixel_to_point(sample, 10, 12)
    view.cloud_view.pointPicked.emit(5)
    assert hover and "point #5" in hover[-1]
    view.clear_result()
    assert view.result is None and np.array_equal(view.cloud_view.point_colors(), own)
    assert np.array_equal(view.image_view.composited(), plain)


def test_job_runner_calls_back_on_the_gui_thread(qtbot):
    import threading
    from core.errors import Cancelled
    from app.jobs import JobRunner
    runner = JobRunner()
    gui = threading.get_ident()
    seen, order = {}, []

    def work(progress, cancel, emit):
        seen["worker"] = threading.get_ident()
        progress(1.0, "half")
        emit("partial")
        return 42

    def on(name):
        return lambda *args: order.append((name, args, threading.get_ident()))

    progress = []
    runner.progress.connect(lambda f, m, eta: progress.append((f, m, threading.get_ident())))
    finished = []
    runner.finished.connect(finished.append)
    job = runner.submit("job", work, on_result=on("result"), on_partial=on("partial"), on_progress=on("progress"),
                        on_error=on("error"), on_cancel=on("cancel"), on_done=on("done"))
    assert job is not None and runner.busy and runner.current() is job
    assert runner.submit("second", work) is None                # one main job at a time
    qtbot.waitUntil(lambda: not runner.busy, timeout=5000)
    assert seen["worker"] != gui and job.done and finished == [job]
    assert [(n, a) for n, a, _ in order] == [("progress", (1.0, "half", -1.0)), ("partial", ("partial",)),
                                             ("result", (42,)), ("done", (job,))]
    assert all(t == gui for *_, t in order) and progress == [(1.0, "half", gui)]

    def slow(progress, cancel, emit):
        while not cancel():
            time.sleep(0.01)
        raise Cancelled()

    order.clear()
    job = runner.submit("slow", slow, on_result=on("result"), on_cancel=on("cancel"), on_done=on("done"))
    qtbot.wait(50)
    runner.cancel()
    qtbot.waitUntil(lambda: not runner.busy, timeout=2000)
    assert [n for n, *_ in order] == ["cancel", "done"] and job.t_cancel is not None

    def fail(progress, cancel, emit):
        raise ValueError("broken")

    order.clear()
    runner.submit("fail", fail, on_error=on("error"))
    qtbot.waitUntil(lambda: not runner.busy, timeout=2000)
    assert len(order) == 1 and order[0][0] == "error" and isinstance(order[0][1][0], ValueError)
    runner.shutdown()
    assert runner.submit("after", work) is None


def test_job_runner_lanes_queue_in_order_and_clear_drops_queued_jobs(qtbot):
    import threading
    from app.jobs import JobRunner
    runner = JobRunner()
    gate = threading.Event()
    got = []
    first = runner.submit("blocking", lambda *_: gate.wait(5), lane="load", on_result=lambda _r: got.append("first"))
    for i in range(3):
        assert runner.submit(f"thumb {i}", lambda *_, i=i: i, lane="load", key=i, on_result=got.append) is not None
    assert not runner.busy and len(runner.jobs("load")) == 4          # other lanes do not make the window busy
    assert runner.submit("main", lambda *_: "main", on_result=got.append) is not None   # lanes run side by side
    qtbot.waitUntil(lambda: got == ["main"], timeout=2000)
    queued = runner.jobs("load")[2]
    runner.clear("load")                                               # the queued ones never run
    assert runner.jobs("load") == [first] and queued.done
    gate.set()
    qtbot.waitUntil(lambda: not runner.jobs("load"), timeout=2000)
    assert got == ["main", "first"]
    for i in range(3):
        runner.submit(f"again {i}", lambda *_, i=i: i, lane="load", on_result=got.append)
    qtbot.waitUntil(lambda: len(got) == 5, timeout=2000)
    assert got[2:] == [0, 1, 2]                                        # in submission order
    runner.shutdown()


def test_on_gui_thread_marshals_observer_calls(qtbot):
    import threading
    from app.jobs import on_gui_thread
    gui = threading.get_ident()
    calls = []
    cb = on_gui_thread(lambda key: calls.append((key, threading.get_ident())))
    cb("here")
    assert calls == [("here", gui)]                          # on the GUI thread: at once
    t = threading.Thread(target=cb, args=("there",))
    t.start()
    t.join()
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=2000)
    assert calls[1] == ("there", gui)
