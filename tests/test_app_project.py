"""The window over the dataset's project: scores, support and detector survive a restart; a second
window gets the project read-only with a message; final verdicts; exports into a folder."""
from __future__ import annotations

import csv
import shutil

from test_app import close, make_window, settings, wait_result  # noqa: F401 - fixtures


def _copy(small_demo, tmp_path):
    dst = tmp_path / "demo"
    shutil.copytree(small_demo, dst, ignore=shutil.ignore_patterns(".mmad"))
    return dst


def test_scores_and_support_survive_a_restart(qtbot, settings, fake_detector, small_demo, tmp_path):  # noqa: F811
    root = _copy(small_demo, tmp_path)
    win = make_window(qtbot, settings)
    assert win.open_folder(root)
    wait_result(qtbot, win)
    cls = win.session.classes[0]
    sup = win.session.support_candidates(cls)[:1]
    win.analysis.set_support(cls, sup)
    qtbot.waitUntil(lambda: win.inspector.result is not None and not win.runner.busy, timeout=15000)
    key = win.dataset.current_key
    score = win.session.records[key].image_score
    assert score is not None
    close(win)                                       # saves and releases the project
    win2 = make_window(qtbot, settings)
    assert win2.open_folder(root)
    assert win2.project.last_restore is not None and win2.project.last_restore.scores >= 1
    assert [r.key for r in win2.session.support(cls)] == [r.key for r in sup]
    assert win2.session.records[key].image_score == score and not win2.session.records[key].stale
    close(win2)


def test_second_window_is_read_only_and_says_so(qtbot, settings, fake_detector, small_demo, tmp_path):  # noqa: F811
    root = _copy(small_demo, tmp_path)
    a = make_window(qtbot, settings)
    assert a.open_folder(root)
    b = make_window(qtbot, settings)
    assert b.open_folder(root)
    assert a.project.writable and not b.project.writable
    assert "read-only" in b.banner.text()
    close(b)
    close(a)


def test_final_verdict_and_exports(qtbot, settings, fake_detector, small_demo, tmp_path):  # noqa: F811
    root = _copy(small_demo, tmp_path)
    win = make_window(qtbot, settings)
    assert win.open_folder(root)
    wait_result(qtbot, win)
    key = win.dataset.current_key
    win.review_panel.advance.setChecked(False)
    assert win.project.final_nok()
    from core.project import NOK
    assert win.project.project.verdict(key).final == NOK
    out = tmp_path / "exports"
    out.mkdir()
    files = win.project.export_sample(out)
    names = {p.suffix for p in files}
    assert ".png" in names and ".json" in names and ".ply" in names
    from core.project.export import read_ply_fields
    fields = read_ply_fields(next(p for p in files if p.suffix == ".ply"))
    assert "scalar_anomaly" in fields and len(fields["scalar_anomaly"]) == win.inspector.sample.n_points
    csv_path = win.project.export_csv(out / "all.csv")
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == len(win.session.refs)       # every sample, not only reviewed ones
    html = win.project.export_html(out / "r.html").read_text()
    assert all(c in html for c in win.session.classes)
    assert win.project.export_dir().name == root.name   # the default folder is visible and per dataset
    close(win)


def test_region_mark_from_a_click_and_undo(qtbot, settings, fake_detector, small_demo, tmp_path):  # noqa: F811
    import numpy as np
    root = _copy(small_demo, tmp_path)
    win = make_window(qtbot, settings)
    assert win.open_folder(root)
    wait_result(qtbot, win)
    key, res = win.dataset.current_key, win.inspector.result
    r, c = np.unravel_index(int(np.nanargmax(res.pixel_map)), res.pixel_map.shape)
    win.inspector.image_view.pixelClicked.emit(int(r), int(c))
    assert win.project.mark_false_positive()
    marks = win.project.project.marks(key)
    assert len(marks) == 1 and marks[0].kind == "false_positive" and "polygon" in marks[0].geometry
    assert win.inspector.image_view.marks_drawn()["false_positive"] > 0       # outlined on the heatmap
    assert win.project.undo_mark()
    assert win.inspector.image_view.marks_drawn()["false_positive"] == 0
    assert win.project.project.marks(key) == []
    close(win)


