"""The evaluation dock: numbers equal core.metrics', the threshold line drives the fusion parameter,
bars and confusion cells filter the sample list (offscreen, fake detector)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from app.main_window import MainWindow  # noqa: E402
from core.evaluate import collect, confusion, roc_points  # noqa: E402
from app.settings import Settings  # noqa: E402
from core import metrics  # noqa: E402
from core.session import Session  # noqa: E402
from conftest import MemoryDataset  # noqa: E402


def test_roc_points_area_is_the_exact_auroc_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.4
    s = np.round(rng.normal(y * 0.8, 1.0), 1)          # many ties
    fpr, tpr = roc_points(y, s)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and (np.diff(fpr) >= 0).all()
    assert np.trapezoid(tpr, fpr) == pytest.approx(metrics.image_auroc(y, s), abs=1e-12)
    m = confusion(y, s, 0.3)
    assert m.sum() == 300 and m[1, 1] == int((y & (s >= 0.3)).sum()) and m[0, 1] == int((~y & (s >= 0.3)).sum())


@pytest.fixture
def win(qtbot, tmp_path, fake_detector):
    w = MainWindow(Settings(tmp_path / "s.ini"), Session(detector="fake-test"), restore_layout=False)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    w.set_dataset(MemoryDataset(tmp_path / "ds", classes=("disc", "ring"), n_good=3, n_bad=3))
    qtbot.waitUntil(lambda: not w.runner.busy and w.inspector.result is not None, timeout=15000)
    w.analysis.run_all()
    qtbot.waitUntil(lambda: w.runner.busy, timeout=5000) if not w.runner.busy else None
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=30000)
    w.evaluation_dock.show()
    yield w
    w.close()


def test_numbers_equal_core_metrics_and_threshold_drag_refuses(qtbot, win):
    ev = win.evaluation
    qtbot.waitUntil(lambda: len(ev.data.keys) == 6, timeout=5000)      # 3 good + 3 defective test samples
    assert ev.class_combo.currentText() == "disc"
    refs = [r for r in win.session.refs if r.class_name == "disc" and r.split == "test"]
    y = np.array([not r.is_good for r in refs])
    s = np.array([win.session.record(r).image_score for r in refs])
    assert ev.auroc == metrics.image_auroc(y, s)
    sk = pytest.importorskip("sklearn.metrics")
    assert ev.auroc == pytest.approx(sk.roc_auc_score(y, s))
    fpr, tpr = ev.roc_curve.getData()
    assert np.trapezoid(tpr, fpr) == pytest.approx(ev.auroc)
    # histogram counts are the samples
    assert ev.hist.good_bars.opts["height"].sum() == 3 and ev.hist.bad_bars.opts["height"].sum() == 3
    # drag the threshold line between the scores: the fusion parameter follows, the table re-fuses
    t = float(np.median(s))
    ev.hist.line.setValue(float(ev.hist.to_view(t)))
    assert win.session.params["threshold"] == pytest.approx(t, rel=1e-6)
    assert win.fusion_panel.editor("threshold").spin.value() == pytest.approx(t, abs=0.01)
    np.testing.assert_array_equal(ev.matrix, confusion(y, s, win.session.params["threshold"]))
    key = win.dataset.current_key
    qtbot.waitUntil(lambda: win.inspector.result.threshold == pytest.approx(t, rel=1e-6), timeout=5000)
    assert win.session.record(key).anomalous == (win.session.record(key).image_score >= win.session.params["threshold"])
    # the detector's threshold set elsewhere moves the line
    win.analysis.set_params({"threshold": 0.5})
    qtbot.waitUntil(lambda: ev.threshold == pytest.approx(0.5), timeout=3000)


def test_clicking_a_bar_or_a_cell_filters_the_sample_list(qtbot, win):
    ev = win.evaluation
    qtbot.waitUntil(lambda: len(ev.data.keys) == 6, timeout=5000)
    b = win.browser
    # the first non-empty defective bin
    counts = ev.hist.bad_bars.opts["height"]
    i = int(np.flatnonzero(counts)[0])
    ev.select_bin(i, defective=True)
    shown = {r.key for r in b.visible_refs()}
    assert len(shown) == counts[i] and all("/blob/" in k for k in shown)
    assert b.key_filter_btn.isVisible()
    # a confusion cell: true positives at the current threshold
    keys = ev.cell_keys(1, 1)
    assert len(keys) == ev.matrix[1, 1]
    if keys:
        ev.table.cellClicked.emit(1, 1)
        assert {r.key for r in b.visible_refs()} == set(keys)
    b.key_filter_btn.click()                          # back to the normal filters
    assert not b.key_filter_btn.isVisible() and len(b.visible_refs()) > len(keys)


def test_collect_uses_the_test_split_and_counts_unscored(tmp_path, fake_detector):
    s = Session(MemoryDataset(tmp_path / "ds", classes=("disc",)), detector="fake-test")
    d = collect(s, "disc")
    assert d.keys == [] and d.unscored == 4          # 2 good + 2 defective test samples, none scored
    s.analyze(s.dataset.select(split="test", label="blob")[0])
    d = collect(s, "disc")
    assert len(d.keys) == 1 and d.labels.tolist() == [True] and d.unscored == 3
    s.close()
