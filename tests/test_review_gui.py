"""GUI side of the review store (offscreen): a verdict that a full disk refuses is kept, shown,
said in the window and saved by the retry; a store with corrupt lines still opens."""
from __future__ import annotations

import errno
import math
import os

import pytest

pytest.importorskip("pytestqt")
from PySide6.QtCore import Qt  # noqa: E402

import core.review as review_mod  # noqa: E402
from app.main_window import MainWindow  # noqa: E402
from app.settings import Settings  # noqa: E402
from core.review import ReviewStore, store_path_for  # noqa: E402
from core.session import Session  # noqa: E402
from conftest import MemoryDataset  # noqa: E402


def make_window(qtbot, tmp_path) -> MainWindow:
    win = MainWindow(Settings(tmp_path / "settings.ini"), Session(detector="fake-test"), restore_layout=False)
    qtbot.addWidget(win)
    win.detector_panel.auto_run.setChecked(False)
    win.review.retry.timer.setInterval(100)
    win.show()
    return win


def test_disk_full_verdict_is_kept_said_and_retried(qtbot, tmp_path, monkeypatch, fake_detector):
    win = make_window(qtbot, tmp_path)
    win.set_dataset(MemoryDataset(tmp_path / "ds", classes=("disc",)))
    qtbot.waitUntil(lambda: win.inspector.sample is not None)
    first = win.dataset.current_key
    real_write = os.write

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(review_mod.os, "write", full)
    win.browser.table.setFocus()
    qtbot.keyClick(win.browser.table, Qt.Key.Key_C)
    assert win.review.store.verdict(first) == "confirmed" and win.review.store.pending == 1    # kept, shown
    assert "confirmed" in win.browser.model.index(win.browser.model.row_of(first), 4).data()
    text = win.banner.text()
    assert "1 verdict not saved yet (disk full)" in text and "retrying" in text
    assert ReviewStore(win.review.store.path).verdict(first) is None                       # not on disk yet
    qtbot.wait(250)                                                                   # a retry fails: still said
    assert win.review.store.pending == 1 and "not saved yet" in win.banner.text()
    monkeypatch.setattr(review_mod.os, "write", real_write)                           # space is back
    qtbot.waitUntil(lambda: win.review.store.pending == 0, timeout=3000)
    qtbot.waitUntil(lambda: "All verdicts are saved" in win.banner.text(), timeout=3000)
    assert ReviewStore(win.review.store.path).verdict(first) == "confirmed"
    assert not win.review.retry.timer.isActive()
    win.close()


def test_corrupt_store_and_infinite_score_do_not_break_the_window(qtbot, tmp_path, fake_detector):
    ds = MemoryDataset(tmp_path / "ds", classes=("disc",))
    path = store_path_for(ds.root)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ds.select(["disc"], "test")[0].key
    path.write_bytes(b"\xef\xbb\xbf" + f'{{"key":"{key}","verdict":"rejected"}}\n'.encode() + b"[" * 1000 + b"\n")
    win = make_window(qtbot, tmp_path)
    win.set_dataset(ds)
    qtbot.waitUntil(lambda: win.inspector.sample is not None)
    assert win.review.store.verdict(key) == "rejected"                     # the BOM did not drop it
    assert "could not be read" in win.banner.text()
    win.review.store.record(key, "unsure", image_score=math.inf)           # stored as null, no exception
    assert ReviewStore(path).latest(key).image_score is None
    win.close()