def test_disagrees_with_detector_filter(qtbot, settings, fake_detector, small_demo, tmp_path):  # noqa: F811
    root = _copy(small_demo, tmp_path)
    win = make_window(qtbot, settings)
    assert win.open_folder(root)
    wait_result(qtbot, win)
    key = win.dataset.current_key
    decision = win.session.records[key].decision
    win.review_panel.advance.setChecked(False)
    from core.project import NOK, OK
    win.project.set_final(OK if decision == "anomalous" else NOK)     # against the detector
    shown = win.browser.proxy.rowCount()
    win.browser.disagree_btn.setChecked(True)
    assert win.browser.proxy.rowCount() == 1
    assert win.browser.current_key() == key
    win.browser.disagree_btn.setChecked(False)
    assert win.browser.proxy.rowCount() == shown
    close(win)


def test_confirm_up_nok_survives_a_reopen(qtbot, settings, fake_detector, small_demo, tmp_path):  # noqa: F811
    """Issue 18.1: on a fresh dataset press C, Up, X, close, reopen: the sample keeps its detection
    verdict AND its final verdict (the first open used to record no JSONL import, the second imported
    the journal's old events as the newest rows and dropped the final verdict)."""
    from PySide6.QtCore import Qt
    root = _copy(small_demo, tmp_path)
    win = make_window(qtbot, settings)
    win.detector_panel.auto_run.setChecked(False)
    assert win.open_folder(root)
    qtbot.waitUntil(lambda: win.inspector.sample is not None)
    first = win.dataset.current_key
    win.activateWindow()
    win.browser.table.setFocus()
    qtbot.keyClick(win.browser.table, Qt.Key.Key_C)          # confirm, moves on to the next sample
    qtbot.waitUntil(lambda: win.dataset.current_key != first)
    qtbot.keyClick(win.browser.table, Qt.Key.Key_Up)         # back to the first sample
    qtbot.waitUntil(lambda: win.dataset.current_key == first)
    qtbot.keyClick(win.browser.table, Qt.Key.Key_X)          # final verdict: part NOK
    v = win.project.project.verdict(first)
    assert (v.verdict, v.final) == ("confirmed", "nok")
    close(win)
    for _ in range(2):                                       # and again after a second reopen
        win2 = make_window(qtbot, settings)
        win2.detector_panel.auto_run.setChecked(False)
        assert win2.open_folder(root)
        v = win2.project.project.verdict(first)
        assert (v.verdict, v.final) == ("confirmed", "nok")
        assert win2.project.project.n_verdict_rows() == 2    # one row per action, nothing re-imported
        close(win2)


def test_parameters_an_older_version_saved_in_the_settings_move_into_the_project(qtbot, settings, fake_detector,  # noqa: F811
                                                                                  small_demo, tmp_path):
    """The project is the one store of a dataset's parameters: the value an older version left in the
    settings file is read once (the project had none), saved into the project, and dropped there."""
    from app.main_window import MainWindow
    from core.project import Project
    from core.session import Session
    settings.detector_id = "fake-test"
    settings.set_value("params/fake-test", '{"alpha": 0.3}')
    root = _copy(small_demo, tmp_path)
    win = MainWindow(settings, Session(), restore_layout=False)     # the detector comes from the settings
    qtbot.addWidget(win)
    win.detector_panel.auto_run.setChecked(False)
    assert win.session.detector_id == "fake-test"
    assert win.session.params["alpha"] == 0.3                       # no dataset yet: the old value
    assert win.open_folder(root)
    assert win.session.params["alpha"] == 0.3
    win.analysis.set_params({"alpha": 0.6})
    close(win)
    assert not settings.contains("params/fake-test")                 # migrated: not in the settings any more
    with Project.open(root) as p:
        assert p.detector_params("fake-test")["alpha"] == 0.6
    win2 = make_window(qtbot, settings)
    assert win2.open_folder(root)
    assert win2.session.params["alpha"] == 0.6                        # from the project
    close(win2)
