"""GUI tests of the Train panel (pytest-qt, offscreen): training runs in a worker process, the live
loss plot gets points, cancel stops it within a second, the window's event loop keeps running, and
"Use this model" sets the detector and its checkpoint."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QTimer  # noqa: E402

from app.controllers.training import trainable_detectors  # noqa: E402
from app.main_window import MainWindow  # noqa: E402
from app.settings import Settings  # noqa: E402
from core.checkpoint import load_checkpoint  # noqa: E402
from core.features.grid import FeatureConfig  # noqa: E402
from core.session import Session, ThreadBackend  # noqa: E402

FAST = {"features": FeatureConfig(working_size=32, stride=4, target_points=800), "batch_size": 64}


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    from core.demo import generate_demo
    return generate_demo(tmp_path_factory.mktemp("demo") / "demo", classes=["cookie", "tube"], n_train=3, n_val=0,
                         n_test_good=1, n_per_defect=1, size=64)


@pytest.fixture
def win(qtbot, tmp_path, tiny_demo):
    w = MainWindow(Settings(tmp_path / "settings.ini"), Session(detector="memory-bank", backend=ThreadBackend()),
                   restore_layout=False)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    w.detector_panel.auto_run.setChecked(False)
    assert w.open_folder(tiny_demo), w.banner.text()
    w.training.train_kwargs = dict(FAST)
    w.training.nice = 0          # CI machines are shared: the test process must not lose its share
    yield w
    w.close()


class Ticks:
    """A 10 ms QTimer on the GUI thread: the longest gap between ticks is the longest stall."""

    def __init__(self):
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def stop(self) -> None:
        self.timer.stop()


def test_only_trained_detectors_are_offered(win):
    ids = [win.train_panel.detector_combo.itemData(i) for i in range(win.train_panel.detector_combo.count())]
    assert set(ids) == set(trainable_detectors())
    assert {"cross-modal", "unified-moe"} <= set(ids)
    assert "memory-bank" not in ids
    assert win.train_panel.checked_classes() == ["cookie", "tube"]
    assert str(win.session.dataset.root) in win.train_panel.out_edit.text()   # defaults to the data folder
    win.action_map["train"].trigger()
    assert win.train_dock.isVisible()


def test_train_one_epoch_plots_loss_and_keeps_the_window_alive(qtbot, win, tmp_path):
    p = win.train_panel
    p.detector_combo.setCurrentIndex(p.detector_combo.findData("unified-moe"))
    p.set_checked_classes(["cookie"])
    p.epochs.setValue(1)
    out = tmp_path / "ck" / "moe"
    p.out_edit.setText(str(out))
    ticks = Ticks()
    with qtbot.waitSignal(win.training.finished, timeout=600_000) as sig:
        p.start_btn.click()
        assert win.training.running and not p.start_btn.isEnabled() and p.cancel_btn.isEnabled()
    ticks.stop()
    assert sig.args == ["done"], p.status.text()
    # the plot got the epoch's mean and the running batch losses
    assert p.plot.epoch_x == [1.0] and len(p.plot.epoch_y) == 1
    assert len(p.plot.batch_x) >= 1 and 0 < p.plot.batch_x[-1] <= 1.0
    xs, ys = p.plot.epoch_curve.getData()
    assert list(xs) == [1.0] and ys[0] == pytest.approx(win.training.result.losses[0])
    ck = load_checkpoint(out, detector="unified-moe")
    assert ck.classes == ["cookie"] and ck.meta["epochs"] == 1
    assert p.progress.value() == 1000 and p.use_btn.isEnabled()
    # the GUI thread's timer kept firing the whole time (training runs in another process)
    assert len(ticks.gaps) > 20
    assert max(ticks.gaps) < 1.0, f"event loop stalled {max(ticks.gaps) * 1000:.0f} ms"
    # use this model: the session's detector is the trained one with this checkpoint
    assert win.session.detector_id == "memory-bank"
    p.use_btn.click()
    assert win.session.detector_id == "unified-moe"
    assert win.session.params["checkpoint"] == str(ck.path)
    assert win.detector_panel.detector_combo.currentData() == "unified-moe"


def test_cancel_stops_within_a_second(qtbot, win, tmp_path):
    p = win.train_panel
    p.detector_combo.setCurrentIndex(p.detector_combo.findData("unified-moe"))
    p.epochs.setValue(10_000)
    p.out_edit.setText(str(tmp_path / "c"))
    points = []
    win.training.epochDone.connect(lambda e, loss: points.append(e))
    assert win.training.start()
    qtbot.waitUntil(lambda: len(p.plot.batch_x) > 0, timeout=600_000)   # well into training
    with qtbot.waitSignal(win.training.finished, timeout=5_000) as sig:
        t0 = time.perf_counter()
        p.cancel_btn.click()
    took = time.perf_counter() - t0
    assert sig.args == ["cancelled"]
    assert took < 1.0 and win.training.last_cancel_ms < 1000
    assert not win.training.running and p.start_btn.isEnabled() and not p.use_btn.isEnabled()
    assert "cancelled" in p.status.text()


def test_refuses_without_classes(win):
    win.train_panel.set_checked_classes([])
    assert not win.training.start()
    assert "class" in win.banner.text()


def test_the_loss_plot_fits_in_the_dock_without_scrolling(win):
    """The Train panel asks for no height-for-width (a wrapping status line did, and the dock's
    scroll area then made the panel as tall as its size hint, pushing the plot out of view), and a
    long status message stays whole in the tooltip."""
    p = win.train_panel
    assert not p.layout().hasHeightForWidth()
    assert p.minimumSizeHint().height() < p.sizeHint().height()
    msg = "error: " + "a long message naming a file and the problem " * 4
    p.status.setText(msg)
    assert p.status.toolTip() == msg and not p.layout().hasHeightForWidth()
